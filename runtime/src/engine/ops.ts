/**
 * Instances of the core steps inside one worker. Stateless steps pass epochs and
 * frontiers straight through; steps with state (statefulBatch, sinks, inputs) align on
 * epochs and write snapshots when an epoch closes.
 */
import { isIterable, StepError, typeError } from "../errors.ts";
import type {
  BranchStep,
  FlatMapBatchStep,
  InPlaceLogic,
  InputStep,
  InspectDebugStep,
  OutputStep,
  StatefulBatchLogic,
  StatefulBatchStep,
} from "../graph.ts";
import { isFixedPartitionedSource, type StatefulSourcePartition, type StatelessSourcePartition } from "../inputs.ts";
import {
  type FixedPartitionedSink,
  isFixedPartitionedSink,
  isTransactionalSink,
  type StatefulSinkPartition,
  type StatelessSinkPartition,
  type TransactionalSinkPartition,
} from "../outputs.ts";
import { EpochAligner, type EpochHandler } from "./aligner.ts";
import { stableHash } from "./hash.ts";
import { keyOwner, partitionOwners, slotKey, slotOwner } from "./owners.ts";
import { Serial } from "./serial.ts";
import type { StateStore } from "./state-store.ts";
import { type Consumer, Emitter, MinFrontier } from "./stream.ts";
import { callUser, callUserAsync, failure, InPartition, WHOLE_STEP, wholeStep } from "./user-code.ts";
import { buildingFor } from "./worker-scope.ts";

const INF = Number.POSITIVE_INFINITY;
/** How long an idle partition without `nextAwake` waits before it is polled again. */
const IDLE_POLL_MS = 5;

export interface WorkerContext {
  readonly index: number;
  readonly count: number;
  readonly startEpoch: number;
  readonly epochIntervalMs: number;
  readonly store: StateStore | undefined;
  fail(err: unknown): void;
  wake(): void;
  now(): number;
}

/** What the worker loop asks of every instance. */
export interface Op {
  readonly stepId: string;
  /** Every epoch below this is finished here, snapshots included. */
  progress(): number;
  /** Resolves once asynchronous work (writes, closes) has finished. */
  settled(): Promise<void>;
  /** Runs once the worker's final frontier is durable, before the worker ends. */
  afterFinalCommit?(): Promise<void>;
}

export interface TimedOp {
  nextTime(): number;
  onTime(now: number): void;
}

function keyed(stepId: string, item: unknown): [string, unknown] {
  if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== "string") {
    throw typeError(stepId, item, "expected a [key, value] pair with a string key; key the stream with keyOn first");
  }
  return item as [string, unknown];
}

/** A batch a user function returned, as an array; `Array.from` would turn a non-iterable into `[]`. */
function toBatch(stepId: string, value: unknown, what: string): unknown[] {
  if (Array.isArray(value)) return value;
  if (!isIterable(value)) {
    const got = value === null ? "null" : typeof value;
    throw new StepError(stepId, new TypeError(`${what} must return an iterable, got ${got}`));
  }
  return Array.from(value);
}

/** A pass-through step: output frontier is input frontier. */
abstract class Stateless implements Op, Consumer {
  readonly down: Emitter;
  readonly stepId: string;

  constructor(stepId: string, ctx: WorkerContext) {
    this.stepId = stepId;
    this.down = new Emitter(ctx.startEpoch);
  }

  abstract items(epoch: number, batch: unknown[]): void;

  frontier(frontier: number): void {
    this.down.advance(frontier);
  }

  progress(): number {
    return this.down.frontier;
  }

  async settled(): Promise<void> {}
}

export class FlatMapBatchOp extends Stateless {
  private readonly step: FlatMapBatchStep;
  constructor(step: FlatMapBatchStep, ctx: WorkerContext) {
    super(step.stepId, ctx);
    this.step = step;
  }

  items(epoch: number, batch: unknown[]): void {
    const { step, stepId } = this;
    const out = callUser(stepId, () => toBatch(stepId, step.mapper(batch), "mapper"), wholeStep);
    this.down.push(epoch, out);
  }
}

export class BranchOp implements Op, Consumer {
  readonly trues: Emitter;
  readonly falses: Emitter;
  readonly stepId: string;
  private readonly step: BranchStep;

  constructor(step: BranchStep, ctx: WorkerContext) {
    this.step = step;
    this.stepId = step.stepId;
    this.trues = new Emitter(ctx.startEpoch);
    this.falses = new Emitter(ctx.startEpoch);
  }

  items(epoch: number, batch: unknown[]): void {
    const trues: unknown[] = [];
    const falses: unknown[] = [];
    const { predicate } = this.step;
    const { stepId } = this;
    let at = 0;
    callUser(
      stepId,
      () => {
        for (; at < batch.length; at++) {
          const item = batch[at];
          const verdict: unknown = predicate(item);
          if (verdict === true) trues.push(item);
          else if (verdict === false) falses.push(item);
          else throw typeError(stepId, item, `predicate must return a boolean, got ${typeof verdict}`);
        }
      },
      () => batch[at],
    );
    this.trues.push(epoch, trues);
    this.falses.push(epoch, falses);
  }

