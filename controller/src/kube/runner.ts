// A controller loop that knows nothing of Dataflows, in the style of kube-runtime's
// Controller: watches keep caches and map each event to the key of the object it
// concerns; a work queue hands a key to one of N workers at a time; the reconciler passed
// in looks at the key and acts, and says when to look again; a failure is retried with the
// queue's per-key backoff, counted and reported as the error policy passed in says.
// Leader election stays with the caller (main.ts): a runner is started once the Lease is held.
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { errorText, log } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { type QueueOptions, WorkQueue } from "./queue.ts";
import { ResilientWatch, type WatchEvent, type WatchOptions, type WatchTarget } from "./watch.ts";

/**
 * Keys reconciled at once. A reconcile mostly waits for the API server, so this is what
 * keeps a burst of new objects from queueing behind each other.
 */
const DEFAULT_WORKERS = 32;

/** One kind to watch, and which key an event on one of its objects asks to reconcile. */
export interface Watched {
  /** Without a namespace: the runner watches it in each namespace it is given. */
  readonly target: Omit<WatchTarget, "namespace">;
  /** The key to reconcile, or undefined when the event needs no reconcile. */
  readonly keyFor: (type: WatchEvent, obj: KubernetesObject) => string | undefined;
}

/** What a reconcile reads besides the API server: the watch caches, as each target's trim left them. */
export interface Caches {
  /** True once every watch has delivered its first list (never before start()). */
  readonly synced: boolean;
  /** The object `namespace/name` of `kind` as last seen, if any. */
  get(kind: string, key: string): KubernetesObject | undefined;
  /** The objects of `kind` that their target's `indexBy` maps to `key`. */
  indexed(kind: string, key: string): KubernetesObject[];
}

export interface Reconciler {
  readonly watches: readonly Watched[];
  /** Looks at one key and acts; resolves to when to look again (ms), if at all; throws to be retried. */
  reconcile(key: string, caches: Caches): Promise<number | undefined>;
}

/** How a failed reconcile is counted and told; it is retried with the queue's per-key backoff. */
export interface Failure {
  /** The reconcile metric's `result` label. */
  readonly result: string;
  /** Whether it deserves a warning line (a conflict is just another look). */
  readonly warn: boolean;
}
export type ErrorPolicy = (key: string, err: unknown) => Failure;

export interface RunnerOptions {
  /** Namespaces to watch; all namespaces when undefined or empty. */
  readonly namespaces?: readonly string[];
  readonly workers?: number;
  readonly watch?: WatchOptions;
  readonly queue?: QueueOptions;
  readonly metrics?: Metrics;
  readonly errorPolicy?: ErrorPolicy;
  /** The log field that names a key in "reconcile failed" (`dataflow`). */
  readonly keyField?: string;
}

export class Runner implements Caches {
  readonly queue: WorkQueue;
  readonly metrics: Metrics;
  readonly #kc: KubeConfig;
  readonly #reconciler: Reconciler;
  readonly #options: RunnerOptions;
  readonly #errorPolicy: ErrorPolicy;
  readonly #watches: ResilientWatch[] = [];
  readonly #caches = new Map<string, ResilientWatch[]>();
  #workers: Promise<void>[] = [];

  constructor(kc: KubeConfig, reconciler: Reconciler, options: RunnerOptions = {}) {
    this.#kc = kc;
    this.#reconciler = reconciler;
    this.#options = options;
    this.#errorPolicy = options.errorPolicy ?? (() => ({ result: "error", warn: true }));
    this.queue = new WorkQueue(options.queue);
    this.metrics = options.metrics ?? new Metrics();
    this.metrics.queueLength = () => this.queue.depth;
  }

  get synced(): boolean {
    return this.#watches.length > 0 && this.#watches.every((w) => w.synced);
  }

  get(kind: string, key: string): KubernetesObject | undefined {
    return this.#caches
      .get(kind)
      ?.map((watch) => watch.get(key))
      .find((obj) => obj !== undefined);
  }

  indexed(kind: string, key: string): KubernetesObject[] {
    return (this.#caches.get(kind) ?? []).flatMap((watch) => [...watch.indexed(key)]);
  }

  start(): void {
    const namespaces = this.#options.namespaces?.length ? this.#options.namespaces : [undefined];
    for (const namespace of namespaces) {
      for (const { target, keyFor } of this.#reconciler.watches) {
        const watch = new ResilientWatch(
          this.#kc,
          { ...target, ...(namespace === undefined ? {} : { namespace }) },
          (type, obj) => {
            const key = keyFor(type, obj);
            if (key !== undefined) this.queue.add(key);
          },
          {
            ...this.#options.watch,
            onRestart: (reason) => this.metrics.watchRestarts.inc({ kind: target.kind, reason }),
          },
        );
        watch.start();
        this.#watches.push(watch);
        this.#caches.set(target.kind, [...(this.#caches.get(target.kind) ?? []), watch]);
      }
    }
    this.#workers = Array.from({ length: this.#options.workers ?? DEFAULT_WORKERS }, () => this.#work());
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.#watches.map((w) => w.stop()));
    await Promise.all(this.#workers);
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const timer = this.metrics.duration.startTimer();
      try {
        const requeue = await this.#reconciler.reconcile(key, this);
        this.metrics.reconciles.inc({ result: "ok" });
        this.queue.forget(key);
        if (requeue !== undefined) this.queue.addAfter(key, requeue);
      } catch (err) {
        const failure = this.#errorPolicy(key, err);
        this.metrics.reconciles.inc({ result: failure.result });
        this.metrics.errors.inc();
        const retryMs = this.queue.addRateLimited(key);
        if (failure.warn)
          log("warn", "reconcile failed", { [this.#options.keyField ?? "key"]: key, error: errorText(err), retryMs });
      } finally {
        timer();
        this.queue.done(key);
      }
    }
  }
}
