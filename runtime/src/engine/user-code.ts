/**
 * The one way the engine calls user code (mappers, predicates, keyed logic, sources,
 * sinks): a failure becomes one StepError naming the step and what the call was on, and
 * a StepError from a nested step, or an AbortExecution, passes unchanged. As Bytewax
 * derives its operators through one wrapper, a core step reaches its user code through
 * `callUser` (or `callUserAsync` for the one-off builds of sources and sinks), and only
 * `failure` makes the error.
 *
 * Per item or per key, a wrapper costs: V8 keeps one call-site profile for a helper, so
 * the user function called inside it is not inlined, and a closure per call is an
 * allocation (measured in issue 17: 15-25% on a keyed count or a branch). So a step wraps
 * a whole batch (or run of keys) in one `callUser`, and `on` is a function that says,
 * only once something failed, which item or key was being handled.
 */
import { StepError } from "../errors.ts";

/** A failure of the step as a whole (building a source or sink, a batch mapper): no item. */
export const WHOLE_STEP: unique symbol = Symbol("the step as a whole");

/** `on` for a failure of the step as a whole. */
export const wholeStep = (): typeof WHOLE_STEP => WHOLE_STEP;

/** A failure of one source or sink partition, named instead of an item. */
export class InPartition {
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

/** What a failure is reported on: the item or key the code was given, an InPartition, or WHOLE_STEP. */
export type On = unknown;

/** The error a failure of user code in `stepId` becomes. */
export function failure(stepId: string, err: unknown, on: On): Error {
  if (on === WHOLE_STEP) return StepError.wrap(stepId, err);
  if (on instanceof InPartition) return StepError.inPartition(stepId, err, on.name);
  return StepError.wrap(stepId, err, on);
}

/**
 * Runs `call` (user code of step `stepId`, with the engine's checks of its results) and
 * turns what it throws into `failure(stepId, err, on())`. Keep what is not user code, such
 * as pushing downstream or writing the store, outside `call`: its errors are not the step's.
 */
export function callUser<R>(stepId: string, call: () => R, on: () => On): R {
  try {
    return call();
  } catch (err) {
    throw failure(stepId, err, on());
  }
}

/** `callUser` for user code that builds part of a step asynchronously (a source, a sink). */
export async function callUserAsync<R>(stepId: string, call: () => R | Promise<R>, on: () => On): Promise<R> {
  try {
    return await call();
  } catch (err) {
    throw failure(stepId, err, on());
  }
}