  frontier(frontier: number): void {
    this.trues.advance(frontier);
    this.falses.advance(frontier);
  }

  progress(): number {
    return this.trues.frontier;
  }

  async settled(): Promise<void> {}
}

export class InspectDebugOp extends Stateless {
  private readonly step: InspectDebugStep;
  private readonly ctx: WorkerContext;
  constructor(step: InspectDebugStep, ctx: WorkerContext) {
    super(step.stepId, ctx);
    this.step = step;
    this.ctx = ctx;
  }

  items(epoch: number, batch: unknown[]): void {
    const { inspector } = this.step;
    const { stepId } = this;
    const worker = this.ctx.index;
    let at = 0;
    callUser(
      stepId,
      () => {
        for (; at < batch.length; at++) inspector(stepId, batch[at], epoch, worker);
      },
      () => batch[at],
    );
    this.down.push(epoch, batch);
  }
}

/** Redistribute, after its exchange: items pass. */
export class PassOp extends Stateless {
  items(epoch: number, batch: unknown[]): void {
    this.down.push(epoch, batch);
  }
}

/**
 * Merge. Items received in one activation of the worker leave together when the worker
 * flushes it, as one batch per epoch with the first upstream's items first, then the
 * second's, whichever upstream was defined or polled first: Bytewax's merge (timely's
 * concatenate) drains its inputs in argument order, and a join sees the same order.
 * The frontier waits with the items it must not overtake.
 */
export class MergeOp implements Op {
  readonly stepId: string;
  readonly down: Emitter;
  readonly #inputs: MinFrontier;
  /** Per upstream, the batches of this activation. */
  readonly #held: Array<Array<[epoch: number, batch: unknown[]]>>;
  #frontier: number;
  #holding = false;

  constructor(stepId: string, ctx: WorkerContext, inputs: number) {
    this.stepId = stepId;
    this.down = new Emitter(ctx.startEpoch);
    this.#inputs = new MinFrontier(inputs, ctx.startEpoch);
    this.#held = Array.from({ length: inputs }, () => []);
    this.#frontier = ctx.startEpoch;
  }

