/**
 * Workers as threads: with `-w N` (N > 1) and a dataflow module to load, each worker runs
 * in its own worker thread, so a process uses as many cores as it has workers. The
 * process's thread keeps the TCP mesh, the recovery bookkeeping and the HTTP API.
 *
 *   thread ⇄ thread   a MessageChannel per pair: exchange batches, acknowledged in credits
 *   thread ⇄ process  items for other processes (sent on the mesh), items from them,
 *                     commits, snapshot costs, counters, the end or the failure
 *
 * Every link is bounded (thread-links.ts). A sender stops reading its sources while a peer thread has more
 * than MAX_IN_FLIGHT of its batches unacknowledged, or while a mesh socket is full; the
 * process stops reading the mesh while a thread is behind on items from other processes.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort } from "node:worker_threads";
import type { ProcessMesh } from "../cluster/mesh.ts";
import type { StateAnswer, StateQuery } from "../engine/state-query.ts";
import type { Commit, StepCount } from "../engine/worker.ts";
import { WorkerThreadError } from "../failure.ts";
import type { SnapshotStats } from "../recovery/store.ts";
import {
  Credits,
  type ProcessToThread,
  type RegistryJson,
  type ThreadData,
  type ThreadToProcess,
} from "./thread-links.ts";
import { StartingThread, type ThreadModule } from "./thread-start.ts";

export type { RegistryJson, ThreadData };

/** How often a thread reports its epoch and counters for /metrics and /status. */
const STATS_MS = 500;
/** How long an aborted thread has to stop before it is terminated. */
const TERMINATE_AFTER_MS = 10_000;

/** What /metrics and /status read of a worker, in this thread or another. */
export interface WorkerView {
  readonly index: number;
  readonly epoch: number;
  readonly lastCommit: Commit | undefined;
  stepCounts(): StepCount[];
  /** Answers a live state query about this worker's keys. */
  query(query: StateQuery): Promise<StateAnswer>;
}

class ThreadView implements WorkerView {
  readonly index: number;
  epoch: number;
  lastCommit: Commit | undefined;
  steps: StepCount[] = [];
  metrics: RegistryJson = [];
  port: MessagePort | undefined;
  readonly #pending = new Map<number, (answer: StateAnswer) => void>();
  #nextId = 0;
  #ended = false;
  constructor(index: number, epoch: number) {
    this.index = index;
    this.epoch = epoch;
  }
  stepCounts(): StepCount[] {
    return this.steps;
  }
  query(query: StateQuery): Promise<StateAnswer> {
    if (this.#ended || this.port === undefined) {
      return Promise.resolve({ kind: "error", status: 503, message: `worker ${this.index} is not running` });
    }
    const id = this.#nextId++;
    const { promise, resolve } = Promise.withResolvers<StateAnswer>();
    this.#pending.set(id, resolve);
    this.port.postMessage({ k: "query", id, query } satisfies ProcessToThread);
    return promise;
  }
  answered(id: number, answer: StateAnswer): void {
    this.#pending.get(id)?.(answer);
    this.#pending.delete(id);
  }
  /** The thread exited: queries it will never answer are answered here. */
  ended(): void {
    this.#ended = true;
    for (const resolve of this.#pending.values()) {
      resolve({ kind: "error", status: 503, message: `worker ${this.index} stopped` });
    }
    this.#pending.clear();
  }
}

export interface ThreadRunOptions {
  readonly module: ThreadModule;
  /** Threads started already (cli/prestart.ts), loading `module`, by local worker index; the rest are started here. */
  readonly threads?: readonly StartingThread[];
  readonly processId: number;
  readonly workersPerProcess: number;
  readonly count: number;
  readonly epochIntervalMs: number;
  readonly stepMetrics: boolean;
  readonly mesh: ProcessMesh;
  readonly recovery?: ThreadData["recovery"];
  /** A worker committed an epoch: the process's store collects garbage, peers hear of it. */
  readonly committed?: (worker: number, frontier: number) => void;
  /** Subscribes to the cluster's committed frontier, which every thread is told of. */
  readonly onClusterCommit?: (listener: (frontier: number) => void) => void;
  readonly signal: AbortSignal;
  /** Stops the whole process (every thread, the mesh) with this cause. */
  readonly fail: (err: Error) => void;
  readonly onSnapshot?: (stats: SnapshotStats) => void;
  /** A worker ran to the end of its inputs, after its last commit. */
  readonly ended?: (worker: number) => void;
}

/**
 * Starts this process's workers as threads. `views` are ready at once (for the API);
 * `started` resolves once every thread has loaded the dataflow and built its worker;
 * `done` settles when every thread has ended: resolved if all finished their inputs,
 * rejected with the first failure (this process's own cause, when it aborted first).
 */
