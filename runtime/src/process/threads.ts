/**
 * Workers as threads: with `-w N` (N > 1) and a dataflow module to load, each worker runs
 * in its own worker thread, so a process uses as many cores as it has workers. The
 * process's thread keeps the TCP mesh, the recovery bookkeeping and the HTTP API.
 *
 *   thread ⇄ thread   a MessageChannel per pair: exchange batches, acknowledged in credits
 *   thread ⇄ process  items for other processes (sent on the mesh), items from them,
 *                     commits, snapshot costs, counters, the end or the failure
 *
 * Every link is bounded. A sender stops reading its sources while a peer thread has more
 * than MAX_IN_FLIGHT of its batches unacknowledged, or while a mesh socket is full; the
 * process stops reading the mesh while a thread is behind on items from other processes.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort } from "node:worker_threads";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { ProcessMesh } from "../cluster/mesh.ts";
import type { StateAnswer, StateQuery } from "../engine/state-query.ts";
import { type ExchangeMessage, packMessages, type Transport } from "../engine/transport.ts";
import type { Commit, StepCount } from "../engine/worker.ts";
import { WorkerThreadError } from "../failure.ts";
import type { SnapshotStats } from "../recovery/store.ts";
import { StartingThread, type ThreadModule } from "./thread-start.ts";

/** Batches a link may have unacknowledged before its sender pauses. */
export const MAX_IN_FLIGHT = 64;
/** A receiver acknowledges every this many batches. */
export const ACK_EVERY = 16;
/** What a thread's own prom-client registry holds (connector metrics), as `getMetricsAsJSON` gives it. */
export type RegistryJson = MetricObjectWithValues<MetricValue<string>>[];

/** How often a thread reports its epoch and counters for /metrics and /status. */
const STATS_MS = 500;
/** How long an aborted thread has to stop before it is terminated. */
const TERMINATE_AFTER_MS = 10_000;

/** What a worker thread runs with, posted to it once it has started (thread-start.ts). */
export interface ThreadData {
  readonly index: number;
  readonly count: number;
  readonly processId: number;
  readonly workersPerProcess: number;
  readonly epochIntervalMs: number;
  readonly stepMetrics: boolean;
  readonly recovery?: {
    readonly dbDir: string;
    readonly execution: number;
    readonly resumeEpoch: number;
    readonly snapshotIntervalMs: number;
  };
  readonly statsMs: number;
  /** To the process's thread. */
  readonly process: MessagePort;
  /** To the other threads of this process, by global worker index. */
  readonly peers: ReadonlyMap<number, MessagePort>;
}

export type ThreadToProcess =
  | { readonly k: "send"; readonly to: number; readonly messages: ExchangeMessage[] }
  | { readonly k: "ack"; readonly n: number }
  | { readonly k: "committed"; readonly worker: number; readonly frontier: number }
  | { readonly k: "snapshot"; readonly stats: SnapshotStats }
  | {
      readonly k: "stats";
      readonly epoch: number;
      readonly steps: StepCount[];
      readonly lastCommit: Commit | undefined;
      /** The connectors' metrics of this thread (Kafka lag, messages): read whole, so a re-sent counter never adds up twice. */
      readonly metrics: RegistryJson;
    }
  /** The thread loaded the dataflow and built its worker. */
  | { readonly k: "started" }
  | { readonly k: "done" }
  | { readonly k: "failed"; readonly line: string; readonly detail: string }
  | { readonly k: "answer"; readonly id: number; readonly answer: StateAnswer };

export type ProcessToThread =
  | { readonly k: "exchange"; readonly from: number; readonly messages: ExchangeMessage[] }
  | { readonly k: "congested"; readonly value: boolean }
  /** Every worker of the cluster has committed below `frontier` (StateStore.onClusterCommit). */
  | { readonly k: "cluster"; readonly frontier: number }
  /** A live state query for the thread's worker, answered with the same id. */
  | { readonly k: "query"; readonly id: number; readonly query: StateQuery }
  | { readonly k: "abort"; readonly reason: string };

type PeerMessage =
  | { readonly k: "x"; readonly from: number; readonly messages: ExchangeMessage[] }
  | { readonly k: "ack"; readonly n: number };