  input(i: number): Consumer {
    const held = this.#held[i] as Array<[number, unknown[]]>;
    return {
      items: (epoch, batch) => {
        held.push([epoch, batch]);
        this.#holding = true;
      },
      frontier: (f) => {
        this.#frontier = this.#inputs.set(i, f);
        if (this.#frontier > this.down.frontier) this.#holding = true;
      },
    };
  }

  /** Ends the activation: what was received leaves, in argument order. */
  flush(): void {
    if (!this.#holding) return;
    this.#holding = false;
    const byEpoch = new Map<number, unknown[][]>();
    for (const held of this.#held) {
      for (const [epoch, batch] of held) {
        const batches = byEpoch.get(epoch);
        if (batches === undefined) byEpoch.set(epoch, [batch]);
        else batches.push(batch);
      }
      held.length = 0;
    }
    for (const epoch of [...byEpoch.keys()].sort((a, b) => a - b)) {
      const batches = byEpoch.get(epoch) as unknown[][];
      // concat rather than flat(), which V8 implements generically (depth, holes).
      this.down.push(epoch, batches.length === 1 ? (batches[0] as unknown[]) : ([] as unknown[]).concat(...batches));
    }
    this.down.advance(this.#frontier);
  }

  progress(): number {
    return this.down.frontier;
  }

  async settled(): Promise<void> {}
}

type AnyLogic = StatefulBatchLogic<unknown, unknown, unknown>;

/** One key's logic, with its place in the open epoch's snapshot. */
interface KeyState {
  readonly key: string;
  readonly logic: AnyLogic;
  /**
   * What the open epoch's snapshot writes for the key when snapshots are kept: nothing (the
   * key is not in the step's touched list: marked here, so no second lookup per activation),
   * its state, or its deletion (its logic asked to be discarded). One field, not two
   * booleans: with `wake` the object would otherwise grow by 8 B, on every key.
   */
  written: "nothing" | "state" | "deletion";
  /** The key's group while a batch is grouped by map (groupByMap), else undefined. */
  grouping: Group | undefined;
  /** The key's notification while it waits for one, as in the step's `#notify`; else undefined. */
  wake: Wake | undefined;
}

/**
 * When a key asked to be notified (ms). One object per waiting key whose time is rewritten
 * in place: windows ask anew after every activation, and a Map of times boxed a new number
 * each time. Not a field of every key's state, which a double would make 24 B larger.
 */
interface Wake {
  at: number;
}

function byKey(a: readonly [string, ...unknown[]], b: readonly [string, ...unknown[]]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

type Pair = readonly [string, unknown];

/** A key's values in a batch; `entry` is the key's state when it had one before the batch. */
type Group = [key: string, values: unknown[], entry?: KeyState];

// The per-item loops here index rather than use for-of: for-of allocated an iterator
// result per item in this operator (seen in a sampling allocation profile).
/**
 * Groups through the keys' own states (their `grouping`), so a batch of known keys
 * needs no map of its own and no second lookup to activate them; keys new in the
 * batch go into a map made only when one comes.
 */
function groupByMap(stepId: string, items: readonly unknown[], keys: ReadonlyMap<string, KeyState>): Group[] {
  const order: Group[] = [];
  let fresh: Map<string, Group> | undefined;
  try {
    for (let i = 0; i < items.length; i++) {
      const [key, value] = keyed(stepId, items[i]);
      const entry = keys.get(key);
      const group = entry === undefined ? fresh?.get(key) : entry.grouping;
      if (group !== undefined) {
        group[1].push(value);
      } else if (entry !== undefined) {
        entry.grouping = [key, [value], entry];
        order.push(entry.grouping);
      } else {
        const added: Group = [key, [value]];
        if (fresh === undefined) fresh = new Map();
        fresh.set(key, added);
        order.push(added);
      }
    }
  } finally {
    // Also when an item is rejected: no state may keep a group into the next batch.
    for (let i = 0; i < order.length; i++) {
      const entry = (order[i] as Group)[2];
      if (entry !== undefined) entry.grouping = undefined;
    }
  }
  return order.sort(byKey);
}

/** The batch's `[key, value]` items, checked, in a stable sort by key: a key's values are a run, in arrival order. */
function sortByKey(stepId: string, items: readonly unknown[]): readonly Pair[] {
  for (let i = 0; i < items.length; i++) keyed(stepId, items[i]);
  return (items as Pair[]).slice().sort(byKey);
}

/** The values of the run `sorted[start..end)`, in arrival order. */
function runValues(sorted: readonly Pair[], start: number, end: number): unknown[] {
  const values = new Array<unknown>(end - start);
  for (let i = start; i < end; i++) values[i - start] = (sorted[i] as Pair)[1];
  return values;
}

/** The end of the run of `sorted[start]`'s key. */
function runEnd(sorted: readonly Pair[], start: number): number {
  const key = (sorted[start] as Pair)[0];
  let end = start + 1;
  while (end < sorted.length && (sorted[end] as Pair)[0] === key) end++;
  return end;
}

export class StatefulBatchOp implements Op, Consumer, TimedOp, EpochHandler {
  readonly stepId: string;
  readonly down: Emitter;
  readonly #keys = new Map<string, KeyState>();
  /** The keys waiting for a notification. */
  readonly #notify = new Map<string, Wake>();
  #nextNotify = INF;
  /** Keys whose state changed in the open epoch; tracked only when snapshots are kept. */
  readonly #touched: KeyState[] | undefined;
  readonly #aligner: EpochAligner;
  /** Whether the last batch had few distinct keys; picks how the next one is grouped. */
  #fewKeys = false;
  /** The furthest watermark of a windowed step's keys; tracked only when the step reports one. */
  #watermark = Number.NEGATIVE_INFINITY;
  readonly #watermarkOf: ((logic: AnyLogic) => number) | undefined;
  /**
   * Whether the logic being called was given the key's values (onBatch): a failure is
   * then reported on `[key, values]`, otherwise on the key. A run of keys is wrapped in
   * one callUser, whose report reads which key from the run's position; only this flag
   * is stored per call, a boolean, which costs no write barrier (user-code.ts).
   */
  #givenValues = false;
  /** The position in the run of keys being activated (a small integer: no write barrier either). */
  #at = 0;

  private readonly step: StatefulBatchStep;
  private readonly ctx: WorkerContext;

  /** `trackWatermark`: follow the watermark of a step that reports one (see `StatefulBatchStep.watermarkOf`). */
  constructor(step: StatefulBatchStep, ctx: WorkerContext, trackWatermark = true) {
    this.step = step;
    this.ctx = ctx;
    this.#watermarkOf = trackWatermark ? step.watermarkOf : undefined;
    this.stepId = step.stepId;
    this.down = new Emitter(ctx.startEpoch);
    this.#aligner = new EpochAligner(ctx.startEpoch, this);
    this.#touched = ctx.store === undefined ? undefined : [];
    if (ctx.store === undefined) return;
    // Once per key at start: the store's reads between the keys are not user code.
    for (const [key, state] of ctx.store.load(this.stepId, (key) => keyOwner(key, ctx.count) === ctx.index)) {
      callUser(
        this.stepId,
        () => this.#schedule(this.#build(key, state)),
        () => key,
      );
    }
  }

  /** Keys whose state this worker holds. */
  get keyCount(): number {
    return this.#keys.size;
  }

  /** A key's state as its snapshot would record it now; `found` false when the key has none. */
  stateOf(key: string): { found: boolean; state?: unknown } {
    const entry = this.#keys.get(key);
    if (entry === undefined) return { found: false };
    return {
      found: true,
      state: callUser(
        this.stepId,
        () => entry.logic.snapshot(),
        () => key,
      ),
    };
  }

  /** The keys this worker holds. */
  keys(): IterableIterator<string> {
    return this.#keys.keys();
  }

  /** The furthest finite watermark any key has reached; -Infinity when none has or the step has no watermark. */
  get watermark(): number {
    return this.#watermark;
  }

  items(epoch: number, batch: unknown[]): void {
    this.#aligner.items(epoch, batch);
  }

  frontier(frontier: number): void {
    this.#aligner.advance(frontier);
    this.down.advance(this.#aligner.frontier);
  }

  progress(): number {
    return this.#aligner.frontier;
  }

  async settled(): Promise<void> {}

  /** Groups the batch by key (keys sorted, values in arrival order) and activates each key once. */
  process(epoch: number, batch: unknown[]): void {
    const out: unknown[] = [];
    // Both groupings check each item is a [key, value] pair before any key is activated.
    // The next batch likely looks like this one: a map of per-key arrays wins when keys
    // repeat, a sort of the items when most keys are distinct.
    if (this.#fewKeys) {
      const groups = groupByMap(this.stepId, batch, this.#keys);
      this.#fewKeys = groups.length * 4 < batch.length;
      callUser(
        this.stepId,
        () => this.#activateGroups(groups, out),
        () => {
          const group = groups[this.#at];
          if (group === undefined) return undefined;
          return this.#givenValues ? [group[0], group[1]] : group[0];
        },
      );
    } else {
      const sorted = sortByKey(this.stepId, batch);
      const runs = callUser(
        this.stepId,
        () => this.#activateRuns(sorted, out),
        () => {
          // #at is the run's start here.
          const key = (sorted[this.#at] as Pair)[0];
          return this.#givenValues ? [key, runValues(sorted, this.#at, runEnd(sorted, this.#at))] : key;
        },
      );
      this.#fewKeys = runs * 4 < batch.length;
    }
    this.down.push(epoch, out);
  }

  nextTime(): number {
    return this.#aligner.frontier === INF ? INF : this.#nextNotify;
  }

  onTime(now: number): void {
    if (now < this.#nextNotify || this.#aligner.frontier === INF) return;
    const due: string[] = [];
    let next = INF;
    // forEach rather than for-of: iterating the entries made a [key, time] array per key
    // and call, and a windowed step's keys are often due every few milliseconds.
    this.#notify.forEach(({ at }, key) => {
      if (at <= now) due.push(key);
      else if (at < next) next = at;
    });
    this.#nextNotify = next;
    const out: unknown[] = [];
    due.sort();
    callUser(
      this.stepId,
      () => this.#signalKeys(due, "onNotify", out),
      () => due[this.#at],
    );
    this.down.push(this.#aligner.frontier, out);
  }

  closeEpoch(epoch: number): void {
    const touched = this.#touched;
    if (touched === undefined || touched.length === 0) return;
    const store = this.ctx.store as StateStore;
    // A key discarded and rebuilt within the epoch is listed twice; the later write wins.
    // Each snapshot is wrapped on its own: the store's writes between them are not user code.
    for (const entry of touched) {
      const deleted = entry.written === "deletion";
      entry.written = "nothing";
      const state = deleted
        ? undefined
        : callUser(
            this.stepId,
            () => entry.logic.snapshot(),
            () => entry.key,
          );
      store.write(this.stepId, entry.key, epoch, state);
    }
    touched.length = 0;
  }

  end(lastEpoch: number): void {
    const out: unknown[] = [];
    const keys = [...this.#keys.keys()].sort();
    callUser(
      this.stepId,
      () => this.#signalKeys(keys, "onEof", out),
      () => keys[this.#at],
    );
    this.down.push(lastEpoch, out);
    this.closeEpoch(lastEpoch);
  }

  /** Activates each group's key with its values; `#at` says which group, for a failure's report. */
  #activateGroups(groups: Group[], out: unknown[]): void {
    for (let at = 0; at < groups.length; at++) {
      this.#at = at;
      const [key, values, known] = groups[at] as Group;
      this.#activate(known ?? this.#keys.get(key) ?? this.#build(key, undefined), "onBatch", values, out);
    }
  }

  /**
   * Activates the key of each run of `sorted` with its values, in place when the step's
   * logics take them so; `#at` says which run (its start), for a failure's report. Returns the number of runs.
   */
  #activateRuns(sorted: readonly Pair[], out: unknown[]): number {
    let runs = 0;
    for (let start = 0; start < sorted.length; runs++) {
      this.#at = start;
      const end = runEnd(sorted, start);
      const key = (sorted[start] as Pair)[0];
      const entry = this.#keys.get(key) ?? this.#build(key, undefined);
      if (this.step.inPlace === true) {
        this.#givenValues = true;
        const discard = (entry.logic as AnyLogic & InPlaceLogic).onItems(sorted, start, end, out);
        this.#givenValues = false;
        this.#activated(entry, discard);
      } else {
        this.#activate(entry, "onBatch", runValues(sorted, start, end), out);
      }
      start = end;
    }
    return runs;
  }

  /** Calls `method` of each key of `keys` that still has logic; `#at` says which key, for a failure's report. */
  #signalKeys(keys: readonly string[], method: "onNotify" | "onEof", out: unknown[]): void {
    for (let at = 0; at < keys.length; at++) {
      this.#at = at;
      const key = keys[at] as string;
      const entry = this.#keys.get(key);
      if (method === "onNotify") this.#unschedule(entry);
      if (entry !== undefined) this.#activate(entry, method, undefined, out);
    }
  }

  /** Called inside callUser (see #givenValues), as are #activate and #schedule. */
  #build(key: string, state: unknown): KeyState {
    this.#givenValues = false;
    const entry: KeyState = {
      key,
      logic: this.step.builder(state),
      written: "nothing",
      grouping: undefined,
      wake: undefined,
    };
    this.#keys.set(key, entry);
    return entry;
  }

  #activate(
    entry: KeyState,
    method: "onBatch" | "onNotify" | "onEof",
    values: unknown[] | undefined,
    out: unknown[],
  ): void {
    const { key, logic } = entry;
    this.#givenValues = values !== undefined;
    const [emit, discard] = method === "onBatch" ? logic.onBatch(values as unknown[]) : logic[method]();
    if (Array.isArray(emit)) for (let i = 0; i < emit.length; i++) out.push([key, emit[i]]);
    else for (const value of emit) out.push([key, value]);
    this.#givenValues = false;
    this.#activated(entry, discard);
  }

  /** After a key's logic ran: its snapshot, the watermark, its discard or its next notification. */
  #activated(entry: KeyState, discard: boolean): void {
    const { key, logic } = entry;
    if (this.#touched !== undefined) {
      if (entry.written === "nothing") this.#touched.push(entry);
      entry.written = discard ? "deletion" : "state";
    }
    if (this.#watermarkOf !== undefined) {
      const w = this.#watermarkOf(logic);
      // +Infinity is the end of the stream, not a time.
      if (w > this.#watermark && w !== Number.POSITIVE_INFINITY) this.#watermark = w;
    }
    if (discard) {
      this.#keys.delete(key);
      this.#unschedule(entry);
    } else {
      this.#schedule(entry);
    }
  }

  #schedule(entry: KeyState): void {
    const { key, logic } = entry;
    const at = logic.notifyAt();
    if (at === undefined) {
      this.#unschedule(entry);
      return;
    }
    if (!(at instanceof Date)) throw typeError(this.stepId, key, "notifyAt must return a Date or undefined");
    const t = at.getTime();
    if (entry.wake === undefined) {
      entry.wake = { at: t };
      this.#notify.set(key, entry.wake);
    } else {
      entry.wake.at = t;
    }
    if (t < this.#nextNotify) this.#nextNotify = t;
  }

  #unschedule(entry: KeyState | undefined): void {
    if (entry?.wake === undefined) return;
    entry.wake = undefined;
    this.#notify.delete(entry.key);
  }
}

interface SourceSlot {
  readonly name: string;
  /** What a failure of this partition's code is reported on. */
  readonly on: () => InPartition;
  readonly part: StatefulSourcePartition<unknown, unknown> | StatelessSourcePartition<unknown>;
  readonly stateful: boolean;
  awake: number;
  pending: boolean;
  eof: boolean;
}

export class InputOp implements Op {
  readonly stepId: string;
  readonly down: Emitter;
  readonly #ready: Array<[SourceSlot, Iterable<unknown> | null]> = [];
  /** The epoch whose close waits for a batch in flight. */
  #deferred: number | undefined;
  readonly #closes: Serial;
  #open: number;
  private readonly ctx: WorkerContext;
  private readonly slots: SourceSlot[];

  private constructor(step: InputStep, ctx: WorkerContext, slots: SourceSlot[]) {
    this.ctx = ctx;
    this.slots = slots;
    this.stepId = step.stepId;
    this.down = new Emitter(ctx.startEpoch);
    this.#closes = new Serial(
      (err) => ctx.fail(failure(this.stepId, err, WHOLE_STEP)),
      () => ctx.wake(),
    );
    this.#open = slots.length;
  }

  static async build(step: InputStep, ctx: WorkerContext): Promise<InputOp> {
    const { source, stepId } = step;
    const slots: SourceSlot[] = [];
    const slot = (name: string, part: SourceSlot["part"], stateful: boolean): SourceSlot => ({
      name,
      on: () => new InPartition(name),
      part,
      stateful,
      awake: 0,
      pending: false,
      eof: false,
    });
    await callUserAsync(
      stepId,
      async () => {
        if (isFixedPartitionedSource(source)) {
          const owners = partitionOwners(await source.listParts(), ctx.count);
          const resume = new Map(ctx.store?.load(stepId, (part) => owners.get(part) === ctx.index) ?? []);
          for (const [name, owner] of owners) {
            if (owner !== ctx.index) continue;
            slots.push(
              slot(name, await buildingFor(ctx.index, () => source.buildPart(stepId, name, resume.get(name))), true),
            );
          }
        } else {
          slots.push(slot(`worker-${ctx.index}`, await source.build(stepId, ctx.index, ctx.count), false));
        }
      },
      wholeStep,
    );
    return new InputOp(step, ctx, slots);
  }

  /** Polls due partitions; returns whether any work was done. */
  poll(now: number, workerEpoch: number): boolean {
    // A worker that owns no partition has nothing to read: end at once.
    if (this.#open === 0 && this.down.frontier < INF) {
      this.down.advance(INF);
      return true;
    }
    let worked = this.#drainReady(workerEpoch, now);
    const epoch = this.#deferred ?? workerEpoch;
    for (const slot of this.slots) {
      if (slot.eof || slot.pending || slot.awake > now) continue;
      const result = callUser(this.stepId, () => slot.part.nextBatch(), slot.on);
      worked = true;
      if (result instanceof Promise) {
        slot.pending = true;
        result.then(
          (batch) => {
            this.#ready.push([slot, batch]);
            this.ctx.wake();
          },
          (err: unknown) => this.ctx.fail(failure(this.stepId, err, slot.on())),
        );
      } else {
        this.#handle(slot, result, epoch, now);
      }
    }
    return worked;
  }

  nextTime(): number {
    let next = INF;
    for (const slot of this.slots) if (!slot.eof && !slot.pending && slot.awake < next) next = slot.awake;
    return next;
  }

  /**
   * Closes `epoch`: snapshots every open partition's position, then advances. While a
   * partition has a batch in flight its position may already count items the engine
   * has not received, so the close waits for the batch; until then every item of this
   * input stays in the epoch being closed.
   */
  closeEpoch(epoch: number): void {
    this.#drainReady(epoch, this.ctx.now());
    if (this.#open === 0) return;
    if (this.slots.some((slot) => slot.pending)) {
      this.#deferred ??= epoch;
      return;
    }
    const closing = this.#deferred ?? epoch;
    this.#deferred = undefined;
    const store = this.ctx.store;
    if (store !== undefined)
      for (const slot of this.slots) if (!slot.eof && slot.stateful) this.#snapshot(slot, closing, store);
    this.down.advance(epoch + 1);
  }

  progress(): number {
    return this.#open === 0 && this.#closes.idle ? INF : this.down.frontier;
  }

  settled(): Promise<void> {
    return this.#closes.settled();
  }

  #drainReady(workerEpoch: number, now: number): boolean {
    if (this.#ready.length === 0) return false;
    for (const [slot, batch] of this.#ready.splice(0)) {
      slot.pending = false;
      this.#handle(slot, batch, this.#deferred ?? workerEpoch, now);
    }
    if (this.#deferred !== undefined && !this.slots.some((slot) => slot.pending)) this.closeEpoch(workerEpoch - 1);
    return true;
  }

  #handle(slot: SourceSlot, result: Iterable<unknown> | null, epoch: number, now: number): void {
    if (result === null) {
      slot.eof = true;
      this.#open -= 1;
      if (slot.stateful && this.ctx.store !== undefined) this.#snapshot(slot, epoch, this.ctx.store);
      const { part } = slot;
      if (part.close !== undefined) this.#closes.run(() => part.close?.());
      if (this.#open === 0) this.down.advance(INF);
      return;
    }
    const batch = toBatch(this.stepId, result, `nextBatch of partition ${slot.name}`);
    this.down.push(epoch, batch);
    const awake = callUser(this.stepId, () => slot.part.nextAwake?.(), slot.on);
    slot.awake = awake !== undefined ? awake.getTime() : batch.length > 0 ? now : now + IDLE_POLL_MS;
  }

  #snapshot(slot: SourceSlot, epoch: number, store: StateStore): void {
    const part = slot.part as StatefulSourcePartition<unknown, unknown>;
    store.write(
      this.stepId,
      slot.name,
      epoch,
      callUser(this.stepId, () => part.snapshot(), slot.on),
    );
  }
}

/** The receiving end of a partitioned sink: the partitions this worker owns. */
export class FixedSinkOp implements Op, Consumer, EpochHandler {
  readonly stepId: string;
  readonly #aligner: EpochAligner;
  readonly #serial: Serial;
  #done: number;
  private readonly ctx: WorkerContext;
  private readonly sink: FixedPartitionedSink<unknown, unknown>;
  private readonly names: readonly string[];
  private readonly parts: Map<string, StatefulSinkPartition<unknown, unknown>>;

  private constructor(
    stepId: string,
    ctx: WorkerContext,
    sink: FixedPartitionedSink<unknown, unknown>,
    names: readonly string[],
    parts: Map<string, StatefulSinkPartition<unknown, unknown>>,
  ) {
    this.ctx = ctx;
    this.sink = sink;
    this.names = names;
    this.parts = parts;
    this.stepId = stepId;
    this.#done = ctx.startEpoch;
    this.#aligner = new EpochAligner(ctx.startEpoch, this);
    this.#serial = new Serial(
      (err) => ctx.fail(failure(stepId, err, WHOLE_STEP)),
      () => ctx.wake(),
    );
  }

  static async build(
    step: OutputStep,
    ctx: WorkerContext,
  ): Promise<{ op: FixedSinkOp; route: (item: unknown) => number }> {
    if (!isFixedPartitionedSink(step.sink)) throw new Error("not a partitioned sink");
    const sink = step.sink;
    const names = sink.listParts();
    if (names.length === 0) throw new StepError(step.stepId, new Error("sink has no partitions"));
    const owners = partitionOwners(names, ctx.count);
    const resume = new Map(ctx.store?.load(step.stepId, (part) => owners.get(part) === ctx.index) ?? []);
    const parts = new Map<string, StatefulSinkPartition<unknown, unknown>>();
    await callUserAsync(
      step.stepId,
      async () => {
        for (const [name, owner] of owners) {
          if (owner === ctx.index) parts.set(name, await sink.buildPart(step.stepId, name, resume.get(name)));
        }
      },
      wholeStep,
    );
    const op = new FixedSinkOp(step.stepId, ctx, sink, names, parts);
    const route = (item: unknown): number => owners.get(op.partFor(keyed(step.stepId, item)[0])) as number;
    return { op, route };
  }

  /**
   * The partition of `key`. The exchange routes each item by it, one call per item, so
   * it keeps its own catch: a wrapper around each call costs what V8 does not inline
   * (user-code.ts).
   */
  partFor(key: string): string {
    let index: number;
    try {
      index = this.sink.partFn === undefined ? stableHash(key) % this.names.length : this.sink.partFn(key);
    } catch (err) {
      throw failure(this.stepId, err, key);
    }
    const name = this.names[index];
    if (name === undefined) {
      throw typeError(
        this.stepId,
        key,
        `partFn returned ${index}, not an index of the ${this.names.length} partitions`,
      );
    }
    return name;
  }

  items(epoch: number, batch: unknown[]): void {
    this.#aligner.items(epoch, batch);
  }

  frontier(frontier: number): void {
    this.#aligner.advance(frontier);
    this.#serial.run(() => {
      this.#done = frontier;
    });
  }

  process(_epoch: number, batch: unknown[]): void {
    const byPart = new Map<string, unknown[]>();
    for (const item of batch) {
      const [key, value] = keyed(this.stepId, item);
      const name = this.partFor(key);
      const values = byPart.get(name);
      if (values === undefined) byPart.set(name, [value]);
      else values.push(value);
    }
    for (const [name, values] of byPart) {
      const part = this.parts.get(name);
      if (part === undefined)
        throw new Error(`partition ${name} of ${this.stepId} is not owned by worker ${this.ctx.index}`);
      this.#serial.run(() => part.writeBatch(values));
    }
  }

  closeEpoch(epoch: number): void {
    const store = this.ctx.store;
    if (store === undefined) return;
    this.#serial.run(() => {
      for (const [name, part] of this.parts) store.write(this.stepId, name, epoch, part.snapshot());
    });
  }

  end(lastEpoch: number): void {
    this.closeEpoch(lastEpoch);
    for (const part of this.parts.values()) if (part.close !== undefined) this.#serial.run(() => part.close?.());
  }

  progress(): number {
    return this.#done;
  }

  settled(): Promise<void> {
    return this.#serial.settled();
  }
}

export class DynamicSinkOp implements Op, Consumer {
  readonly stepId: string;
  readonly #serial: Serial;
  #done: number;
  private readonly part: StatelessSinkPartition<unknown>;

