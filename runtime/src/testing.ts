/**
 * Test helpers, as Bytewax's `bytewax.testing`: an in-memory source with markers that
 * end, abort or pause a run, a sink that collects into an array, and runners.
 */
import type { Dataflow } from "./dataflow.ts";
import type { StateStore } from "./engine/state-store.ts";
import { AbortExecution } from "./errors.ts";
import { checkBatchSize, type FixedPartitionedSource, type StatefulSourcePartition } from "./inputs.ts";
import type { DynamicSink, StatelessSinkPartition } from "./outputs.ts";
import { type ExecuteOptions, execute, type RecoveryConfig } from "./process/execute.ts";

export { AbortExecution } from "./errors.ts";

/** Ends this run at this point; a resumed run continues after it. */
class EOF {
  readonly marker = "EOF";
}
/** Aborts the run the first time it is reached; a resumed run skips it. */
class ABORT {
  readonly marker = "ABORT";
  triggered = false;
}
/** Emits nothing for `durationMs`, then continues. */
class PAUSE {
  readonly marker = "PAUSE";
  readonly durationMs: number;
  constructor(durationMs: number) {
    this.durationMs = durationMs;
  }
}

export type TestingMarker = EOF | ABORT | PAUSE;

function isMarker(item: unknown): item is TestingMarker {
  return item instanceof EOF || item instanceof ABORT || item instanceof PAUSE;
}

/** Emits `items` in batches of up to `batchSize`; its state is the index of the next item. */
export class TestingSource<X> implements FixedPartitionedSource<X, number> {
  static readonly EOF = EOF;
  static readonly ABORT = ABORT;
  static readonly PAUSE = PAUSE;

  readonly items: Iterable<X | TestingMarker>;
  readonly batchSize: number;

  constructor(items: Iterable<X | TestingMarker>, batchSize: number = 1) {
    this.items = items;
    this.batchSize = checkBatchSize("TestingSource", batchSize);
  }

  listParts(): string[] {
    return ["iterable"];
  }

  buildPart(_stepId: string, _part: string, resumeIndex: number | undefined): StatefulSourcePartition<X, number> {
    const it = this.items[Symbol.iterator]();
    let index = 0;
    for (; index < (resumeIndex ?? 0); index++) if (it.next().done) break;
    let awake: Date | undefined;
    let done = false;
    let abortNext = false;
    const abort = () => new AbortExecution("TestingSource reached an ABORT marker");
    return {
      nextBatch: () => {
        if (done) return null;
        if (abortNext) {
          abortNext = false;
          throw abort();
        }
        const batch: X[] = [];
        while (batch.length < this.batchSize) {
          const next = it.next();
          if (next.done) {
            done = true;
            return batch.length > 0 ? batch : null;
          }
          const item = next.value;
          index += 1;
          if (!isMarker(item)) {
            batch.push(item);
            continue;
          }
          if (item instanceof EOF) {
            done = true;
            return batch.length > 0 ? batch : null;
          }
          if (item instanceof ABORT) {
            if (!item.triggered) {
              item.triggered = true;
              if (batch.length === 0) throw abort();
              // As Bytewax: the items read before the marker are delivered, the next call aborts.
              abortNext = true;
              awake = undefined;
              return batch;
            }
            continue;
          }
          awake = new Date(Date.now() + item.durationMs);
          return batch;
        }
        awake = undefined;
        return batch;
      },
      nextAwake: () => awake,
      snapshot: () => index,
    };
  }
}

/** Appends every item to `items`, from every worker. */
export class TestingSink<X> implements DynamicSink<X> {
  readonly items: X[];
  constructor(items: X[] = []) {
    this.items = items;
  }

  build(): StatelessSinkPartition<X> {
    return {
      writeBatch: (batch) => {
        this.items.push(...batch);
      },
    };
  }
}

export interface RunOptions {
  readonly epochIntervalMs?: number;
  /** Snapshot into, and resume from, a recovery directory. */
  readonly recovery?: RecoveryConfig;
  readonly store?: (worker: number) => StateStore;
  readonly signal?: AbortSignal;
  /** Count items into each step and follow watermarks for /steps and /metrics (default true). */
  readonly stepMetrics?: boolean;
}

/** Runs the dataflow on one worker in this process until every input ends. */
export function runMain(flow: Dataflow, opts: RunOptions = {}): Promise<void> {
  return execute(flow, { ...opts, workers: 1 });
}

export interface ClusterOptions extends RunOptions {
  /** Workers in this process (default 1). */
  readonly workersPerProcess?: number;
}

/** Runs the dataflow on several workers in this process, with keyed exchange between them. */
export function clusterMain(flow: Dataflow, opts: ClusterOptions = {}): Promise<void> {
  const run: ExecuteOptions = { ...opts, workers: opts.workersPerProcess ?? 1 };
  return execute(flow, run);
}
