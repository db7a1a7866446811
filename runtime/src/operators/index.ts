/**
 * The operators. Each is a plain function `(stepId, upstream, ...) => downstream`
 * composed of the core primitives in ./core.ts; the composition nests its core steps
 * under its own id, so a failure in `map` named "double" reports `flow.double`.
 */
import { type KeyedStream, nest, Stream } from "../dataflow.ts";
import { BuildError, isIterable, StepError, typeError } from "../errors.ts";
import { DISCARD, type InPlaceLogic, type LogicResult, RETAIN, type StatefulBatchLogic } from "../graph.ts";
import { keepMax, keepMin } from "./compare.ts";
import { flatMapBatch, inspectDebug, merge as mergeCore, statefulBatch, statefulBatchInPlace } from "./core.ts";
import { formatInspect } from "./format.ts";
import { EMIT_MODES, type EmitMode, INSERT_MODES, type InsertMode, JoinState } from "./join-state.ts";

export type { LogicResult, StatefulBatchLogic } from "../graph.ts";
export { DISCARD, RETAIN } from "../graph.ts";
export type { BranchOut } from "./core.ts";
export { branch, flatMapBatch, input, inspectDebug, merge, output, redistribute, statefulBatch } from "./core.ts";
export type { EmitMode, InsertMode } from "./join-state.ts";

// ---------------------------------------------------------------- stateless

/** Applies `mapper` to each item of a batch; a throw names the step and the item. */
function eachItem<X>(stepId: string, batch: X[], fn: (item: X) => void): void {
  let i = 0;
  try {
    for (; i < batch.length; i++) fn(batch[i] as X);
  } catch (err) {
    throw StepError.wrap(stepId, err, batch[i]);
  }
}

/** Transforms each item. */
export function map<X, Y>(stepId: string, up: Stream<X>, mapper: (item: X) => Y): Stream<Y> {
  return nest("map", stepId, [up], (id, _, up) =>
    flatMapBatch("flat_map_batch", up, (batch: X[]) => {
      const out = new Array<Y>(batch.length);
      let i = 0;
      try {
        for (; i < batch.length; i++) out[i] = mapper(batch[i] as X);
      } catch (err) {
        throw StepError.wrap(id, err, batch[i]);
      }
      return out;
    }),
  );
}

/** Keeps items for which `predicate` returns true; it must return a boolean. */
export function filter<X>(stepId: string, up: Stream<X>, predicate: (item: X) => boolean): Stream<X> {
  return nest("filter", stepId, [up], (id, _, up) =>
    flatMapBatch("flat_map_batch", up, (batch: X[]) => {
      const out: X[] = [];
      eachItem(id, batch, (item) => {
        const keep: unknown = predicate(item);
        if (keep === true) out.push(item);
        else if (keep !== false) throw typeError(id, item, `predicate must return a boolean, got ${typeof keep}`);
      });
      return out;
    }),
  );
}

/** Maps each item and drops `null` and `undefined` results. */
export function filterMap<X, Y>(stepId: string, up: Stream<X>, mapper: (item: X) => Y | null | undefined): Stream<Y> {
  return nest("filterMap", stepId, [up], (id, _, up) =>
    flatMapBatch("flat_map_batch", up, (batch: X[]) => {
      const out: Y[] = [];
      eachItem(id, batch, (item) => {
        const y = mapper(item);
        if (y != null) out.push(y);
      });
      return out;
    }),
  );
}

/** Maps each item to any number of items. */
export function flatMap<X, Y>(stepId: string, up: Stream<X>, mapper: (item: X) => Iterable<Y>): Stream<Y> {
  return nest("flatMap", stepId, [up], (id, _, up) =>
    flatMapBatch("flat_map_batch", up, (batch: X[]) => {
      const out: Y[] = [];
      eachItem(id, batch, (item) => {
        const ys: unknown = mapper(item);
        if (!isIterable(ys)) throw typeError(id, item, `mapper must return an iterable, got ${typeof ys}`);
        for (const y of ys as Iterable<Y>) out.push(y);
      });
      return out;
    }),
  );
}

/** Emits the elements of each (iterable) item. */
export function flatten<X>(stepId: string, up: Stream<Iterable<X>>): Stream<X> {
  return nest("flatten", stepId, [up], (id, _, up) =>
    flatMapBatch("flat_map_batch", up, (batch: Iterable<X>[]) => {
      const out: X[] = [];
      eachItem(id, batch, (item) => {
        if (!isIterable(item)) throw typeError(id, item, "flatten requires iterable items");
        for (const x of item) out.push(x);
      });
      return out;
    }),
  );
}

