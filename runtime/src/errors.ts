/**
 * Errors the user sees. Each carries its context (the step, the item, the file) so the
 * one line printed on failure says what went wrong and where.
 */
import { inspect } from "node:util";

const ITEM_CHARS = 200;

/** A short, single-line rendering of an item for error messages. */
export function preview(value: unknown): string {
  const text = inspect(value, {
    depth: 3,
    breakLength: Number.POSITIVE_INFINITY,
    maxArrayLength: 10,
    maxStringLength: ITEM_CHARS,
  });
  return text.length > ITEM_CHARS ? `${text.slice(0, ITEM_CHARS)}…` : text;
}

/** The dataflow is malformed; raised while it is built, before any data flows. */
export class BuildError extends Error {
  override name = "BuildError";
}

const NO_ITEM: unique symbol = Symbol("no item");

/** Stops a run as if the process crashed; passes through steps unwrapped. */
export class AbortExecution extends Error {
  override name = "AbortExecution";
}

/** User code (or a type check on its result) failed inside a step. */
export class StepError extends Error {
  override name = "StepError";
  readonly stepId: string;
  readonly item: unknown;
  /** `where` says which part of the step failed when there is no item, e.g. `in partition "p"`. */
  constructor(stepId: string, cause: unknown, item: unknown = NO_ITEM, where?: string) {
    const reason = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
    const at = item !== NO_ITEM ? ` on item ${preview(item)}` : where !== undefined ? ` ${where}` : "";
    super(`step ${JSON.stringify(stepId)} failed${at}: ${reason}`, { cause });
    this.stepId = stepId;
    this.item = item === NO_ITEM ? undefined : item;
  }

  /** Wraps `cause` unless it already names its step (a nested step failed first). */
  static wrap(stepId: string, cause: unknown, ...item: [] | [unknown]): Error {
    if (cause instanceof StepError || cause instanceof AbortExecution) return cause;
    return new StepError(stepId, cause, ...item);
  }

  /** Wraps a failure of a source or sink partition, naming the partition. */
  static inPartition(stepId: string, cause: unknown, partition: string): Error {
    if (cause instanceof StepError || cause instanceof AbortExecution) return cause;
    return new StepError(stepId, cause, NO_ITEM, `in partition ${JSON.stringify(partition)}`);
  }
}

export function isIterable(value: unknown): value is Iterable<unknown> {
  return value != null && typeof (value as Iterable<unknown>)[Symbol.iterator] === "function";
}

/** A user function returned the wrong type, as Bytewax's TypeError cases. */
export function typeError(stepId: string, item: unknown, message: string): StepError {
  return new StepError(stepId, new TypeError(message), item);
}

/** Bad command-line flags or environment: names the flag or variable. */
export class UsageError extends Error {
  override name = "UsageError";
}