  private constructor(stepId: string, ctx: WorkerContext, part: StatelessSinkPartition<unknown>) {
    this.part = part;
    this.stepId = stepId;
    this.#done = ctx.startEpoch;
    this.#serial = new Serial(
      (err) => ctx.fail(failure(stepId, err, WHOLE_STEP)),
      () => ctx.wake(),
    );
  }

  static async build(step: OutputStep, ctx: WorkerContext): Promise<DynamicSinkOp> {
    if (isFixedPartitionedSink(step.sink)) throw new Error("not a dynamic sink");
    const { sink, stepId } = step;
    const part = await callUserAsync(stepId, () => sink.build(stepId, ctx.index, ctx.count), wholeStep);
    return new DynamicSinkOp(stepId, ctx, part);
  }

  items(_epoch: number, batch: unknown[]): void {
    this.#serial.run(() => this.part.writeBatch(batch));
  }

  frontier(frontier: number): void {
    if (frontier === INF && this.part.close !== undefined) this.#serial.run(() => this.part.close?.());
    this.#serial.run(() => {
      this.#done = frontier;
    });
  }

  progress(): number {
    return this.#done;
  }

  settled(): Promise<void> {
    return this.#serial.settled();
  }
}

/**
 * A transactional sink's partition on this worker (its slot is the worker's index). At
 * each epoch close it prepares what was written since the last one and records the
 * returned state in the snapshot; once every worker has committed that epoch, it commits.
 * Without recovery there are no durable epochs: such sinks run as plain dynamic sinks.
 */