/** A link's credit count: batches sent, and how many of them the receiver acknowledged. */
class Credits {
  sent = 0;
  acked = 0;
  get full(): boolean {
    return this.sent - this.acked > MAX_IN_FLIGHT;
  }
}

/**
 * A worker thread's side: its Transport (direct to peer threads, through the process to
 * other processes) and the backpressure the worker loop checks before reading sources.
 */
export class ThreadLinks implements Transport {
  readonly #process: MessagePort;
  readonly #peers = new Map<number, { readonly port: MessagePort; readonly credits: Credits }>();
  readonly #early: Array<[number, ExchangeMessage[]]> = [];
  readonly #drained: Array<() => void> = [];
  #receive: ((from: number, messages: ExchangeMessage[]) => void) | undefined;
  #meshCongested = false;
  #fromProcess = 0;
  readonly #clusterListeners: Array<(frontier: number) => void> = [];
  readonly #index: number;
  #answer: ((query: StateQuery) => Promise<StateAnswer>) | undefined;

  constructor(data: Pick<ThreadData, "index" | "process" | "peers">, onAbort: (reason: string) => void) {
    this.#index = data.index;
    this.#process = data.process;
    data.process.on("message", (m: ProcessToThread) => {
      if (m.k === "exchange") {
        this.#deliver(m.from, m.messages);
        if (++this.#fromProcess % ACK_EVERY === 0) this.post({ k: "ack", n: this.#fromProcess });
      } else if (m.k === "congested") {
        this.#meshCongested = m.value;
        if (!m.value) this.#drain();
      } else if (m.k === "cluster") {
        for (const listener of this.#clusterListeners) listener(m.frontier);
      } else if (m.k === "query") {
        const answered =
          this.#answer?.(m.query) ??
          Promise.resolve<StateAnswer>({ kind: "error", status: 503, message: "the worker is starting" });
        void answered.then((answer) => this.post({ k: "answer", id: m.id, answer }));
      } else onAbort(m.reason);
    });
    for (const [index, port] of data.peers) {
      const credits = new Credits();
      let received = 0;
      port.on("message", (m: PeerMessage) => {
        if (m.k === "x") {
          this.#deliver(m.from, m.messages);
          if (++received % ACK_EVERY === 0) port.postMessage({ k: "ack", n: received } satisfies PeerMessage);
          return;
        }
        const wasFull = credits.full;
        credits.acked = m.n;
        if (wasFull && !credits.full) this.#drain();
      });
      this.#peers.set(index, { port, credits });
    }
  }

  send(to: number, batch: ExchangeMessage[]): void {
    const messages = packMessages(batch);
    const peer = this.#peers.get(to);
    if (peer === undefined) {
      this.post({ k: "send", to, messages });
      return;
    }
    peer.port.postMessage({ k: "x", from: this.#index, messages } satisfies PeerMessage);
    peer.credits.sent++;
  }

  listen(receive: (from: number, messages: ExchangeMessage[]) => void): void {
    this.#receive = receive;
    for (const [from, messages] of this.#early.splice(0)) receive(from, messages);
  }

  congested(): boolean {
    if (this.#meshCongested) return true;
    for (const { credits } of this.#peers.values()) if (credits.full) return true;
    return false;
  }

  onDrain(listener: () => void): void {
    this.#drained.push(listener);
  }

  /** The cluster's committed frontier, as the process's store hears it. */
  onClusterCommit(listener: (frontier: number) => void): void {
    this.#clusterListeners.push(listener);
  }

  /** Who answers the state queries the process's thread forwards. */
  answerQueries(answer: (query: StateQuery) => Promise<StateAnswer>): void {
    this.#answer = answer;
  }

  /** To the process's thread. */
  post(message: ThreadToProcess): void {
    this.#process.postMessage(message);
  }

  close(): void {
    this.#process.close();
    for (const { port } of this.#peers.values()) port.close();
  }

  #deliver(from: number, messages: ExchangeMessage[]): void {
    if (this.#receive === undefined) this.#early.push([from, messages]);
    else this.#receive(from, messages);
  }

  #drain(): void {
    for (const listener of this.#drained) listener();
  }
}

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
