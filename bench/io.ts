/**
 * Source and sink for benchmarks: large input batches straight from an array, and a sink
 * that counts instead of keeping every output, so the engine is what gets measured.
 */
import type { FixedPartitionedSource, StatefulSourcePartition } from "waxflow/inputs";
import type { DynamicSink, StatelessSinkPartition } from "waxflow/outputs";

/** One partition reading `items` in slices of `batchSize`; its state is the next index. */
export class ArraySource<X> implements FixedPartitionedSource<X, number> {
  readonly items: readonly X[];
  readonly batchSize: number;

  constructor(items: readonly X[], batchSize = 10_000) {
    this.items = items;
    this.batchSize = batchSize;
  }

  listParts(): string[] {
    return ["array"];
  }

  buildPart(_stepId: string, _part: string, resumeIndex: number | undefined): StatefulSourcePartition<X, number> {
    let index = resumeIndex ?? 0;
    return {
      nextBatch: () => {
        if (index >= this.items.length) return null;
        const batch = this.items.slice(index, index + this.batchSize);
        index += batch.length;
        return batch;
      },
      snapshot: () => index,
    };
  }
}

/**
 * Counts outputs and keeps the last one; `observe`, when given, sees every item, for
 * checks that the count and last item cannot make.
 */
export class CountingSink<X> implements DynamicSink<X> {
  count = 0;
  last: X | undefined;
  readonly observe: ((item: X) => void) | undefined;

  constructor(observe?: (item: X) => void) {
    this.observe = observe;
  }

  build(): StatelessSinkPartition<X> {
    return {
      writeBatch: (batch) => {
        if (batch.length === 0) return;
        this.count += batch.length;
        this.last = batch[batch.length - 1];
        const observe = this.observe;
        if (observe !== undefined) for (const item of batch) observe(item);
      },
    };
  }
}