/** `map` on the value of `[key, value]` items. */
export function mapValue<V, W>(stepId: string, up: KeyedStream<V>, mapper: (value: V) => W): KeyedStream<W> {
  return nest("mapValue", stepId, [up], (_id, _, up) => map("map", up, ([k, v]): [string, W] => [k, mapper(v)]));
}

/** `filter` on the value of `[key, value]` items. */
export function filterValue<V>(stepId: string, up: KeyedStream<V>, predicate: (value: V) => boolean): KeyedStream<V> {
  return nest("filterValue", stepId, [up], (_id, _, up) => filter("filter", up, ([, v]) => predicate(v)));
}

/** `filterMap` on the value of `[key, value]` items. */
export function filterMapValue<V, W>(
  stepId: string,
  up: KeyedStream<V>,
  mapper: (value: V) => W | null | undefined,
): KeyedStream<W> {
  return nest("filterMapValue", stepId, [up], (_id, _, up) =>
    filterMap("filter_map", up, (item): [string, W] | undefined => {
      const w = mapper(item[1]);
      // A value passed on as it is keeps its item: no new pair per item.
      return w == null ? undefined : (w as unknown) === item[1] ? (item as unknown as [string, W]) : [item[0], w];
    }),
  );
}

/** `flatMap` on the value of `[key, value]` items. */
export function flatMapValue<V, W>(
  stepId: string,
  up: KeyedStream<V>,
  mapper: (value: V) => Iterable<W>,
): KeyedStream<W> {
  return nest("flatMapValue", stepId, [up], (id, _, up) =>
    flatMap("flat_map", up, ([k, v]) => {
      const ws: unknown = mapper(v);
      if (!isIterable(ws)) throw typeError(id, [k, v], `mapper must return an iterable, got ${typeof ws}`);
      return Array.from(ws as Iterable<W>, (w): [string, W] => [k, w]);
    }),
  );
}

/** Keys each item as `[key(item), item]`; the key must be a string. */
export function keyOn<X>(stepId: string, up: Stream<X>, key: (item: X) => string): KeyedStream<X> {
  return nest("keyOn", stepId, [up], (id, _, up) =>
    flatMapBatch("flat_map_batch", up, (batch: X[]) => {
      const out = new Array<[string, X]>(batch.length);
      let i = 0;
      try {
        for (; i < batch.length; i++) {
          const item = batch[i] as X;
          const k: unknown = key(item);
          if (typeof k !== "string") throw typeError(id, item, `key must be a string, got ${typeof k}`);
          out[i] = [k, item];
        }
      } catch (err) {
        throw StepError.wrap(id, err, batch[i]);
      }
      return out;
    }),
  );
}

/** Drops the key of `[key, value]` items. */
export function keyRm<V>(stepId: string, up: KeyedStream<V>): Stream<V> {
  return nest("keyRm", stepId, [up], (_id, _, up) => map("map", up, ([, v]) => v));
}

/** Prints `<step id>: <item>` for each item (or calls `inspector`), and passes items on. */
export function inspect<X>(
  stepId: string,
  up: Stream<X>,
  inspector: (stepId: string, item: X) => void = (id, item) => process.stdout.write(`${id}: ${formatInspect(item)}\n`),
): Stream<X> {
  return nest("inspect", stepId, [up], (id, _, up) =>
    inspectDebug("inspect_debug", up, (_inner, item) => inspector(id, item)),
  );
}

/** Fails the dataflow on any item: marks a stream that must stay empty. */
export function raises<X>(stepId: string, up: Stream<X>): void {
  nest("raises", stepId, [up], (id, _, up) =>
    inspectDebug("inspect_debug", up, (_inner, item) => {
      throw new StepError(id, new Error("raises step received an item"), item);
    }),
  );
}

/** A per-worker cache whose entries expire `ttlMs` after they were fetched. */
export class TTLCache<K, V> {
  readonly #entries = new Map<K, { value: V; at: number }>();

  private readonly getter: (key: K) => V;
  private readonly ttlMs: number;
  private readonly now: () => number;
  constructor(getter: (key: K) => V, ttlMs: number, now: () => number = Date.now) {
    this.getter = getter;
    this.ttlMs = ttlMs;
    this.now = now;
  }

