/**
 * The process's HTTP API (port 3030 by default): /livez, /readyz (ready once every peer
 * is connected; a holder once its store is handed over), /metrics (Prometheus text),
 * /status (JSON) and /steps (JSON: the numbers of each step on each worker, for waxctl).
 * Kubernetes probes the first two; the controller reads readiness to tell a formed
 * cluster from a stuck one, and a holder it may remove. With state queries on,
 * /state/STEP answers keys' state (api/state.ts) to requests that carry the token.
 */
import type { Server } from "node:http";
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, register } from "prom-client";
import { partitionLags } from "../connectors/kafka/metrics.ts";
import type { Dataflow } from "../dataflow.ts";
import type { RunningProcess } from "../process/execute.ts";
import type { RegistryJson } from "../process/threads.ts";
import type { RestoreReport } from "../recovery/backup.ts";
import type { StepFiles } from "../recovery/output-files.ts";
import type { SnapshotStats } from "../recovery/store.ts";
import { type DataflowGraph, dataflowGraph } from "../visualize.ts";
import { answerSavepoints, type SavepointService } from "./savepoints.ts";
import { parseStateRequest, stateResponse } from "./state.ts";
import { STATE_TOKEN_HEADER, tokenMatches } from "./state-token.ts";
import { type CountSample, type StepsReport, sampleCounts, stepsReport, type WorkerReport } from "./steps.ts";

// Not `import ... from "node:http"`: Node's ES module wrapper of a builtin reads every
// export, and http's WebSocket export loads undici, ~20 ms of CPU at each start
// (nodejs/node#59686); the CommonJS module is the same one without that.
const { createServer } = process.getBuiltinModule("node:http");

/** How often the counts are sampled for the rates of /steps, and how far back a rate looks. */
const SAMPLE_EVERY_MS = 1_000;
const RATE_WINDOW_MS = 3_000;

export type Role = "process" | "holder";

export interface ProcessStatus {
  readonly process: number;
  readonly processes: number;
  readonly role: Role;
  readonly ready: boolean;
  readonly connectedPeers: number;
  readonly workers: readonly { readonly index: number; readonly epoch: number }[];
  /** Items each step has emitted, summed over this process's workers. */
  readonly steps: Readonly<Record<string, number>>;
  /** Items delivered to each step on this process's workers, before exchange. */
  readonly stepsIn: Readonly<Record<string, number>>;
  /** Directories the file sinks write to: `waxctl df scale` checks that every pod shares them. */
  readonly fileOutputs: readonly StepFiles[];
  /** What the empty recovery directory was restored from at this start; absent when nothing was. */
  readonly restore?: RestoreReport;
}

/** Reads the state of a run that may not have started yet (peers still connecting). */
export class ProcessView {
  readonly processId: number;
  readonly processCount: number;
  readonly role: Role;
  #run: RunningProcess | undefined;
  #released = false;
  #fileOutputs: readonly StepFiles[] = [];
  #graph: DataflowGraph | undefined;
  #flow: Dataflow | undefined;
  #savepoints: SavepointService | undefined;
  #restore: RestoreReport | undefined;
  /** Oldest first, none older than RATE_WINDOW_MS. */
  #samples: CountSample[] = [];
  /** Connections the cluster port turned away, by why (see Refusal in cluster/mesh.ts). */
  readonly refusals = new Map<string, number>();
  readonly #snapshotListeners: Array<(stats: SnapshotStats) => void> = [];

  constructor(processId: number, processCount: number, role: Role = "process") {
    this.processId = processId;
    this.processCount = processCount;
    this.role = role;
  }

  started(run: RunningProcess): void {
    this.#run = run;
  }

  /** Known once the dataflow is loaded. */
  writesFiles(outputs: readonly StepFiles[]): void {
    this.#fileOutputs = outputs;
  }

  /** Known once the dataflow is loaded: what /steps names each step's kind and operator by. */
  runs(flow: Dataflow): void {
    this.#graph = dataflowGraph(flow);
    this.#flow = flow;
  }

  /** Process 0 with a bucket, once the cluster has resumed: what /savepoints serves. */
  servesSavepoints(savepoints: SavepointService): void {
    this.#savepoints = savepoints;
  }

  /** Known before the store opens, when an empty recovery directory was restored. */
  restored(report: RestoreReport): void {
    this.#restore = report;
  }

