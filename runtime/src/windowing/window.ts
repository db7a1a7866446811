/**
 * The generic `window` operator: per key, a clock stamps items and keeps the
 * watermark, a windower assigns items to windows and closes them, and a `WindowLogic`
 * per open window accumulates its values. Every other windowing operator is built on it.
 */
import { type KeyedStream, nest, pure } from "../dataflow.ts";
import { BuildError } from "../errors.ts";
import type { LogicResult, StatefulBatchLogic } from "../graph.ts";
import { filterMapValue, statefulBatch } from "../operators/index.ts";
import type { Clock, ClockLogic } from "./clock.ts";
import { toMetadata, type WindowBounds, type Windower, type WindowerLogic, type WindowMetadata } from "./windower.ts";

/** The logic of one window of one key. */
export interface WindowLogic<V, W, S> {
  /** Called with each value in this window; returns values to emit now. */
  onValue(value: V): Iterable<W>;
  /** Called when `original` merges into this window; `original` is dropped afterwards. */
  onMerge(original: WindowLogic<V, W, S>): Iterable<W>;
  /** Called when this window closes. */
  onClose(): Iterable<W>;
  /** State to resume this window from; structured-cloneable. */
  snapshot(): S;
}

/** The streams of a windowing operator, each item keyed and tagged with its window id. */
export interface WindowOut<V, W> {
  /** What the window logic emitted. */
  readonly down: KeyedStream<[windowId: number, value: W]>;
  /** Items that arrived after the watermark passed them, once per window they missed. */
  readonly late: KeyedStream<[windowId: number, value: V]>;
  /** One item per closed window (windows merged into another report there instead). */
  readonly meta: KeyedStream<[windowId: number, meta: WindowMetadata]>;
}

/** What a key's windows snapshot to. */
export interface WindowSnapshot<S> {
  readonly clock: unknown;
  readonly windower: unknown;
  readonly logics: [number, S][];
  /** On-time items waiting for the watermark, as `[value, timestamp]`. */
  readonly queue: [unknown, number][];
}

/**
 * What a key's windows emit, one stream for the three outputs. An emitted value is the
 * pair `down` carries, `[windowId, value]`, so its keyed item passes through unwrap_down
 * as it is (no two arrays more per value); late items and metadata carry a third
 * element, their kind, and are unwrapped into new pairs. A closed window's event holds its
 * bounds, made into metadata only by unwrap_meta: which does not run when nothing reads
 * `meta` (the unwraps are pure steps), as in most dataflows.
 */
type WindowEvent<V, W> =
  | readonly [windowId: number, value: W]
  | readonly [windowId: number, value: V, kind: "late"]
  | readonly [windowId: number, bounds: WindowBounds, kind: "meta"];

type Events<V, W> = WindowEvent<V, W>[];

/**
 * Pushes what a window's logic emitted as events. The per-item loops of this file index
 * arrays rather than use for-of, which allocated an iterator result per item here.
 */
function pushEmits<V, W>(events: Events<V, W>, id: number, emitted: Iterable<W>): void {
  if (!Array.isArray(emitted)) {
    for (const w of emitted) events.push([id, w]);
    return;
  }
  for (let i = 0; i < emitted.length; i++) events.push([id, emitted[i] as W]);
}

/**
 * What every key's `notifyAt` returns, set anew each time: the engine reads it at once
 * and keeps only the number, and a key runs it once per activation, so a `Date` made
 * per call was garbage at once (this module is per thread, so no other thread sees it).
 */
const WAKE_UP = new Date(0);

/** The windows of one key. */
class KeyWindows<V, W, S> implements StatefulBatchLogic<V, WindowEvent<V, W>, WindowSnapshot<S>> {
  #watermark = Number.NEGATIVE_INFINITY;
  readonly #logics: Map<number, WindowLogic<V, W, S>>;
  #queue: [V, number][];
  /**
   * The window the last item went to and its logic: a key's consecutive items mostly
   * share a window, so this spares a map lookup per item. Forgotten when it closes or merges.
   */
  #lastId = Number.NaN;
  #lastLogic: WindowLogic<V, W, S> | undefined;
  /**
   * The timestamp of the item `#apply` is adding. A field rather than an argument: V8
   * does not always inline `#apply` into the per-item loop, and an instant (a double)
   * passed to a call is boxed, a heap number per item; a double field is written in place.
   */
  #applying = Number.NaN;

