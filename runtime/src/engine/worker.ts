/**
 * One worker: an instance of every step of the dataflow, driven by a loop that polls
 * sources, delivers exchanged items, fires notifications and closes epochs. W workers
 * per process times P processes run the same graph; keyed state is split among them.
 */
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { Dataflow } from "../dataflow.ts";
import { BuildError } from "../errors.ts";
import { type CoreStep, stepsToRun } from "../graph.ts";
import { isFixedPartitionedSink, isTransactionalSink } from "../outputs.ts";
import { Exchange } from "./exchange.ts";
import {
  BranchOp,
  DynamicSinkOp,
  FixedSinkOp,
  FlatMapBatchOp,
  InputOp,
  InspectDebugOp,
  MergeOp,
  type Op,
  PassOp,
  StatefulBatchOp,
  type TimedOp,
  TransactionalSinkOp,
  type WorkerContext,
} from "./ops.ts";
import { keyOwner } from "./owners.ts";
import { pageOf, type StateAnswer, type StateQuery, valueAnswer } from "./state-query.ts";
import type { StateStore } from "./state-store.ts";
import type { Consumer, Emitter } from "./stream.ts";
import type { ExchangeMessage, Transport } from "./transport.ts";

const INF = Number.POSITIVE_INFINITY;
/** The longest the loop computes without letting timers and sockets run. */
const MAX_BUSY_MS = 10;

export interface WorkerOptions {
  readonly index: number;
  readonly count: number;
  /** Milliseconds between epochs (the snapshot interval when recovery is on). */
  readonly epochIntervalMs: number;
  readonly transport?: Transport;
  /** Pauses reading sources while outgoing links are full, so memory stays bounded. */
  readonly backpressure?: { congested(): boolean; onDrain(listener: () => void): void };
  readonly store?: StateStore;
  readonly signal?: AbortSignal;
  /**
   * Count the items into each step and track windowed steps' watermarks (default true).
   * Off only to measure what counting costs (`WAXFLOW_STEP_METRICS=false`).
   */
  readonly stepMetrics?: boolean;
}

export interface StepCount {
  readonly stepId: string;
  /** Items delivered to the step on this worker, before any exchange moved them. */
  readonly itemsIn: number;
  readonly itemsOut: number;
  /** Keys whose state this worker holds, for a stateful step. */
  readonly keys?: number;
  /** The furthest watermark of the step's keys (ms since the Unix epoch), for a windowed step that has one. */
  readonly watermark?: number;
}

/** The last epoch a worker made durable in its recovery store, and when. */
export interface Commit {
  readonly epoch: number;
  /** Milliseconds since the Unix epoch. */
  readonly at: number;
}

export class Worker {
  readonly index: number;
  readonly count: number;
  epoch: number;
  readonly #flow: Dataflow;
  readonly #opts: WorkerOptions;
  readonly #ctx: WorkerContext;
  readonly #ops: Op[] = [];
  readonly #inputs: InputOp[] = [];
  readonly #timed: TimedOp[] = [];
  /** In step order, so a merge flushed into a later merge is flushed in the same pass. */
  readonly #merges: MergeOp[] = [];
  readonly #emitters = new Map<string, Emitter>();
  readonly #itemsIn = new Map<string, { n: number }>();
  readonly #exchanges: Exchange[] = [];
  readonly #inbox: Array<[number, ExchangeMessage[]]> = [];
  #outbox: ExchangeMessage[][] = [];
  #failure: unknown;
  #wake: (() => void) | undefined;
  /** Set when something happened while the loop was busy, so it must not sleep. */
  #woken = false;
  #committed = 0;
  #lastCommit: Commit | undefined;
  #lastEpochWritten = 0;
  /** Live state queries, answered between two activations so no step is mid-batch. */
  readonly #queries: Array<{ readonly query: StateQuery; readonly answer: (a: StateAnswer) => void }> = [];
  /** The loop no longer runs: queries are answered at once from the final state. */
  #stopped = false;
  #built = false;

