/**
 * Sinks. A `FixedPartitionedSink` takes `[key, value]` items, routes each key to one
 * partition by a stable hash, and snapshots each partition's position: with a sink that
 * can rewind (files), output is exactly-once. A `DynamicSink` writes from every worker
 * and is at-least-once across failures.
 */

export interface StatefulSinkPartition<V, S> {
  /** Writes one epoch's values for this partition, in order. */
  writeBatch(values: V[]): void | Promise<void>;
  /** The position after the last write; must be structured-cloneable. */
  snapshot(): S;
  close?(): void | Promise<void>;
}

export interface FixedPartitionedSink<V, S> {
  listParts(): string[];
  /** Index into `listParts()` for a key; defaults to a stable hash of the key. */
  partFn?(itemKey: string): number;
  buildPart(
    stepId: string,
    forPart: string,
    resumeState: S | undefined,
  ): StatefulSinkPartition<V, S> | Promise<StatefulSinkPartition<V, S>>;
}

export interface StatelessSinkPartition<X> {
  writeBatch(items: X[]): void | Promise<void>;
  close?(): void | Promise<void>;
}

export interface DynamicSink<X> {
  build(
    stepId: string,
    workerIndex: number,
    workerCount: number,
  ): StatelessSinkPartition<X> | Promise<StatelessSinkPartition<X>>;
}

/**
 * A worker's partition of a transactional sink: its writes of an epoch stay invisible
 * until that epoch is durable on every worker of the cluster (exactly-once output to a
 * system that cannot rewind, such as Kafka).
 */
export interface TransactionalSinkPartition<X, S> extends StatelessSinkPartition<X> {
  /**
   * Makes the writes since the last prepare durable but not yet visible, as of the end
   * of `epoch`; returns what commits them after a crash (recorded in the snapshot).
   */
  prepare(epoch: number): S | Promise<S>;
  /** Every worker has committed `epoch`: make what `prepare(epoch)` covered visible. */
  commit(epoch: number): void | Promise<void>;
}

/**
 * A dynamic sink that, with recovery on, writes through transactional partitions: one
 * per worker, in a slot named by the worker's index. `recovered` holds the states
 * prepared by the slots this worker settles (its own, and after a scale-down those beyond
 * the worker count), each of an epoch the resumed execution has committed: the build
 * commits them before data flows.
 */
export interface TransactionalSink<X, S> extends DynamicSink<X> {
  buildTransactional(
    stepId: string,
    workerIndex: number,
    workerCount: number,
    recovered: ReadonlyMap<number, S>,
    /** Milliseconds between epochs: how long a transaction stays open at least. */
    epochIntervalMs: number,
  ): TransactionalSinkPartition<X, S> | Promise<TransactionalSinkPartition<X, S>>;
}

export function isTransactionalSink(sink: unknown): sink is TransactionalSink<unknown, unknown> {
  return typeof (sink as Partial<TransactionalSink<unknown, unknown>>).buildTransactional === "function";
}

export type Sink<X> = DynamicSink<X> | (X extends [string, infer V] ? FixedPartitionedSink<V, unknown> : never);

export function isFixedPartitionedSink(sink: unknown): sink is FixedPartitionedSink<unknown, unknown> {
  return typeof (sink as Partial<FixedPartitionedSink<unknown, unknown>>).listParts === "function";
}