export class TransactionalSinkOp implements Op, Consumer {
  readonly stepId: string;
  readonly #serial: Serial;
  readonly #ctx: WorkerContext;
  readonly #store: StateStore;
  readonly #part: TransactionalSinkPartition<unknown, unknown>;
  #done: number;
  /** The newest epoch with items since the last prepare; undefined when there are none. */
  #dirty: number | undefined;
  /** The newest frontier heard. */
  #frontier: number;
  /**
   * Items of epochs after `#frontier`, by epoch. Upstream may send them before the
   * frontier reaches them (a StatefulBatchOp emits the new frontier's items before the
   * frontier itself), and they must not join the transaction prepared for the epochs
   * before: a resume at their epoch would replay them after that transaction committed.
   */
  readonly #ahead = new Map<number, unknown[][]>();
  /** The epoch of the newest prepare not yet committed. */
  #prepared: number | undefined;
  #committing: Promise<void> = Promise.resolve();

  private constructor(
    stepId: string,
    ctx: WorkerContext,
    store: StateStore,
    part: TransactionalSinkPartition<unknown, unknown>,
  ) {
    this.stepId = stepId;
    this.#ctx = ctx;
    this.#store = store;
    this.#part = part;
    this.#done = ctx.startEpoch;
    this.#frontier = ctx.startEpoch;
    this.#serial = new Serial(
      (err) => ctx.fail(failure(stepId, err, WHOLE_STEP)),
      () => ctx.wake(),
    );
    store.onClusterCommit?.((frontier) => {
      if (this.#prepared !== undefined && this.#prepared < frontier) this.#commit(this.#prepared);
    });
  }

