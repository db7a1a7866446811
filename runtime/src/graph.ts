/**
 * The core steps the engine executes. Every operator is one of these or a composition
 * of them (see operators/), which is what keeps the engine small.
 */

import type { Source } from "./inputs.ts";
import type { Sink } from "./outputs.ts";

/** What one activation of stateful logic returns: items to emit, and whether to discard the key's state. */
export type LogicResult<W> = readonly [emit: Iterable<W>, discard: boolean];

export const RETAIN = false;
export const DISCARD = true;

/** Per-key logic of `statefulBatch`; one instance per key, built from its resume state. */
export interface StatefulBatchLogic<V, W, S> {
  /** Called with the key's items of one activation, in arrival order. */
  onBatch(values: V[]): LogicResult<W>;
  /** Called once the time returned by `notifyAt` has passed. */
  onNotify(): LogicResult<W>;
  /** Called when the upstream has ended. */
  onEof(): LogicResult<W>;
  /** When to call `onNotify` next; asked again after every call for this key. */
  notifyAt(): Date | undefined;
  /** The state to recover this key from; must be structured-cloneable. */
  snapshot(): S;
}

/**
 * A logic that can also take its key's values where they lie in the engine's sorted batch,
 * `items[from..to)` of `[key, value]` pairs, and push its `[key, emit]` pairs to `out`
 * itself: no array of values per key, no array of emits, no result pair (statefulMap's, when a
 * batch's keys are mostly distinct: those were most of what the engine allocated per item).
 * Equivalent to `onBatch` on those values; returns whether to discard the key.
 */
export interface InPlaceLogic {
  onItems(items: readonly (readonly [string, unknown])[], from: number, to: number, out: unknown[]): boolean;
}

export type Inspector<X> = (stepId: string, item: X, epoch: number, worker: number) => void;

interface Base {
  /** Full step id, `flow.step.sub`. */
  readonly stepId: string;
}

export interface InputStep extends Base {
  readonly kind: "input";
  readonly source: Source<unknown>;
  readonly down: string;
}
export interface OutputStep extends Base {
  readonly kind: "output";
  readonly up: string;
  readonly sink: Sink<unknown>;
}
export interface FlatMapBatchStep extends Base {
  readonly kind: "flatMapBatch";
  readonly up: string;
  readonly down: string;
  readonly mapper: (batch: unknown[]) => Iterable<unknown>;
  /** The mapper is the engine's own and has no effects: the step is not run when nothing reads its output. */
  readonly pure?: boolean;
}
export interface BranchStep extends Base {
  readonly kind: "branch";
  readonly up: string;
  readonly trues: string;
  readonly falses: string;
  readonly predicate: (item: unknown) => unknown;
}
export interface InspectDebugStep extends Base {
  readonly kind: "inspectDebug";
  readonly up: string;
  readonly down: string;
  readonly inspector: Inspector<unknown>;
}
export interface MergeStep extends Base {
  readonly kind: "merge";
  readonly ups: readonly string[];
  readonly down: string;
}
export interface RedistributeStep extends Base {
  readonly kind: "redistribute";
  readonly up: string;
  readonly down: string;
}
export interface StatefulBatchStep extends Base {
  readonly kind: "statefulBatch";
  readonly up: string;
  readonly down: string;
  readonly builder: (resumeState: unknown) => StatefulBatchLogic<unknown, unknown, unknown>;
  /** A windowed step's key's watermark (ms since the Unix epoch), read after each activation for the metrics. */
  readonly watermarkOf?: (logic: StatefulBatchLogic<unknown, unknown, unknown>) => number;
  /** Every logic `builder` makes is also an InPlaceLogic. */
  readonly inPlace?: boolean;
}

export type CoreStep =
  | InputStep
  | OutputStep
  | FlatMapBatchStep
  | BranchStep
  | InspectDebugStep
  | MergeStep
  | RedistributeStep
  | StatefulBatchStep;

/** The streams a step reads. */
export function inputsOf(step: CoreStep): readonly string[] {
  switch (step.kind) {
    case "input":
      return [];
    case "merge":
      return step.ups;
    default:
      return [step.up];
  }
}

/** The streams a step writes. */
export function outputsOf(step: CoreStep): readonly string[] {
  switch (step.kind) {
    case "output":
      return [];
    case "branch":
      return [step.trues, step.falses];
    default:
      return [step.down];
  }
}

/**
 * The steps a worker runs, in order: all of them but pure steps (`FlatMapBatchStep.pure`)
 * whose output no step that runs reads, such as the unwrapping of a window's metadata that
 * nothing consumes. Steps are in topological order, so one pass from the end decides each
 * step after everything that could read it.
 */
export function stepsToRun(steps: readonly CoreStep[]): CoreStep[] {
  const read = new Set<string>();
  const run: CoreStep[] = [];
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i] as CoreStep;
    if (step.kind === "flatMapBatch" && step.pure === true && !read.has(step.down)) continue;
    for (const stream of inputsOf(step)) read.add(stream);
    run.push(step);
  }
  return run.reverse();
}