  private readonly clock: ClockLogic<V, unknown>;
  private readonly windower: WindowerLogic<unknown>;
  private readonly builder: (resumeState: S | undefined) => WindowLogic<V, W, S>;
  private readonly ordered: boolean;

  constructor(
    clock: Clock<V>,
    windower: Windower,
    builder: (resumeState: S | undefined) => WindowLogic<V, W, S>,
    ordered: boolean,
    resume: WindowSnapshot<S> | undefined,
  ) {
    this.clock = clock.build(resume?.clock);
    this.windower = windower.build(resume?.windower);
    this.builder = builder;
    this.ordered = ordered;
    this.#logics = new Map((resume?.logics ?? []).map(([id, state]) => [id, builder(state)]));
    this.#queue = (resume?.queue ?? []) as [V, number][];
  }

  onBatch(values: V[]): LogicResult<WindowEvent<V, W>> {
    this.clock.beforeBatch();
    const events: Events<V, W> = [];
    for (let i = 0; i < values.length; i++) {
      const value = values[i] as V;
      const timestamp = this.clock.onItem(value);
      this.#advance(this.clock.watermark());
      if (timestamp < this.#watermark) {
        const ids = this.windower.lateFor(timestamp);
        for (let j = 0; j < ids.length; j++) events.push([ids[j] as number, value, "late"]);
      } else if (this.ordered) {
        this.#queue.push([value, timestamp]);
      } else {
        // Nothing closes before the batch ends, so applying now equals applying at the flush.
        this.#applying = timestamp;
        this.#apply(value, events);
      }
    }
    this.#flush(events);
    return [events, this.#isEmpty()];
  }

  /** The key's watermark, ms since the Unix epoch (±Infinity before the first item and after the end). */
  get watermark(): number {
    return this.#watermark;
  }

  onNotify(): LogicResult<WindowEvent<V, W>> {
    return this.#atWatermark(this.clock.onNotify());
  }

  onEof(): LogicResult<WindowEvent<V, W>> {
    return this.#atWatermark(this.clock.onEof());
  }

  notifyAt(): Date | undefined {
    let target = this.windower.nextClose() ?? Number.POSITIVE_INFINITY;
    if (this.ordered) for (const [, ts] of this.#queue) target = Math.min(target, ts);
    if (target === Number.POSITIVE_INFINITY) return undefined;
    // The watermark advances with system time, so the engine's clock times the wake-up.
    const at = this.clock.toSystemTime(target);
    if (at === undefined) return undefined;
    WAKE_UP.setTime(at);
    return WAKE_UP;
  }

  snapshot(): WindowSnapshot<S> {
    return {
      clock: this.clock.snapshot(),
      windower: this.windower.snapshot(),
      logics: [...this.#logics].map(([id, logic]): [number, S] => [id, logic.snapshot()]),
      queue: this.#queue.map(([value, ts]): [unknown, number] => [value, ts]),
    };
  }

  #atWatermark(watermark: number): LogicResult<WindowEvent<V, W>> {
    this.#advance(watermark);
    const events: Events<V, W> = [];
    this.#flush(events);
    return [events, this.#isEmpty()];
  }

  /** A clock may not move the watermark back; hold it instead. */
  #advance(watermark: number): void {
    if (watermark > this.#watermark) this.#watermark = watermark;
  }

  /** Applies the queued items now due, then closes the windows the watermark has passed. */
  #flush(events: Events<V, W>): void {
    if (this.#queue.length > 0) {
      let due: [V, number][];
      if (this.ordered) {
        due = [];
        const waiting: [V, number][] = [];
        for (const entry of this.#queue) (entry[1] <= this.#watermark ? due : waiting).push(entry);
        this.#queue = waiting;
        // Stable: items with equal timestamps keep their arrival order.
        due.sort((a, b) => a[1] - b[1]);
      } else {
        // Unordered items skip the queue; only a snapshot taken while ordered leaves any.
        due = this.#queue;
        this.#queue = [];
      }
      for (let i = 0; i < due.length; i++) {
        const [value, timestamp] = due[i] as [V, number];
        this.#applying = timestamp;
        this.#apply(value, events);
      }
    }
    const closed = this.windower.closeFor(this.#watermark);
    for (let i = 0; i < closed.length; i++) {
      const [id, bounds] = closed[i] as [number, WindowBounds];
      const logic = this.#logics.get(id) as WindowLogic<V, W, S>;
      this.#logics.delete(id);
      this.#forget(id);
      pushEmits(events, id, logic.onClose());
      events.push([id, bounds, "meta"]);
    }
  }

  /** Adds an on-time item, at `#applying`, to its windows, opening them as needed. */
  #apply(value: V, events: Events<V, W>): void {
    const ids = this.windower.openFor(this.#applying);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      let logic = id === this.#lastId ? this.#lastLogic : this.#logics.get(id);
      if (logic === undefined) {
        logic = this.builder(undefined);
        this.#logics.set(id, logic);
      }
      this.#lastId = id;
      this.#lastLogic = logic;
      pushEmits(events, id, logic.onValue(value));
    }
    this.#merge(events);
  }

  #merge(events: Events<V, W>): void {
    const merged = this.windower.merged();
    for (let i = 0; i < merged.length; i++) {
      const [original, target] = merged[i] as readonly [number, number];
      if (original === target) continue;
      const from = this.#logics.get(original) as WindowLogic<V, W, S>;
      this.#logics.delete(original);
      this.#forget(original);
      const into = this.#logics.get(target) as WindowLogic<V, W, S>;
      pushEmits(events, target, into.onMerge(from));
    }
  }

  #forget(id: number): void {
    if (id === this.#lastId) {
      this.#lastId = Number.NaN;
      this.#lastLogic = undefined;
    }
  }

  #isEmpty(): boolean {
    return this.#logics.size === 0 && this.#queue.length === 0 && this.windower.isEmpty();
  }
}

