/**
 * Sources. A `FixedPartitionedSource` has named partitions with state (a position), so
 * input resumes exactly where the last snapshot was taken; a `DynamicSource` builds one
 * stateless partition per worker (at-most-once on failure).
 *
 * `nextBatch` must not block: return `[]` when nothing is ready, a promise for I/O that
 * is under way, and `null` once the partition is exhausted (end of stream).
 */

export type NextBatch<X> = Iterable<X> | null | Promise<Iterable<X> | null>;

export interface StatefulSourcePartition<X, S> {
  nextBatch(): NextBatch<X>;
  /** When to call `nextBatch` again; `undefined` means as soon as possible. */
  nextAwake?(): Date | undefined;
  /** The position after the last item returned; must be structured-cloneable. */
  snapshot(): S;
  /** Called after a clean end of stream only. */
  close?(): void | Promise<void>;
}

export interface FixedPartitionedSource<X, S> {
  /**
   * Partitions this process can read. Every partition gets exactly one primary worker.
   * A promise when listing them takes I/O (Kafka asks the brokers).
   */
  listParts(): string[] | Promise<string[]>;
  buildPart(
    stepId: string,
    forPart: string,
    resumeState: S | undefined,
  ): StatefulSourcePartition<X, S> | Promise<StatefulSourcePartition<X, S>>;
}

export interface StatelessSourcePartition<X> {
  nextBatch(): NextBatch<X>;
  nextAwake?(): Date | undefined;
  close?(): void | Promise<void>;
}

export interface DynamicSource<X> {
  build(
    stepId: string,
    workerIndex: number,
    workerCount: number,
  ): StatelessSourcePartition<X> | Promise<StatelessSourcePartition<X>>;
}

/** Items per `nextBatch` of the built-in sources unless told otherwise. */
export const DEFAULT_BATCH_SIZE = 1000;

/** Validates a source's batch size, naming the source. */
export function checkBatchSize(source: string, batchSize: number): number {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`${source} batchSize must be a whole number >= 1, got ${batchSize}`);
  }
  return batchSize;
}

export type Source<X> = FixedPartitionedSource<X, unknown> | DynamicSource<X>;

export function isFixedPartitionedSource<X>(source: Source<X>): source is FixedPartitionedSource<X, unknown> {
  return typeof (source as Partial<FixedPartitionedSource<X, unknown>>).listParts === "function";
}

/** Thrown by `SimplePollingSource.nextItem` to poll again after `retryMs` instead of the interval. */
export class Retry extends Error {
  override name = "Retry";
  readonly retryMs: number;
  constructor(retryMs: number) {
    super(`retry in ${retryMs} ms`);
    this.retryMs = retryMs;
  }
}

/**
 * Calls `nextItem` every `intervalMs`, aligned to `alignTo` (default: start time).
 * Returning `undefined` emits nothing for that poll. Subclass it, as in Bytewax.
 */
export abstract class SimplePollingSource<X> implements FixedPartitionedSource<X, undefined> {
  static readonly Retry = Retry;

  readonly intervalMs: number;
  readonly alignTo?: Date;

  constructor(intervalMs: number, alignTo?: Date) {
    this.intervalMs = intervalMs;
    this.alignTo = alignTo;
    if (!(intervalMs > 0)) throw new RangeError(`SimplePollingSource interval must be > 0 ms, got ${intervalMs}`);
  }

  abstract nextItem(): X | undefined | Promise<X | undefined>;

  listParts(): string[] {
    return ["singleton"];
  }

  buildPart(): StatefulSourcePartition<X, undefined> {
    const interval = this.intervalMs;
    const now = Date.now();
    let next = now;
    if (this.alignTo !== undefined) {
      const align = this.alignTo.getTime();
      next = align + Math.ceil((now - align) / interval) * interval;
    }
    const poll = async (): Promise<X[]> => {
      try {
        const item = await this.nextItem();
        next += interval;
        return item === undefined ? [] : [item];
      } catch (err) {
        if (err instanceof Retry) {
          next = Date.now() + err.retryMs;
          return [];
        }
        throw err;
      }
    };
    return {
      nextBatch: () => (Date.now() < next ? [] : poll()),
      nextAwake: () => new Date(next),
      snapshot: () => undefined,
    };
  }
}