  get savepoints(): SavepointService | undefined {
    return this.#savepoints;
  }

  /** The dataflow, once loaded. */
  get flow(): Dataflow | undefined {
    return this.#flow;
  }

  /** The running process (its workers and state router); undefined before the cluster formed and on a holder. */
  get run(): RunningProcess | undefined {
    return this.#run;
  }

  /** What each worker last reported. */
  workerReports(): WorkerReport[] {
    return (this.#run?.workers ?? []).map((w) => ({
      index: w.index,
      epoch: w.epoch,
      lastCommit: w.lastCommit,
      steps: w.stepCounts(),
    }));
  }

  /** Keeps the counts of now, for the rates of later reports. */
  sample(now: number): void {
    this.#samples.push(sampleCounts(this.workerReports(), now));
    while ((this.#samples[0]?.at ?? now) < now - RATE_WINDOW_MS) this.#samples.shift();
  }

  /**
   * The connectors' metrics of every worker: this thread's default registry (workers run
   * here) and each worker thread's last report. Each registry counts only its own
   * thread's partitions, so summing them counts everything once.
   */
  async connectorMetrics(): Promise<RegistryJson[]> {
    return [await register.getMetricsAsJSON(), ...(this.#run?.threadMetrics() ?? [])];
  }

  async steps(now: number): Promise<StepsReport> {
    const connectors = AggregatorRegistry.aggregate(await this.connectorMetrics());
    return stepsReport({
      process: this.processId,
      processes: this.processCount,
      graph: this.#graph,
      workers: this.workerReports(),
      since: this.#samples[0],
      now,
      kafka: partitionLags(await connectors.getMetricsAsJSON()),
    });
  }

  /** A holder's store is no longer needed by the cluster. */
  released(): void {
    this.#released = true;
  }

  refused(kind: string): void {
    this.refusals.set(kind, (this.refusals.get(kind) ?? 0) + 1);
  }

  snapshotted(stats: SnapshotStats): void {
    for (const listener of this.#snapshotListeners) listener(stats);
  }

  onSnapshot(listener: (stats: SnapshotStats) => void): void {
    this.#snapshotListeners.push(listener);
  }

  ready(): boolean {
    if (this.role === "holder") return this.#released;
    return this.#run !== undefined && this.#run.mesh.connectedPeers === this.processCount - 1;
  }

  status(): ProcessStatus {
    const run = this.#run;
    const steps: Record<string, number> = {};
    const stepsIn: Record<string, number> = {};
    for (const worker of run?.workers ?? []) {
      for (const { stepId, itemsIn, itemsOut } of worker.stepCounts()) {
        steps[stepId] = (steps[stepId] ?? 0) + itemsOut;
        stepsIn[stepId] = (stepsIn[stepId] ?? 0) + itemsIn;
      }
    }
    return {
      process: this.processId,
      processes: this.processCount,
      role: this.role,
      ready: this.ready(),
      connectedPeers: run?.mesh.connectedPeers ?? 0,
      workers: (run?.workers ?? []).map((w) => ({ index: w.index, epoch: w.epoch })),
      steps,
      stepsIn,
      fileOutputs: this.#fileOutputs,
      ...(this.#restore === undefined ? {} : { restore: this.#restore }),
    };
  }

  exchangeBytes(): { sent: number; received: number } {
    return { sent: this.#run?.mesh.bytesSent ?? 0, received: this.#run?.mesh.bytesReceived ?? 0 };
  }
}

function metricsRegistry(view: ProcessView): Registry {
  const registry = new Registry();
  const duration = new Histogram({
    name: "waxflow_snapshot_duration_seconds",
    help: "Time a worker of this process took to make an epoch's snapshots durable in its recovery store.",
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  const lastBytes = new Gauge({
    name: "waxflow_snapshot_bytes",
    help: "Serialized size of the last epoch snapshot a worker of this process wrote (state and positions).",
    registers: [registry],
  });
  const totalBytes = new Counter({
    name: "waxflow_snapshot_bytes_total",
    help: "Serialized bytes of snapshots this process has written since it started.",
    registers: [registry],
  });
  view.onSnapshot(({ seconds, bytes }) => {
    duration.observe(seconds);
    lastBytes.set(bytes);
    totalBytes.inc(bytes);
  });
  // Counted by the workers since the process started: counters, read whole at each scrape.
  new Counter({
    name: "waxflow_step_items_in_total",
    help: "Items delivered to each core step on each worker of this process (counted before exchange).",
    labelNames: ["step", "worker"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of view.workerReports()) {
        for (const s of w.steps) this.inc({ step: s.stepId, worker: String(w.index) }, s.itemsIn);
      }
    },
  });
  new Counter({
    name: "waxflow_step_items_out_total",
    help: "Items each core step has emitted on each worker of this process.",
    labelNames: ["step", "worker"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of view.workerReports()) {
        for (const s of w.steps) this.inc({ step: s.stepId, worker: String(w.index) }, s.itemsOut);
      }
    },
  });
  new Gauge({
    name: "waxflow_step_state_keys",
    help: "Keys whose state each stateful step holds on each worker of this process.",
    labelNames: ["step", "worker"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of view.workerReports()) {
        for (const s of w.steps)
          if (s.keys !== undefined) this.set({ step: s.stepId, worker: String(w.index) }, s.keys);
      }
    },
  });
  new Gauge({
    name: "waxflow_step_watermark_lag_seconds",
    help: "Wall-clock time minus the furthest watermark of a windowed step's keys, per worker of this process.",
    labelNames: ["step", "worker"],
    registers: [registry],
    collect() {
      this.reset();
      const now = Date.now();
      for (const w of view.workerReports()) {
        for (const s of w.steps) {
          if (s.watermark !== undefined) {
            this.set({ step: s.stepId, worker: String(w.index) }, Math.max(0, now - s.watermark) / 1000);
          }
        }
      }
    },
  });
  new Gauge({
    name: "waxflow_worker_committed_epoch",
    help: "The last epoch each worker of this process made durable in its recovery store.",
    labelNames: ["worker"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of view.workerReports()) {
        if (w.lastCommit !== undefined) this.set({ worker: String(w.index) }, w.lastCommit.epoch);
      }
    },
  });
  new Gauge({
    name: "waxflow_worker_committed_timestamp_seconds",
    help: "When each worker of this process last committed an epoch, in seconds since the Unix epoch.",
    labelNames: ["worker"],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of view.workerReports()) {
        if (w.lastCommit !== undefined) this.set({ worker: String(w.index) }, w.lastCommit.at / 1000);
      }
    },
  });
  new Gauge({
    name: "waxflow_worker_epoch",
    help: "The epoch each worker of this process is in.",
    labelNames: ["worker"],
    registers: [registry],
    collect() {
      for (const w of view.status().workers) this.set({ worker: String(w.index) }, w.epoch);
    },
  });
  new Gauge({
    name: "waxflow_connected_peers",
    help: "Peer processes connected over the cluster mesh.",
    registers: [registry],
    collect() {
      this.set(view.status().connectedPeers);
    },
  });
  new Gauge({
    name: "waxflow_exchange_bytes",
    help: "Bytes exchanged with peer processes since the process started.",
    labelNames: ["direction"],
    registers: [registry],
    collect() {
      const { sent, received } = view.exchangeBytes();
      this.set({ direction: "sent" }, sent);
      this.set({ direction: "received" }, received);
    },
  });
  // Prometheus's standard process metrics, of the process that serves them: under the
  // supervisor that is the child running the dataflow (all its worker threads included).
  new Counter({
    name: "process_cpu_seconds_total",
    help: "User and system CPU time spent by this process (every thread), in seconds.",
    registers: [registry],
    collect() {
      const { user, system } = process.cpuUsage();
      this.reset();
      this.inc((user + system) / 1e6);
    },
  });
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size of this process, in bytes.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Counter({
    name: "waxflow_cluster_refused_total",
    help: "Connections to the cluster port closed for what they sent: a failed handshake, a bad frame, or a frame the sender's role does not allow.",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of view.refusals) this.inc({ reason }, n);
    },
  });
  return registry;
}

