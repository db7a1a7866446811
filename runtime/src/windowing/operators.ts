/**
 * The windowing operators built on `window`: fold, collect, reduce, count, max, min
 * and join over windows. Each returns `{ down, late, meta }` (see `WindowOut`).
 */

import { type KeyedStream, nest, Stream } from "../dataflow.ts";
import { BuildError } from "../errors.ts";
import { keepMax, keepMin } from "../operators/compare.ts";
import { type JoinOptions, joinArgs, keyOn, tagSides } from "../operators/index.ts";
import { type EmitMode, type InsertMode, JoinState } from "../operators/join-state.ts";
import { type Clock, projectClock } from "./clock.ts";
import { checkWindowing, type WindowLogic, type WindowOut, window } from "./window.ts";
import type { Windower } from "./windower.ts";

// What a fold emits per value: one shared array, so folding allocates nothing per item.
const NOTHING: readonly never[] = Object.freeze([]);

/** One window's fold; a class, so each of the many windows costs one small object. */
class FoldLogic<V, S> implements WindowLogic<V, S, S> {
  #acc: S;
  private readonly folder: (acc: S, value: V) => S;
  private readonly merger: (acc: S, original: S) => S;

  constructor(acc: S, folder: (acc: S, value: V) => S, merger: (acc: S, original: S) => S) {
    this.#acc = acc;
    this.folder = folder;
    this.merger = merger;
  }

  onValue(value: V): Iterable<S> {
    this.#acc = this.folder(this.#acc, value);
    return NOTHING;
  }

  onMerge(original: WindowLogic<V, S, S>): Iterable<S> {
    this.#acc = this.merger(this.#acc, original.snapshot());
    return NOTHING;
  }

