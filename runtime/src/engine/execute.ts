/**
 * Runs a dataflow's workers in this thread. The first failure aborts the others, so a
 * run either completes on every worker or rejects with the cause.
 */
import type { Dataflow } from "../dataflow.ts";
import type { StateStore } from "./state-store.ts";
import { LocalMesh } from "./transport.ts";
import { Worker } from "./worker.ts";

/** Bytewax's default epoch length when recovery is off. */
export const DEFAULT_EPOCH_INTERVAL_MS = 10_000;

export interface ExecuteOptions {
  /** Workers in this thread (default 1). */
  readonly workers?: number;
  readonly epochIntervalMs?: number;
  /** The state store of each worker, when recovery is on. */
  readonly store?: (worker: number) => StateStore;
  readonly signal?: AbortSignal;
  /** Called with the workers once they are built, e.g. to serve their counts. */
  readonly onStart?: (workers: readonly Worker[]) => void;
}

export async function execute(flow: Dataflow, opts: ExecuteOptions = {}): Promise<void> {
  const count = opts.workers ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`workers must be a whole number >= 1, got ${count}`);
  const mesh = count > 1 ? new LocalMesh(count) : undefined;
  const abort = new AbortController();
  const signal = opts.signal === undefined ? abort.signal : AbortSignal.any([abort.signal, opts.signal]);
  const workers = Array.from(
    { length: count },
    (_, index) =>
      new Worker(flow, {
        index,
        count,
        epochIntervalMs: opts.epochIntervalMs ?? DEFAULT_EPOCH_INTERVAL_MS,
        transport: mesh?.transport(index),
        store: opts.store?.(index),
        signal,
      }),
  );
  opts.onStart?.(workers);
  let first: unknown;
  await Promise.all(
    workers.map((w) =>
      w.run().catch((err: unknown) => {
        if (first === undefined) {
          first = err;
          abort.abort(err);
        }
      }),
    ),
  );
  if (first !== undefined) throw first;
}