  get(key: K): V {
    const now = this.now();
    const hit = this.#entries.get(key);
    if (hit !== undefined && now - hit.at < this.ttlMs) return hit.value;
    const value = this.getter(key);
    this.#entries.set(key, { value, at: now });
    return value;
  }

  remove(key: K): void {
    this.#entries.delete(key);
  }
}

/**
 * Enriches items with values looked up through a per-worker TTL cache; the cache is
 * never recovered, so lookups are repeated after a restart.
 */
export function enrichCached<X, Y, K, V>(
  stepId: string,
  up: Stream<X>,
  getter: (key: K) => V,
  mapper: (cache: TTLCache<K, V>, item: X) => Y,
  ttlMs = Number.POSITIVE_INFINITY,
  now: () => number = Date.now,
): Stream<Y> {
  const cache = new TTLCache(getter, ttlMs, now);
  return nest("enrichCached", stepId, [up], (_id, _, up) => map("map", up, (item) => mapper(cache, item)));
}

// ---------------------------------------------------------------- stateful

/** Per-key logic of `stateful`: one item at a time. */
export interface StatefulLogic<V, W, S> {
  onItem(value: V): LogicResult<W>;
  onNotify?(): LogicResult<W>;
  onEof?(): LogicResult<W>;
  notifyAt?(): Date | undefined;
  snapshot(): S;
}

const NOTHING: LogicResult<never> = [[], RETAIN];

function checkResult<W>(id: string, value: unknown, result: unknown): LogicResult<W> {
  if (!Array.isArray(result) || result.length !== 2 || typeof result[1] !== "boolean") {
    throw typeError(id, value, "logic must return [emits, discard] with a boolean discard");
  }
  return result as unknown as LogicResult<W>;
}

/**
 * Keyed state with item-at-a-time logic. Returning discard drops the key's logic;
 * later items of the key build a fresh one.
 */
export function stateful<V, W, S>(
  stepId: string,
  up: KeyedStream<V>,
  builder: (resumeState: S | undefined) => StatefulLogic<V, W, S>,
): KeyedStream<W> {
  return nest("stateful", stepId, [up], (id, _, up) =>
    statefulBatch("stateful_batch", up, (resume: S | undefined): StatefulBatchLogic<V, W, S | undefined> => {
      let logic: StatefulLogic<V, W, S> | undefined = builder(resume);
      const run = (call: (l: StatefulLogic<V, W, S>) => LogicResult<W> | undefined): LogicResult<W> => {
        if (logic === undefined) return [[], DISCARD];
        const [emit, discard] = checkResult<W>(id, undefined, call(logic) ?? NOTHING);
        if (discard) logic = undefined;
        return [emit, discard];
      };
      return {
        onBatch(values) {
          const out: W[] = [];
          for (const value of values) {
            if (logic === undefined) logic = builder(undefined);
            let result: unknown;
            try {
              result = logic.onItem(value);
            } catch (err) {
              throw StepError.wrap(id, err, value);
            }
            const [emit, discard] = checkResult<W>(id, value, result);
            for (const w of emit) out.push(w);
            if (discard) logic = undefined;
          }
          return [out, logic === undefined];
        },
        onNotify: () => run((l) => l.onNotify?.()),
        onEof: () => run((l) => l.onEof?.()),
        notifyAt: () => logic?.notifyAt?.(),
        snapshot: () => logic?.snapshot(),
      };
    }),
  );
}

/**
 * Running state per key: `mapper(state, value)` returns `[newState, emit]`; a new state
 * of `undefined` discards the key.
 */
export function statefulMap<V, S, W>(
  stepId: string,
  up: KeyedStream<V>,
  mapper: (state: S | undefined, value: V) => readonly [S | undefined, W],
): KeyedStream<W> {
  return nest("statefulMap", stepId, [up], (id, _, up) => {
    const step: MapStep<V, S, W> = { id, mapper };
    return statefulBatchInPlace("stateful_batch", up, (resume: S | undefined) => new MapLogic(step, resume));
  });
}

/*
 * The per-key logic of the most used stateful operators is a class, not an object of
 * closures: a key then costs one small object (its state and its step) instead of five
 * functions and their shared context, which was most of the engine's memory per key.
 */

/** What every key of one statefulMap step shares. */
interface MapStep<V, S, W> {
  readonly id: string;
  readonly mapper: (state: S | undefined, value: V) => readonly [S | undefined, W];
}