  onClose(): Iterable<S> {
    return [this.#acc];
  }

  snapshot(): S {
    return this.#acc;
  }
}

/**
 * Nests a windowing operator's inner steps under `stepId`. Clock and windower are checked
 * here too, so a bad one names this step, not its inner "window".
 */
function nestWindowed<X, R>(
  kind: string,
  stepId: string,
  up: Stream<X>,
  clock: unknown,
  windower: unknown,
  ordered: boolean,
  inner: (up: Stream<X>) => R,
): R {
  checkWindowing(stepId, clock, windower, ordered);
  return nest(kind, stepId, [up], (_id, _, up) => inner(up));
}

/**
 * Folds each window's values into an accumulator made by `builder`, and emits it when
 * the window closes. `merger` combines the accumulators of merging (session) windows.
 */
export function foldWindow<V, S>(
  stepId: string,
  up: KeyedStream<V>,
  clock: Clock<V>,
  windower: Windower,
  builder: () => S,
  folder: (acc: S, value: V) => S,
  merger: (acc: S, original: S) => S,
  ordered = true,
): WindowOut<V, S> {
  for (const [what, fn] of [
    ["builder", builder],
    ["folder", folder],
    ["merger", merger],
  ] as const) {
    if (typeof fn !== "function") throw new BuildError(`step ${JSON.stringify(stepId)}: ${what} must be a function`);
  }
  return nestWindowed("foldWindow", stepId, up, clock, windower, ordered, (up) =>
    window(
      "window",
      up,
      clock,
      windower,
      (resume: S | undefined) => new FoldLogic(resume === undefined ? builder() : resume, folder, merger),
      ordered,
    ),
  );
}

/** Collects each window's values into an array, in timestamp order unless `ordered` is false. */
export function collectWindow<V>(
  stepId: string,
  up: KeyedStream<V>,
  clock: Clock<V>,
  windower: Windower,
  ordered = true,
): WindowOut<V, V[]> {
  return nestWindowed("collectWindow", stepId, up, clock, windower, ordered, (up) =>
    foldWindow(
      "fold_window",
      up,
      clock,
      windower,
      (): V[] => [],
      (acc, value) => {
        acc.push(value);
        return acc;
      },
      (acc, original) => acc.concat(original),
      ordered,
    ),
  );
}

/** Combines each window's values with `reducer`, in arrival order. */
export function reduceWindow<V>(
  stepId: string,
  up: KeyedStream<V>,
  clock: Clock<V>,
  windower: Windower,
  reducer: (acc: V, value: V) => V,
): WindowOut<V, V> {
  if (typeof reducer !== "function") throw new BuildError(`step ${JSON.stringify(stepId)}: reducer must be a function`);
  // A window exists only once it has a value, so no accumulator is left `undefined`.
  const combine = (acc: V | undefined, value: V): V => (acc === undefined ? value : reducer(acc, value));
  return nestWindowed("reduceWindow", stepId, up, clock, windower, false, (up) =>
    foldWindow(
      "fold_window",
      up,
      clock,
      windower,
      () => undefined,
      combine,
      (a, b) => combine(a, b as V),
      false,
    ),
  ) as WindowOut<V, V>;
}

/** Counts the items of each window by `key(item)`; `down` carries `[key, [windowId, count]]`. */
export function countWindow<X>(
  stepId: string,
  up: Stream<X>,
  clock: Clock<X>,
  windower: Windower,
  key: (item: X) => string,
): WindowOut<X, number> {
  return nestWindowed("countWindow", stepId, up, clock, windower, false, (up) =>
    foldWindow(
      "sum",
      keyOn("keyed", up, key),
      clock,
      windower,
      () => 0,
      (n) => n + 1,
      (a, b) => a + b,
      false,
    ),
  );
}

/** The largest value of each window by `by(value)`; the first of equals wins. */
export function maxWindow<V>(
  stepId: string,
  up: KeyedStream<V>,
  clock: Clock<V>,
  windower: Windower,
  by: (value: V) => unknown = (v) => v,
): WindowOut<V, V> {
  return nestWindowed("maxWindow", stepId, up, clock, windower, false, (up) =>
    reduceWindow("reduce_window", up, clock, windower, keepMax(by)),
  );
}

/** The smallest value of each window by `by(value)`; the first of equals wins. */
export function minWindow<V>(
  stepId: string,
  up: KeyedStream<V>,
  clock: Clock<V>,
  windower: Windower,
  by: (value: V) => unknown = (v) => v,
): WindowOut<V, V> {
  return nestWindowed("minWindow", stepId, up, clock, windower, false, (up) =>
    reduceWindow("reduce_window", up, clock, windower, keepMin(by)),
  );
}

export interface JoinWindowOptions extends JoinOptions {
  /** When rows are emitted: at window close (`final`, the default), once every side has a value, or on every value. */
  readonly emitMode?: EmitMode;
  /** Apply values in timestamp order (default true). */
  readonly ordered?: boolean;
}

type Row<S extends readonly KeyedStream<unknown>[]> = {
  [I in keyof S]: S[I] extends KeyedStream<infer V> ? V | null : never;
};
type SideValue<S extends readonly KeyedStream<unknown>[]> = S[number] extends KeyedStream<infer V> ? V : never;

function joinWindowLogic(
  sideCount: number,
  insertMode: InsertMode,
  emitMode: EmitMode,
  resume: unknown[][] | undefined,
): WindowLogic<[number, unknown], unknown[], unknown[][]> {
  let state = new JoinState(sideCount, resume);
  const check = (): unknown[][] => {
    if (emitMode === "running") return state.rows();
    if (emitMode !== "complete" || !state.isComplete()) return [];
    const rows = state.rows();
    state = new JoinState(sideCount);
    return rows;
  };
  return {
    onValue([side, value]) {
      state.set(side, value, insertMode);
      return check();
    },
    onMerge(original) {
      // The original window is the later one: with "first" this window's values
      // stand, with "last" the original's replace them.
      const later = original.snapshot();
      state = new JoinState(
        sideCount,
        state.sides.map((mine, i) => {
          const theirs = later[i] as unknown[];
          if (insertMode === "product") return [...mine, ...theirs];
          if (insertMode === "first") return mine.length > 0 ? mine : theirs;
          return theirs.length > 0 ? theirs : mine;
        }),
      );
      return check();
    },
    onClose: () => (emitMode === "final" ? state.rows() : []),
    snapshot: () => state.sides,
  };
}

/**
 * Joins keyed streams on their key within each window. Rows hold one value per side
 * (`null` where a side had none), the product of each side's values. Late values come
 * out tagged with their side index as `[side, value]`.
 */
export function joinWindow<S extends readonly KeyedStream<unknown>[]>(
  stepId: string,
  clock: Clock<SideValue<S>>,
  windower: Windower,
  ...args: [...S, JoinWindowOptions]
): WindowOut<[side: number, value: SideValue<S>], Row<S>>;
export function joinWindow<S extends readonly KeyedStream<unknown>[]>(
  stepId: string,
  clock: Clock<SideValue<S>>,
  windower: Windower,
  ...sides: S
): WindowOut<[side: number, value: SideValue<S>], Row<S>>;
export function joinWindow(
  stepId: string,
  clock: Clock<unknown>,
  windower: Windower,
  ...args: (KeyedStream<unknown> | JoinWindowOptions)[]
): WindowOut<[number, unknown], unknown[]> {
  const last = args[args.length - 1];
  const given: JoinWindowOptions = last === undefined || last instanceof Stream ? {} : (last as JoinWindowOptions);
  const streams = (given === last ? args.slice(0, -1) : args) as KeyedStream<unknown>[];
  const ordered = given.ordered ?? true;
  checkWindowing(stepId, clock, windower, ordered);
  const { sides, insertMode, emitMode } = joinArgs(stepId, [
    ...streams,
    { insertMode: given.insertMode ?? "last", emitMode: given.emitMode ?? "final" },
  ]);
  const sideClock = projectClock(clock, ([, value]: [number, unknown]) => value);
  return nest("joinWindow", stepId, sides, (_id, _, ...sides) =>
    window(
      "window",
      tagSides(sides),
      sideClock,
      windower,
      (resume: unknown[][] | undefined) => joinWindowLogic(sides.length, insertMode, emitMode, resume),
      ordered,
    ),
  );
}
