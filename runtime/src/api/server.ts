/**
 * The process's HTTP API (port 3030 by default): /livez, /readyz (ready once every peer
 * is connected), /metrics (Prometheus text) and /status (JSON). Kubernetes probes the
 * first two; the controller reads readiness to tell a formed cluster from a stuck one.
 */
import { createServer, type Server } from "node:http";
import { Gauge, Registry } from "prom-client";
import type { RunningProcess } from "../engine/execute.ts";

export interface ProcessStatus {
  readonly process: number;
  readonly processes: number;
  readonly ready: boolean;
  readonly connectedPeers: number;
  readonly workers: readonly { readonly index: number; readonly epoch: number }[];
  /** Items each step has emitted, summed over this process's workers. */
  readonly steps: Readonly<Record<string, number>>;
}

/** Reads the state of a run that may not have started yet (peers still connecting). */
export class ProcessView {
  readonly processId: number;
  readonly processCount: number;
  #run: RunningProcess | undefined;

  constructor(processId: number, processCount: number) {
    this.processId = processId;
    this.processCount = processCount;
  }

  started(run: RunningProcess): void {
    this.#run = run;
  }

  ready(): boolean {
    return this.#run !== undefined && this.#run.mesh.connectedPeers === this.processCount - 1;
  }

  status(): ProcessStatus {
    const run = this.#run;
    const steps: Record<string, number> = {};
    for (const worker of run?.workers ?? []) {
      for (const { stepId, itemsOut } of worker.stepCounts()) steps[stepId] = (steps[stepId] ?? 0) + itemsOut;
    }
    return {
      process: this.processId,
      processes: this.processCount,
      ready: this.ready(),
      connectedPeers: run?.mesh.connectedPeers ?? 0,
      workers: (run?.workers ?? []).map((w) => ({ index: w.index, epoch: w.epoch })),
      steps,
    };
  }

  exchangeBytes(): { sent: number; received: number } {
    return { sent: this.#run?.mesh.bytesSent ?? 0, received: this.#run?.mesh.bytesReceived ?? 0 };
  }
}

function metricsRegistry(view: ProcessView): Registry {
  const registry = new Registry();
  new Gauge({
    name: "waxflow_step_items_out",
    help: "Items each step has emitted since the process started, over its workers.",
    labelNames: ["step"],
    registers: [registry],
    collect() {
      for (const [step, n] of Object.entries(view.status().steps)) this.set({ step }, n);
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
  return registry;
}

/** Serves the API on `port` (0: any free port); resolves once listening. */
export function serveApi(port: number, view: ProcessView): Promise<Server> {
  const registry = metricsRegistry(view);
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (code: number, type: string, body: string): void => {
      res.writeHead(code, { "content-type": type }).end(body);
    };
    if (path === "/livez") send(200, "text/plain", "ok\n");
    else if (path === "/readyz") {
      if (view.ready()) send(200, "text/plain", "ok\n");
      else send(503, "text/plain", "waiting for peers\n");
    } else if (path === "/status") send(200, "application/json", `${JSON.stringify(view.status())}\n`);
    else if (path === "/metrics") {
      registry.metrics().then(
        (text) => send(200, registry.contentType, text),
        (err: unknown) => send(500, "text/plain", `${String(err)}\n`),
      );
    } else send(404, "text/plain", "not found: try /livez, /readyz, /metrics or /status\n");
  });
  return new Promise((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new Error(`cannot serve the HTTP API on port ${port}: ${err.message}; set WAXFLOW_API_PORT to a free port`),
      ),
    );
    server.listen(port, () => resolve(server));
  });
}