class MapLogic<V, S, W> implements StatefulBatchLogic<V, W, S | undefined>, InPlaceLogic {
  readonly step: MapStep<V, S, W>;
  state: S | undefined;

  constructor(step: MapStep<V, S, W>, state: S | undefined) {
    this.step = step;
    this.state = state;
  }

  onBatch(values: V[]): LogicResult<W> {
    const out = new Array<W>(values.length);
    for (let i = 0; i < values.length; i++) out[i] = this.apply(values[i] as V);
    return [out, this.state === undefined];
  }

  onItems(items: readonly (readonly [string, unknown])[], from: number, to: number, out: unknown[]): boolean {
    for (let i = from; i < to; i++) {
      const [key, value] = items[i] as readonly [string, V];
      out.push([key, this.apply(value)]);
    }
    return this.state === undefined;
  }

  /**
   * One value: the state becomes the mapper's; if the mapper fails, it stays the state before
   * the value. Not a #private method: those give every instance, a key, a brand slot (7 B per key).
   */
  private apply(value: V): W {
    const { id, mapper } = this.step;
    let result: unknown;
    try {
      result = mapper(this.state, value);
    } catch (err) {
      throw StepError.wrap(id, err, value);
    }
    if (!Array.isArray(result) || result.length !== 2) throw typeError(id, value, "mapper must return [state, emit]");
    this.state = result[0] as S | undefined;
    return result[1] as W;
  }

  onNotify(): LogicResult<W> {
    return NOTHING;
  }

  onEof(): LogicResult<W> {
    return NOTHING;
  }

  notifyAt(): undefined {
    return undefined;
  }

  snapshot(): S | undefined {
    return this.state;
  }
}

/** As `statefulMap`, emitting any number of values per item. */
export function statefulFlatMap<V, S, W>(
  stepId: string,
  up: KeyedStream<V>,
  mapper: (state: S | undefined, value: V) => readonly [S | undefined, Iterable<W>],
): KeyedStream<W> {
  return nest("statefulFlatMap", stepId, [up], (id, _, up) => {
    const mapped = statefulMap("stateful_map", up, (state: S | undefined, value: V) => {
      let result: readonly [S | undefined, Iterable<W>];
      try {
        result = mapper(state, value);
      } catch (err) {
        throw StepError.wrap(id, err, value);
      }
      const [next, emits] = result;
      if (!isIterable(emits)) throw typeError(id, value, "mapper must return [state, iterable of emits]");
      return [next, emits] as const;
    });
    return flatMapValue("flatten", mapped, (emits) => emits);
  });
}

/** Emits each key's `folder`-accumulated value once the upstream ends. */
export function foldFinal<V, S>(
  stepId: string,
  up: KeyedStream<V>,
  builder: () => S,
  folder: (acc: S, value: V) => S,
): KeyedStream<S> {
  return nest("foldFinal", stepId, [up], (id, _, up) => {
    const step: FoldStep<V, S> = { id, builder, folder };
    return statefulBatch("stateful_batch", up, (resume: S | undefined) => new FoldLogic(step, resume));
  });
}

interface FoldStep<V, S> {
  readonly id: string;
  readonly builder: () => S;
  readonly folder: (acc: S, value: V) => S;
}

class FoldLogic<V, S> implements StatefulBatchLogic<V, S, S> {
  readonly step: FoldStep<V, S>;
  acc: S;

  constructor(step: FoldStep<V, S>, resume: S | undefined) {
    this.step = step;
    this.acc = resume === undefined ? step.builder() : resume;
  }

  onBatch(values: V[]): LogicResult<S> {
    const { id, folder } = this.step;
    eachItem(id, values, (v) => {
      this.acc = folder(this.acc, v);
    });
    return NOTHING;
  }

  onNotify(): LogicResult<S> {
    return NOTHING;
  }

  onEof(): LogicResult<S> {
    return [[this.acc], DISCARD];
  }

  notifyAt(): undefined {
    return undefined;
  }

  snapshot(): S {
    return this.acc;
  }
}

/** Emits each key's values combined by `reducer` once the upstream ends. */
export function reduceFinal<V>(stepId: string, up: KeyedStream<V>, reducer: (acc: V, value: V) => V): KeyedStream<V> {
  return nest("reduceFinal", stepId, [up], (id, _, up) => {
    const step: ReduceStep<V> = { id, reducer };
    return statefulBatch("stateful_batch", up, (resume: V | undefined) => new ReduceLogic(step, resume));
  });
}