export function runThreads(opts: ThreadRunOptions): {
  views: WorkerView[];
  /** What each thread's registry held at its last report. */
  metrics: () => RegistryJson[];
  started: Promise<void>;
  done: Promise<void>;
} {
  const w = opts.workersPerProcess;
  const first = opts.processId * w;
  const startEpoch = opts.recovery?.resumeEpoch ?? 1;
  const views = Array.from({ length: w }, (_, local) => new ThreadView(first + local, startEpoch));
  const peerPorts = Array.from({ length: w }, () => new Map<number, MessagePort>());
  for (let a = 0; a < w; a++) {
    for (let b = a + 1; b < w; b++) {
      const { port1, port2 } = new MessageChannel();
      peerPorts[a]?.set(first + b, port1);
      peerPorts[b]?.set(first + a, port2);
    }
  }
  let failure: Error | undefined;
  const fail = (err: Error): void => {
    if (failure !== undefined) return;
    failure = opts.signal.aborted && opts.signal.reason instanceof Error ? opts.signal.reason : err;
    opts.fail(failure);
  };
  const ports: MessagePort[] = [];
  const threads: StartingThread[] = [];
  const started = Promise.withResolvers<void>();
  let starting = w;
  const credits = views.map(() => new Credits());
  let meshCongested = false;
  const updateCongestion = (): void => {
    const now = opts.mesh.congested();
    if (now === meshCongested) return;
    meshCongested = now;
    for (const port of ports) port.postMessage({ k: "congested", value: now } satisfies ProcessToThread);
  };
  const updateReading = (): void => opts.mesh.pauseReading(credits.some((c) => c.full));
  opts.onClusterCommit?.((frontier) => {
    for (const port of ports) port.postMessage({ k: "cluster", frontier } satisfies ProcessToThread);
  });
  opts.mesh.onDrain(updateCongestion);

  const done = views.map((view, local) => {
    const { port1: mine, port2: theirs } = new MessageChannel();
    ports.push(mine);
    view.port = mine;
    const peers = peerPorts[local] as Map<number, MessagePort>;
    const link = credits[local] as Credits;
    const data: ThreadData = {
      index: view.index,
      count: opts.count,
      processId: opts.processId,
      workersPerProcess: w,
      epochIntervalMs: opts.epochIntervalMs,
      stepMetrics: opts.stepMetrics,
      recovery: opts.recovery,
      statsMs: STATS_MS,
      process: theirs,
      peers,
    };
    const thread = opts.threads?.[local] ?? new StartingThread(opts.module);
    threads.push(thread);
    const mesh = opts.mesh.transport(local);
    mesh.listen((from, messages) => {
      mine.postMessage({ k: "exchange", from, messages } satisfies ProcessToThread);
      link.sent++;
      updateReading();
    });
    let finished = false;
    const handle = (m: ThreadToProcess): void => {
      switch (m.k) {
        case "send":
          mesh.send(m.to, m.messages);
          updateCongestion();
          break;
        case "ack":
          link.acked = m.n;
          updateReading();
          break;
        case "committed":
          opts.committed?.(m.worker, m.frontier);
          break;
        case "snapshot":
          opts.onSnapshot?.(m.stats);
          break;
        case "stats":
          view.epoch = m.epoch;
          view.steps = m.steps;
          view.lastCommit = m.lastCommit;
          view.metrics = m.metrics;
          break;
        case "started":
          if (--starting === 0) started.resolve();
          break;
        case "done":
          finished = true;
          opts.ended?.(view.index);
          break;
        case "failed":
          fail(new WorkerThreadError(m.line, m.detail));
          break;
        case "answer":
          view.answered(m.id, m.answer);
          break;
      }
    };
    mine.on("message", handle);
    return new Promise<void>((resolve) => {
      const exit = (code: number): void => {
        // The thread's last messages may not have been handled yet: the exit comes another way.
        for (let m = receiveMessageOnPort(mine); m !== undefined; m = receiveMessageOnPort(mine)) {
          handle(m.message as ThreadToProcess);
        }
        if (!finished && failure === undefined) {
          const line = `worker thread ${view.index} exited with code ${code} before its inputs ended`;
          fail(new WorkerThreadError(line, "the thread's code called process.exit, or the thread was terminated"));
        }
        view.ended();
        mine.close();
        resolve();
      };
      thread.run(data, [theirs, ...peers.values()], { error: (err) => fail(err), exit });
    });
  });
  const abort = (): void => {
    const reason = opts.signal.reason instanceof Error ? opts.signal.reason.message : String(opts.signal.reason);
    for (const port of ports) port.postMessage({ k: "abort", reason } satisfies ProcessToThread);
    // A thread stuck in user code never reads the abort; the process must still end.
    setTimeout(() => {
      for (const thread of threads) void thread.terminate();
    }, TERMINATE_AFTER_MS).unref();
  };
  opts.signal.addEventListener("abort", abort, { once: true });
  return {
    views,
    metrics: () => views.map((v) => v.metrics),
    started: started.promise,
    done: Promise.all(done).then(() => {
      opts.signal.removeEventListener("abort", abort);
      opts.mesh.pauseReading(false);
      if (failure !== undefined) throw failure;
    }),
  };
}