export interface ApiOptions {
  /** Serve /state, to requests whose STATE_TOKEN_HEADER is this token; undefined: /state is off. */
  readonly stateQueryToken?: string;
  /** The token /savepoints requests carry (the state token, whether /state is on or not); undefined: refused. */
  readonly savepointToken?: string;
  /** Backups to a bucket are configured: savepoints can be taken. */
  readonly backups?: boolean;
  /** Where process 0 runs, for the line other processes answer /savepoints with (e.g. "pod wordcount-0"). */
  readonly processZero?: string;
}

/** Serves the API on `port` (0: any free port); resolves once listening. */
export function serveApi(port: number, view: ProcessView, opts: ApiOptions = {}): Promise<Server> {
  const registry = metricsRegistry(view);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const send = (code: number, type: string, body: string): void => {
      res.writeHead(code, { "content-type": type }).end(body);
    };
    if (path.startsWith("/state/") || path === "/state") {
      void answerState(req.method ?? "GET", req.url ?? "/", req.headers[STATE_TOKEN_HEADER], view, opts).then(
        ({ status, type, body }) => send(status, type, body),
        (err: unknown) => send(500, "text/plain", `${err instanceof Error ? err.message : String(err)}\n`),
      );
    } else if (path === "/savepoints" || path.startsWith("/savepoints/")) {
      const context = {
        token: opts.savepointToken,
        processId: view.processId,
        processZero: opts.processZero ?? "process 0",
        backups: opts.backups === true,
        savepoints: view.savepoints,
      };
      answerSavepoints(req, path, context).then(
        ({ status, body, headers }) =>
          res.writeHead(status, { "content-type": "application/json", ...headers }).end(`${JSON.stringify(body)}\n`),
        (err: unknown) =>
          send(
            500,
            "application/json",
            `${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`,
          ),
      );
    } else if (path === "/livez") send(200, "text/plain", "ok\n");
    else if (path === "/readyz") {
      if (view.ready()) send(200, "text/plain", "ok\n");
      else
        send(503, "text/plain", view.role === "holder" ? "handing the recovery store over\n" : "waiting for peers\n");
    } else if (path === "/status") send(200, "application/json", `${JSON.stringify(view.status())}\n`);
    else if (path === "/steps") {
      view.steps(Date.now()).then(
        (report) => send(200, "application/json", `${JSON.stringify(report)}\n`),
        (err: unknown) => send(500, "text/plain", `${String(err)}\n`),
      );
    } else if (path === "/metrics") {
      // Connectors (Kafka) register their metrics, when first used, on the default registry
      // of the thread that uses them: merged here over this thread and the worker threads.
      const connectors = view.connectorMetrics().then((all) => AggregatorRegistry.aggregate(all).metrics());
      Promise.all([registry.metrics(), connectors]).then(
        ([engine, connectors]) => send(200, registry.contentType, engine + connectors),
        (err: unknown) => send(500, "text/plain", `${String(err)}\n`),
      );
    } else
      send(
        404,
        "text/plain",
        "not found: try /livez, /readyz, /metrics, /status, /steps, /state/STEP or /savepoints\n",
      );
  });
  // unref: sampling must not keep a finished process alive.
  const sampler = setInterval(() => view.sample(Date.now()), SAMPLE_EVERY_MS).unref();
  server.on("close", () => clearInterval(sampler));
  return new Promise((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new Error(`cannot serve the HTTP API on port ${port}: ${err.message}; set WAXFLOW_API_PORT to a free port`),
      ),
    );
    server.listen(port, () => resolve(server));
  });
}