interface ReduceStep<V> {
  readonly id: string;
  readonly reducer: (acc: V, value: V) => V;
}

class ReduceLogic<V> implements StatefulBatchLogic<V, V, V | undefined> {
  readonly step: ReduceStep<V>;
  acc: V | undefined;
  seen: boolean;

  constructor(step: ReduceStep<V>, resume: V | undefined) {
    this.step = step;
    this.acc = resume;
    this.seen = resume !== undefined;
  }

  onBatch(values: V[]): LogicResult<V> {
    const { id, reducer } = this.step;
    eachItem(id, values, (v) => {
      this.acc = this.seen ? reducer(this.acc as V, v) : v;
      this.seen = true;
    });
    return NOTHING;
  }

  onNotify(): LogicResult<V> {
    return NOTHING;
  }

  onEof(): LogicResult<V> {
    return [this.seen ? [this.acc as V] : [], DISCARD];
  }

  notifyAt(): undefined {
    return undefined;
  }

  snapshot(): V | undefined {
    return this.acc;
  }
}

/** Counts items by `key(item)`; emits `[key, count]` once the upstream ends. */
export function countFinal<X>(stepId: string, up: Stream<X>, key: (item: X) => string): KeyedStream<number> {
  return nest("countFinal", stepId, [up], (_id, _, up) => {
    const ones = map("init_count", keyOn("key", up, key), ([k]): [string, number] => [k, 1]);
    return reduceFinal("sum", ones, (a, b) => a + b);
  });
}

/** Emits each key's largest value (by `pick(value)`) once the upstream ends. */
export function maxFinal<V>(
  stepId: string,
  up: KeyedStream<V>,
  pick: (value: V) => unknown = (v) => v,
): KeyedStream<V> {
  return nest("maxFinal", stepId, [up], (_id, _, up) => reduceFinal("reduce_final", up, keepMax(pick)));
}

/** Emits each key's smallest value (by `pick(value)`) once the upstream ends. */
export function minFinal<V>(
  stepId: string,
  up: KeyedStream<V>,
  pick: (value: V) => unknown = (v) => v,
): KeyedStream<V> {
  return nest("minFinal", stepId, [up], (_id, _, up) => reduceFinal("reduce_final", up, keepMin(pick)));
}

/**
 * Collects each key's values into lists: a list is emitted when it reaches `maxSize`,
 * `timeoutMs` after its latest value arrived (system time; each value restarts the
 * timer, as in Bytewax), or when the upstream ends.
 */
export function collect<V>(stepId: string, up: KeyedStream<V>, timeoutMs: number, maxSize: number): KeyedStream<V[]> {
  if (!(timeoutMs > 0))
    throw new BuildError(`step ${JSON.stringify(stepId)}: timeout must be > 0 ms, got ${timeoutMs}`);
  if (!Number.isInteger(maxSize) || maxSize < 1) {
    throw new BuildError(`step ${JSON.stringify(stepId)}: maxSize must be a whole number >= 1, got ${maxSize}`);
  }
  type State = { values: V[]; deadline: number };
  return nest("collect", stepId, [up], (_id, _, up) =>
    statefulBatch("stateful_batch", up, (resume: State | undefined): StatefulBatchLogic<V, V[], State | undefined> => {
      let state = resume;
      const flush = (): LogicResult<V[]> => {
        const values = state?.values ?? [];
        state = undefined;
        return [values.length > 0 ? [values] : [], DISCARD];
      };
      return {
        onBatch(values) {
          const out: V[][] = [];
          // The values of one batch arrived together.
          const deadline = Date.now() + timeoutMs;
          for (const v of values) {
            state ??= { values: [], deadline };
            state.deadline = deadline;
            state.values.push(v);
            if (state.values.length >= maxSize) {
              out.push(state.values);
              state = undefined;
            }
          }
          return [out, state === undefined];
        },
        onNotify: flush,
        onEof: flush,
        notifyAt: () => (state === undefined ? undefined : new Date(state.deadline)),
        snapshot: () => state,
      };
    }),
  );
}

// ---------------------------------------------------------------- join

export interface JoinOptions {
  /** Which values a side keeps: the first, the last (default), or all of them. */
  readonly insertMode?: InsertMode;
  /** When rows are emitted: once every side has a value (default), at the end, or on every item. */
  readonly emitMode?: EmitMode;
}