/** Rejects what is not a clock or windower while the dataflow is built. */
export function checkWindowing(stepId: string, clock: unknown, windower: unknown, ordered: unknown): void {
  const at = `step ${JSON.stringify(stepId)}`;
  if (typeof (clock as Clock<unknown> | null)?.build !== "function") {
    throw new BuildError(`${at}: clock must be a Clock (SystemClock, EventClock, ...), got ${String(clock)}`);
  }
  if (typeof (windower as Windower | null)?.build !== "function") {
    throw new BuildError(`${at}: windower must be a Windower (TumblingWindower, ...), got ${String(windower)}`);
  }
  if (typeof ordered !== "boolean") throw new BuildError(`${at}: ordered must be a boolean, got ${String(ordered)}`);
}

/**
 * The generic windowing operator. `builder` makes the logic of each new window (or
 * resumes it from its snapshot). With `ordered` (the default), on-time items wait
 * until the watermark reaches their timestamp and are applied in timestamp order;
 * otherwise they are applied as they arrive.
 */
export function window<V, W, S>(
  stepId: string,
  up: KeyedStream<V>,
  clock: Clock<V>,
  windower: Windower,
  builder: (resumeState: S | undefined) => WindowLogic<V, W, S>,
  ordered = true,
): WindowOut<V, W> {
  checkWindowing(stepId, clock, windower, ordered);
  if (typeof builder !== "function") throw new BuildError(`step ${JSON.stringify(stepId)}: builder must be a function`);
  return nest("window", stepId, [up], (_id, _, up) => {
    const events = pure(
      statefulBatch(
        "stateful_batch",
        up,
        (resume: WindowSnapshot<S> | undefined) => new KeyWindows(clock, windower, builder, ordered, resume),
        (logic) => (logic instanceof KeyWindows ? logic.watermark : Number.NEGATIVE_INFINITY),
      ),
    );
    return {
      // An emitted value's event is the pair down carries: passed on as it is, with its item.
      down: filterMapValue("unwrap_down", events, (event): [number, W] | undefined =>
        event.length === 2 ? (event as [number, W]) : undefined,
      ),
      late: filterMapValue("unwrap_late", events, (event): [number, V] | undefined =>
        event.length === 3 && event[2] === "late" ? [event[0], event[1]] : undefined,
      ),
      meta: filterMapValue("unwrap_meta", events, (event): [number, WindowMetadata] | undefined =>
        event.length === 3 && event[2] === "meta" ? [event[0], toMetadata(event[1])] : undefined,
      ),
    };
  });
}