  static async build(step: OutputStep, ctx: WorkerContext, store: StateStore): Promise<TransactionalSinkOp> {
    if (!isTransactionalSink(step.sink)) throw new Error("not a transactional sink");
    const recovered = new Map<number, unknown>();
    for (const [key, state] of store.load(step.stepId, (key) => slotOwner(key, ctx.count) === ctx.index)) {
      recovered.set(Number(key.slice("slot-".length)), state);
    }
    const { sink, stepId } = step;
    const part = await callUserAsync(
      stepId,
      () => sink.buildTransactional(stepId, ctx.index, ctx.count, recovered, ctx.epochIntervalMs),
      wholeStep,
    );
    return new TransactionalSinkOp(stepId, ctx, store, part);
  }

  items(epoch: number, batch: unknown[]): void {
    if (epoch <= this.#frontier) {
      this.#write(epoch, batch);
      return;
    }
    const waiting = this.#ahead.get(epoch);
    if (waiting === undefined) this.#ahead.set(epoch, [batch]);
    else waiting.push(batch);
  }

  frontier(frontier: number): void {
    // What waited for this frontier belongs to the epochs it closes.
    this.#release(frontier - 1);
    const closed = frontier === INF ? this.#dirty : frontier - 1;
    const dirty = this.#dirty !== undefined;
    this.#dirty = undefined;
    if (frontier === INF) {
      // The end of the stream: the last prepare waits for no other worker (see afterFinalCommit).
      if (this.#prepared !== undefined) this.#commit(this.#prepared);
      this.#serial.run(() => this.#committing);
    }
    if (dirty && closed !== undefined) {
      this.#serial.run(async () => {
        const state = await this.#part.prepare(closed);
        this.#store.write(this.stepId, slotKey(this.#ctx.index), closed, state);
        this.#prepared = closed;
      });
    }
    this.#frontier = frontier;
    this.#release(frontier);
    this.#serial.run(() => {
      this.#done = frontier;
    });
  }

  #write(epoch: number, batch: unknown[]): void {
    this.#dirty = Math.max(this.#dirty ?? epoch, epoch);
    this.#serial.run(() => this.#part.writeBatch(batch));
  }

  /** Writes the waiting items of epochs up to `last`, oldest first. */
  #release(last: number): void {
    for (const epoch of [...this.#ahead.keys()].sort((a, b) => a - b)) {
      if (epoch > last) break;
      for (const batch of this.#ahead.get(epoch) ?? []) this.#write(epoch, batch);
      this.#ahead.delete(epoch);
    }
  }

  /**
   * A bounded stream's last epoch commits once this worker's final snapshot is durable,
   * without waiting for the other workers: a worker that ended earlier stopped
   * committing, so the cluster's frontier would never pass it.
   */
  async afterFinalCommit(): Promise<void> {
    if (this.#prepared !== undefined) this.#commit(this.#prepared);
    await this.#committing;
    if (this.#part.close !== undefined) await this.#part.close();
  }

  #commit(epoch: number): void {
    this.#prepared = undefined;
    this.#committing = this.#committing
      .then(() => this.#part.commit(epoch))
      .then(
        () => this.#ctx.wake(),
        (err: unknown) => this.#ctx.fail(failure(this.stepId, err, WHOLE_STEP)),
      );
  }

  progress(): number {
    return this.#done;
  }

  settled(): Promise<void> {
    return this.#serial.settled();
  }
}
