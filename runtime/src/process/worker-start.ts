/**
 * The one way a worker starts, in a worker thread (thread-entry.ts) or in the process's
 * own thread (execute.ts): built from its place in the cluster, then run, with the hooks
 * each caller needs around it. What differs between the two is only what the hooks do.
 */
import type { Dataflow } from "../dataflow.ts";
import { Worker, type WorkerOptions } from "../engine/worker.ts";

/** Which worker of the cluster this is and what it runs over: the engine's options, every one given. */
export type WorkerPlace = Required<Omit<WorkerOptions, "store">> & Pick<WorkerOptions, "store">;

export interface WorkerLifecycle {
  /** The worker is built and about to run: answer its queries, report on it. */
  readonly started?: (worker: Worker) => void;
  /** It runs once this settles (the other workers of its thread are built and told of first). */
  readonly runAfter?: Promise<void>;
  /** Its inputs ended and its last epoch is committed: hand its frontier on, report it done. */
  readonly ended?: (worker: Worker) => void | Promise<void>;
  /** It, or a hook, failed: told once, with the cause; `done` waits for what it returns. */
  readonly failed: (err: unknown) => void | Promise<void>;
}

export interface StartedWorker {
  readonly worker: Worker;
  /** Settles when the worker ended or failed (`failed` was told); never rejects. */
  readonly done: Promise<void>;
}

export function startWorker(flow: Dataflow, place: WorkerPlace, lifecycle: WorkerLifecycle): StartedWorker {
  const worker = new Worker(flow, place);
  const run = async (): Promise<void> => {
    if (lifecycle.runAfter !== undefined) await lifecycle.runAfter;
    lifecycle.started?.(worker);
    await worker.run();
    await lifecycle.ended?.(worker);
  };
  return { worker, done: run().catch(lifecycle.failed) };
}
