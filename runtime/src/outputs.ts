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

export type Sink<X> = DynamicSink<X> | (X extends [string, infer V] ? FixedPartitionedSink<V, unknown> : never);

export function isFixedPartitionedSink(sink: unknown): sink is FixedPartitionedSink<unknown, unknown> {
  return typeof (sink as Partial<FixedPartitionedSink<unknown, unknown>>).listParts === "function";
}