  constructor(flow: Dataflow, opts: WorkerOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 1)
      throw new RangeError(`worker count must be >= 1, got ${opts.count}`);
    if (opts.count > 1 && opts.transport === undefined)
      throw new Error("a transport is needed for more than one worker");
    if (!(opts.epochIntervalMs > 0)) throw new RangeError(`epoch interval must be > 0 ms, got ${opts.epochIntervalMs}`);
    this.#flow = flow;
    this.#opts = opts;
    this.index = opts.index;
    this.count = opts.count;
    this.epoch = opts.store?.resumeEpoch ?? 1;
    this.#committed = this.epoch;
    const store = opts.store === undefined ? undefined : this.#trackEpochs(opts.store);
    this.#ctx = {
      index: opts.index,
      count: opts.count,
      startEpoch: this.epoch,
      epochIntervalMs: opts.epochIntervalMs,
      store,
      fail: (err) => this.#fail(err),
      wake: () => this.#signalWake(),
      now: () => Date.now(),
    };
    this.#outbox = Array.from({ length: opts.count }, () => []);
    opts.transport?.listen((from, messages) => {
      this.#inbox.push([from, messages]);
      this.#signalWake();
    });
    opts.backpressure?.onDrain(() => this.#signalWake());
    opts.signal?.addEventListener("abort", () => this.#fail(opts.signal?.reason), { once: true });
  }

  /** Items into and out of each core step so far on this worker, and the state it holds. */
  stepCounts(): StepCount[] {
    return this.#ops.map((op) => {
      const count: StepCount = {
        stepId: op.stepId,
        itemsIn: this.#itemsIn.get(op.stepId)?.n ?? 0,
        itemsOut: this.#emitters.get(`${op.stepId}.down`)?.count ?? 0,
      };
      if (!(op instanceof StatefulBatchOp)) return count;
      const watermark = op.watermark;
      return Number.isFinite(watermark) ? { ...count, keys: op.keyCount, watermark } : { ...count, keys: op.keyCount };
    });
  }

  /** The last epoch this worker committed in this run; undefined before its first commit or without recovery. */
  get lastCommit(): Commit | undefined {
    return this.#lastCommit;
  }

  /**
   * Answers a live query about this worker's state: at the loop's next turn, between two
   * activations; at once when the loop has ended. Queries before the state is loaded wait.
   */
  query(query: StateQuery): Promise<StateAnswer> {
    const { promise, resolve } = Promise.withResolvers<StateAnswer>();
    this.#queries.push({ query, answer: resolve });
    if (this.#stopped) this.#answerQueries();
    else this.#signalWake();
    return promise;
  }

  async run(): Promise<void> {
    try {
      await this.#loop();
    } finally {
      this.#stopped = true;
      this.#answerQueries();
    }
  }

  async #loop(): Promise<void> {
    await this.#build();
    this.#built = true;
    const interval = this.#opts.epochIntervalMs;
    let nextEpochAt = Date.now() + interval;
    let lastYield = performance.now();
    while (this.#progress() < INF) {
      this.#throwIfFailed();
      this.#answerQueries();
      let worked = this.#drainInbox();
      const now = Date.now();
      // Notifications that are due fire before newly read items: they came first.
      for (const op of this.#timed) {
        if (op.nextTime() <= now) {
          op.onTime(now);
          worked = true;
        }
      }
      if (this.#opts.backpressure?.congested() !== true) {
        for (const input of this.#inputs) worked = input.poll(now, this.epoch) || worked;
      }
      if (now >= nextEpochAt) {
        for (const input of this.#inputs) input.closeEpoch(this.epoch);
        this.epoch += 1;
        nextEpochAt = now + interval;
        worked = true;
      }
      // The activation ends: merges release what they received, in argument order.
      for (const merge of this.#merges) merge.flush();
      this.#flush();
      await this.#commit(this.#progress());
      if (worked) {
        if (performance.now() - lastYield > MAX_BUSY_MS) {
          await yieldToEventLoop();
          lastYield = performance.now();
        }
      } else {
        await this.#sleep(Math.min(nextEpochAt, this.#nextTime()) - Date.now());
        lastYield = performance.now();
      }
    }
    await Promise.all(this.#ops.map((op) => op.settled()));
    this.#throwIfFailed();
    await this.#commit(Math.max(this.epoch, this.#lastEpochWritten) + 1);
    await Promise.all(this.#ops.map((op) => op.afterFinalCommit?.()));
  }

  async #build(): Promise<void> {
    if (this.#flow.steps.filter((s) => s.kind === "input").length === 0) {
      throw new BuildError(`dataflow ${JSON.stringify(this.#flow.flowId)} has no input steps`);
    }
    for (const step of stepsToRun(this.#flow.steps)) await this.#place(step);
  }

  /** Routes a step's items to `target` through a new exchange: to the worker `route` names. */
  #exchange(route: (item: unknown) => number, target: Consumer): Consumer {
    const send = (to: number, message: ExchangeMessage) => this.#outbox[to]?.push(message);
    const ex = new Exchange(this.#exchanges.length, { ...this.#ctx, send }, route, target);
    this.#exchanges.push(ex);
    return ex;
  }

  /** Feeds `consumer` from stream `streamId`, counting the items step `stepId` takes in. */
  #connect(stepId: string, streamId: string, consumer: Consumer): void {
    const upstream = this.#emitters.get(streamId);
    if (upstream === undefined) throw new BuildError(`step ${JSON.stringify(stepId)} reads unknown stream ${streamId}`);
    if (this.#opts.stepMetrics === false) {
      upstream.consumers.push(consumer);
      return;
    }
    // Counted per batch where the step is fed, so /metrics costs nothing per item.
    const counter = this.#itemsIn.get(stepId) ?? { n: 0 };
    this.#itemsIn.set(stepId, counter);
    upstream.consumers.push({
      items: (epoch, batch) => {
        counter.n += batch.length;
        consumer.items(epoch, batch);
      },
      frontier: (f) => consumer.frontier(f),
    });
  }

  /** Instantiates one core step on this worker and wires it to the streams it reads and writes. */
  async #place(step: CoreStep): Promise<void> {
    const ctx = this.#ctx;
    switch (step.kind) {
      case "input": {
        const op = await InputOp.build(step, ctx);
        this.#emitters.set(step.down, op.down);
        this.#inputs.push(op);
        this.#ops.push(op);
        break;
      }
      case "flatMapBatch": {
        const op = new FlatMapBatchOp(step, ctx);
        this.#connect(step.stepId, step.up, op);
        this.#emitters.set(step.down, op.down);
        this.#ops.push(op);
        break;
      }
      case "branch": {
        const op = new BranchOp(step, ctx);
        this.#connect(step.stepId, step.up, op);
        this.#emitters.set(step.trues, op.trues);
        this.#emitters.set(step.falses, op.falses);
        this.#ops.push(op);
        break;
      }
      case "inspectDebug": {
        const op = new InspectDebugOp(step, ctx);
        this.#connect(step.stepId, step.up, op);
        this.#emitters.set(step.down, op.down);
        this.#ops.push(op);
        break;
      }
      case "merge": {
        const op = new MergeOp(step.stepId, ctx, step.ups.length);
        for (const [i, up] of step.ups.entries()) this.#connect(step.stepId, up, op.input(i));
        this.#emitters.set(step.down, op.down);
        this.#merges.push(op);
        this.#ops.push(op);
        break;
      }
      case "redistribute": {
        const op = new PassOp(step.stepId, ctx);
        let next = this.index;
        this.#connect(
          step.stepId,
          step.up,
          this.#exchange(() => (next = (next + 1) % this.count), op),
        );
        this.#emitters.set(step.down, op.down);
        this.#ops.push(op);
        break;
      }
      case "statefulBatch": {
        const op = new StatefulBatchOp(step, ctx, this.#opts.stepMetrics !== false);
        const route = (item: unknown): number =>
          Array.isArray(item) && typeof item[0] === "string" ? keyOwner(item[0], this.count) : this.index;
        this.#connect(step.stepId, step.up, this.#exchange(route, op));
        this.#emitters.set(step.down, op.down);
        this.#timed.push(op);
        this.#ops.push(op);
        break;
      }
      case "output": {
        if (isFixedPartitionedSink(step.sink)) {
          const { op, route } = await FixedSinkOp.build(step, ctx);
          this.#connect(step.stepId, step.up, this.#exchange(route, op));
          this.#ops.push(op);
        } else if (isTransactionalSink(step.sink) && ctx.store !== undefined) {
          const op = await TransactionalSinkOp.build(step, ctx, ctx.store);
          this.#connect(step.stepId, step.up, op);
          this.#ops.push(op);
        } else {
          const op = await DynamicSinkOp.build(step, ctx);
          this.#connect(step.stepId, step.up, op);
          this.#ops.push(op);
        }
        break;
      }
    }
  }

  #answerQueries(): void {
    for (const { query, answer } of this.#queries.splice(0)) answer(this.#answer(query));
  }

  #answer(query: StateQuery): StateAnswer {
    if (!this.#built) return { kind: "error", status: 503, message: `worker ${this.index} stopped before it started` };
    const op = this.#ops.find((o) => o.stepId === query.stepId);
    if (!(op instanceof StatefulBatchOp)) {
      return { kind: "error", status: 404, message: `worker ${this.index} has no stateful step ${query.stepId}` };
    }
    if (query.kind === "list") return { kind: "keys", keys: pageOf(op.keys(), query) };
    try {
      const { found, state } = op.stateOf(query.key);
      return valueAnswer(found, state);
    } catch (err) {
      return { kind: "error", status: 500, message: err instanceof Error ? err.message : String(err) };
    }
  }

  #trackEpochs(store: StateStore): StateStore {
    return {
      resumeEpoch: store.resumeEpoch,
      load: (stepId, owns) => store.load(stepId, owns),
      write: (stepId, key, epoch, state) => {
        if (epoch > this.#lastEpochWritten) this.#lastEpochWritten = epoch;
        store.write(stepId, key, epoch, state);
      },
      commit: (worker, frontier) => store.commit(worker, frontier),
      onClusterCommit: store.onClusterCommit?.bind(store),
    };
  }

  #progress(): number {
    let min = INF;
    for (const op of this.#ops) {
      const p = op.progress();
      if (p < min) min = p;
    }
    return min;
  }

  async #commit(frontier: number): Promise<void> {
    const store = this.#opts.store;
    if (store === undefined || frontier <= this.#committed || frontier === INF) return;
    this.#committed = frontier;
    await store.commit(this.index, frontier);
    this.#lastCommit = { epoch: frontier - 1, at: Date.now() };
  }

  #nextTime(): number {
    let next = INF;
    for (const op of [...this.#inputs, ...this.#timed]) {
      const t = op.nextTime();
      if (t < next) next = t;
    }
    return next;
  }

  #drainInbox(): boolean {
    if (this.#inbox.length === 0) return false;
    for (const [from, messages] of this.#inbox.splice(0)) {
      for (const message of messages) {
        const ex = this.#exchanges[message.exchange];
        if (ex === undefined) throw new Error(`message for unknown exchange ${message.exchange} from worker ${from}`);
        ex.receive(from, message);
      }
    }
    return true;
  }

  #flush(): void {
    const transport = this.#opts.transport;
    if (transport === undefined) return;
    this.#outbox.forEach((messages, to) => {
      if (messages.length === 0) return;
      this.#outbox[to] = [];
      transport.send(to, messages);
    });
  }

  #signalWake(): void {
    if (this.#wake === undefined) this.#woken = true;
    else this.#wake();
  }

  #sleep(ms: number): Promise<void> {
    const woken = this.#woken;
    this.#woken = false;
    if (woken || this.#inbox.length > 0 || this.#failure !== undefined) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    this.#wake = () => {
      clearTimeout(timer);
      resolve();
    };
    return promise.finally(() => {
      this.#wake = undefined;
    });
  }

  #fail(err: unknown): void {
    if (this.#failure === undefined) this.#failure = err ?? new Error("worker aborted");
    this.#signalWake();
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}
