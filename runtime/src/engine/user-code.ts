/**
 * The one way the engine calls user code (mappers, predicates, keyed logic, sources,
 * sinks): a failure becomes one StepError naming the step and what the call was on, and
 * a StepError from a nested step, or an AbortExecution, passes unchanged. As Bytewax
 * derives its operators through one wrapper applied when a step is defined, a step wraps
 * each of its calls into user code once, when it is built (`userFn`), so the per-item
 * path pays no closure and no report of its own (measured: bench/README.md, issue 17);
 * building a source or sink, which is asynchronous and happens once, uses
 * `callUserAsync`. Only `failure` makes the error.
 */
import { StepError } from "../errors.ts";

/** A failure of the step as a whole (building a source or sink, a batch mapper): no item. */
export const WHOLE_STEP: unique symbol = Symbol("the step as a whole");

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

type Args = [] | [unknown] | [unknown, unknown] | [unknown, unknown, unknown];

/**
 * `call` (user code of step `stepId`, with the engine's checks of its result) wrapped
 * once: what it throws becomes `failure(stepId, err, on(...args))`, and `on` runs only
 * then, so a report such as `[key, values]` costs nothing on success. At most three
 * arguments, passed as fixed parameters: a rest parameter would be an array per call.
 */
export function userFn<A extends Args, R>(
  stepId: string,
  call: (...args: A) => R,
  on: (...args: A) => On,
): (...args: A) => R {
  const fn = call as (a?: unknown, b?: unknown, c?: unknown) => R;
  const report = on as (a?: unknown, b?: unknown, c?: unknown) => On;
  const guarded = (a?: unknown, b?: unknown, c?: unknown): R => {
    try {
      return fn(a, b, c);
    } catch (err) {
      throw failure(stepId, err, report(a, b, c));
    }
  };
  return guarded as (...args: A) => R;
}

/** Runs `call`, user code that builds part of step `stepId` (a source, a sink), and wraps what it throws or rejects with. */
export async function callUserAsync<R>(stepId: string, on: On, call: () => R | Promise<R>): Promise<R> {
  try {
    return await call();
  } catch (err) {
    throw failure(stepId, err, on);
  }
}