type Values<S extends readonly KeyedStream<unknown>[]> = {
  [I in keyof S]: S[I] extends KeyedStream<infer V> ? V | null : never;
};

function isStream(value: unknown): value is KeyedStream<unknown> {
  return value instanceof Stream;
}

/** Splits trailing join options off a list of sides. */
export function joinArgs(
  stepId: string,
  args: readonly (KeyedStream<unknown> | JoinOptions)[],
): { sides: KeyedStream<unknown>[]; insertMode: InsertMode; emitMode: EmitMode } {
  const last = args[args.length - 1];
  const opts: JoinOptions = last !== undefined && !isStream(last) ? last : {};
  const sides = args.filter(isStream);
  if (sides.length !== args.length - (last !== undefined && !isStream(last) ? 1 : 0)) {
    throw new BuildError(`step ${JSON.stringify(stepId)}: join sides must be streams, with options last`);
  }
  const insertMode = opts.insertMode ?? "last";
  const emitMode = opts.emitMode ?? "complete";
  if (!INSERT_MODES.includes(insertMode)) {
    throw new BuildError(
      `step ${JSON.stringify(stepId)}: insertMode must be one of ${INSERT_MODES.join(", ")}, got ${JSON.stringify(insertMode)}`,
    );
  }
  if (!EMIT_MODES.includes(emitMode)) {
    throw new BuildError(
      `step ${JSON.stringify(stepId)}: emitMode must be one of ${EMIT_MODES.join(", ")}, got ${JSON.stringify(emitMode)}`,
    );
  }
  if (sides.length === 0) throw new BuildError(`step ${JSON.stringify(stepId)}: join needs at least one side`);
  return { sides, insertMode, emitMode };
}

/** Tags each side's values with the side's index and merges them, inside the caller's step. */
export function tagSides(sides: readonly KeyedStream<unknown>[]): KeyedStream<[number, unknown]> {
  const tagged = sides.map((side, i) => mapValue(`side_${i}`, side, (v): [number, unknown] => [i, v]));
  return mergeCore("merge_sides", ...tagged);
}

/**
 * Joins keyed streams on their key. Rows are arrays with one value per side (`null`
 * where a side has none yet), the product of each side's values.
 */
export function join<S extends readonly KeyedStream<unknown>[]>(
  stepId: string,
  ...args: [...S] | [...S, JoinOptions]
): KeyedStream<Values<S>> {
  const { sides, insertMode, emitMode } = joinArgs(stepId, args as (KeyedStream<unknown> | JoinOptions)[]);
  return nest("join", stepId, sides, (_id, _, ...sides) => {
    const merged = tagSides(sides);
    const step: JoinStep = { sideCount: sides.length, insertMode, emitMode };
    return statefulBatch("join", merged, (resume: unknown[][] | undefined) => new JoinLogic<Values<S>>(step, resume));
  });
}

/** What every key of one join step shares. */
interface JoinStep {
  readonly sideCount: number;
  readonly insertMode: InsertMode;
  readonly emitMode: EmitMode;
}

/** A key's join: a class, for the memory per key (see MapLogic). */
class JoinLogic<R> implements StatefulBatchLogic<[number, unknown], R, unknown[][]> {
  readonly step: JoinStep;
  state: JoinState;

  constructor(step: JoinStep, resume: unknown[][] | undefined) {
    this.step = step;
    this.state = new JoinState(step.sideCount, resume);
  }

  onBatch(values: [number, unknown][]): LogicResult<R> {
    const { insertMode, emitMode, sideCount } = this.step;
    const out: unknown[][] = [];
    for (const [side, value] of values) {
      this.state.set(side, value, insertMode);
      if (emitMode === "running") for (const row of this.state.rows()) out.push(row);
      else if (emitMode === "complete" && this.state.isComplete()) {
        // A complete row forgets the key; later values start a new row.
        for (const row of this.state.rows()) out.push(row);
        this.state = new JoinState(sideCount);
      }
    }
    return [out as R[], this.state.isEmpty()];
  }

  onNotify(): LogicResult<R> {
    return NOTHING;
  }

  onEof(): LogicResult<R> {
    return [this.step.emitMode === "final" ? (this.state.rows() as R[]) : [], DISCARD];
  }

  notifyAt(): undefined {
    return undefined;
  }

  snapshot(): unknown[][] {
    return this.state.sides;
  }
}