/**
 * A /state request: off, or without the right token, it is refused before anything in it
 * is read; then the URL is parsed into a bounded query and routed to the key's owner.
 */
async function answerState(
  method: string,
  url: string,
  token: string | string[] | undefined,
  view: ProcessView,
  opts: ApiOptions,
): Promise<{ status: number; type: string; body: string }> {
  const text = (status: number, line: string) => ({ status, type: "text/plain", body: `${line}\n` });
  const expected = opts.stateQueryToken;
  if (expected === undefined) {
    return text(404, "state queries are off: start the process with --state-query (WAXFLOW_STATE_QUERY=true)");
  }
  if (token === undefined)
    return text(401, `state queries need the dataflow's token in the ${STATE_TOKEN_HEADER} header`);
  if (typeof token !== "string" || !tokenMatches(token, expected)) {
    return text(403, `the ${STATE_TOKEN_HEADER} header does not hold this dataflow's token`);
  }
  if (method !== "GET") return text(405, "state queries are GET requests");
  const flow = view.flow;
  const router = view.run?.state;
  if (flow === undefined || router === undefined) {
    return text(
      503,
      view.role === "holder" ? "a holder runs no workers and holds no live state" : "the dataflow is starting",
    );
  }
  const parsed = parseStateRequest(url, flow);
  if ("message" in parsed) return text(parsed.status, parsed.message);
  return stateResponse(parsed.query, await router.answer(parsed.query));
}
