/**
 * A worker thread's links (threads.ts): to its peer threads, each a MessageChannel whose
 * exchange batches are acknowledged in credits, and to the process's thread. Apart from
 * threads.ts, which starts and watches the threads from the process's side, so that a
 * thread imports only its own side (issue 18: every module a thread imports is compiled
 * and linked again in each of them before its first output).
 */
import type { MessagePort } from "node:worker_threads";
import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { StateAnswer, StateQuery } from "../engine/state-query.ts";
import { type ExchangeMessage, packMessages, type Transport } from "../engine/transport.ts";
import type { Commit, StepCount } from "../engine/worker.ts";
import type { SnapshotStats } from "../recovery/store.ts";

/** Batches a link may have unacknowledged before its sender pauses. */
export const MAX_IN_FLIGHT = 64;
/** A receiver acknowledges every this many batches. */
export const ACK_EVERY = 16;
/** What a thread's own prom-client registry holds (connector metrics), as `getMetricsAsJSON` gives it. */
export type RegistryJson = MetricObjectWithValues<MetricValue<string>>[];

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
export class Credits {
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
