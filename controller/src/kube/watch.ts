// A list+watch that survives: it relists on 410 Gone, restarts with capped exponential
// backoff on errors (an API server restart), restarts a watch that has gone silent
// (stall watchdog), and hands every object to the handler again on each resync. Its cache
// keeps each object as `trim` leaves it, indexed by `indexBy`.
import { setTimeout as delay } from "node:timers/promises";
import { type KubeConfig, type KubernetesObject, KubernetesObjectApi, Watch } from "@kubernetes/client-node";
import { errorText, log } from "../log.ts";

export interface WatchTarget {
  readonly apiVersion: string;
  readonly kind: string;
  readonly plural: string;
  /** Undefined watches all namespaces. */
  readonly namespace?: string;
  readonly labelSelector?: string;
  /** What the cache keeps of each object (and hands to the handler); all of it when undefined. */
  readonly trim?: (obj: KubernetesObject) => KubernetesObject;
  /** The index key of an object, for `indexed()`; undefined leaves the object out of the index. */
  readonly indexBy?: (obj: KubernetesObject) => string | undefined;
}

export interface WatchOptions {
  readonly resyncMs?: number;
  readonly stallMs?: number;
  readonly maxBackoffMs?: number;
  readonly onRestart?: (reason: string) => void;
}

/** What happened to an object; SYNC hands a cached one over again (resync). */
export type WatchEvent = "ADDED" | "MODIFIED" | "DELETED" | "SYNC";
type Handler = (type: WatchEvent, obj: KubernetesObject) => void;

function pathOf(t: WatchTarget): string {
  const base = t.apiVersion.includes("/") ? `/apis/${t.apiVersion}` : `/api/${t.apiVersion}`;
  return t.namespace === undefined ? `${base}/${t.plural}` : `${base}/namespaces/${t.namespace}/${t.plural}`;
}

export class ResilientWatch {
  readonly #kc: KubeConfig;
  readonly #target: WatchTarget;
  readonly #handler: Handler;
  readonly #resyncMs: number;
  readonly #stallMs: number;
  readonly #maxBackoffMs: number;
  readonly #onRestart: (reason: string) => void;
  readonly #stop = new AbortController();
  readonly #known = new Map<string, KubernetesObject>();
  readonly #index = new Map<string, Map<string, KubernetesObject>>();
  #running: Promise<void> | undefined;
  #synced = false;

  constructor(kc: KubeConfig, target: WatchTarget, handler: Handler, options: WatchOptions = {}) {
    this.#kc = kc;
    this.#target = target;
    this.#handler = handler;
    this.#resyncMs = options.resyncMs ?? 300_000;
    this.#stallMs = options.stallMs ?? 90_000;
    this.#maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.#onRestart = options.onRestart ?? (() => {});
  }

  /**
   * The objects with index key `value` as last seen (an informer's cache): possibly behind
   * the API server, never ahead.
   */
  indexed(value: string): Iterable<KubernetesObject> {
    return this.#index.get(value)?.values() ?? [];
  }

  /** The object `namespace/name` as last seen, if any. */
  get(key: string): KubernetesObject | undefined {
    return this.#known.get(key);
  }

  /** True once the first list has been delivered. */
  get synced(): boolean {
    return this.#synced;
  }

  start(): void {
    this.#running ??= this.#run();
    const resync = setInterval(() => {
      for (const obj of this.#known.values()) this.#handler("SYNC", obj);
    }, this.#resyncMs);
    resync.unref();
    this.#stop.signal.addEventListener("abort", () => clearInterval(resync));
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  async #run(): Promise<void> {
    const api = KubernetesObjectApi.makeApiClient(this.#kc);
    const { apiVersion, kind, namespace, labelSelector } = this.#target;
    let backoff = 250;
    while (!this.#stop.signal.aborted) {
      try {
        const list = await api.list(
          apiVersion,
          kind,
          namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          labelSelector,
        );
        const seen = new Set<string>();
        for (const item of list.items) {
          const obj = this.#store(item);
          seen.add(keyOf(obj));
          this.#handler("SYNC", obj);
        }
        for (const [key, obj] of this.#known) {
          if (!seen.has(key)) {
            this.#forget(obj);
            this.#handler("DELETED", obj);
          }
        }
        this.#synced = true;
        backoff = 250;
        let rv = list.metadata?.resourceVersion ?? "";
        for (;;) {
          const result = await this.#watchOnce(rv);
          if (this.#stop.signal.aborted) return;
          if (result.gone) {
            this.#onRestart("gone");
            break; // 410: our resourceVersion is too old; relist.
          }
          if (result.error !== undefined) throw result.error;
          rv = result.rv;
        }
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        this.#onRestart("error");
        log("warn", "watch failed; retrying", { kind, error: errorText(err), retryMs: backoff });
        // Node's delay removes its abort listener when it ends; stopping cuts the wait short.
        await delay(backoff + Math.random() * backoff * 0.2, undefined, { signal: this.#stop.signal }).catch(() => {});
        backoff = Math.min(this.#maxBackoffMs, backoff * 2);
      }
    }
  }

  #kept(obj: KubernetesObject): KubernetesObject {
    const { apiVersion, kind, trim } = this.#target;
    const typed = { ...obj, apiVersion, kind };
    return trim === undefined ? typed : trim(typed);
  }

  #store(obj: KubernetesObject): KubernetesObject {
    const kept = this.#forget(this.#kept(obj));
    const key = keyOf(kept);
    this.#known.set(key, kept);
    const value = this.#target.indexBy?.(kept);
    if (value !== undefined) {
      const bucket = this.#index.get(value) ?? new Map<string, KubernetesObject>();
      bucket.set(key, kept);
      this.#index.set(value, bucket);
    }
    return kept;
  }

  #forget(obj: KubernetesObject): KubernetesObject {
    const key = keyOf(obj);
    const old = this.#known.get(key);
    if (old !== undefined) this.#unindex(key, old);
    this.#known.delete(key);
    return obj;
  }

  #unindex(key: string, obj: KubernetesObject): void {
    const value = this.#target.indexBy?.(obj);
    const bucket = value === undefined ? undefined : this.#index.get(value);
    if (value === undefined || bucket === undefined) return;
    bucket.delete(key);
    if (bucket.size === 0) this.#index.delete(value);
  }

  #watchOnce(startRv: string): Promise<{ rv: string; gone?: boolean; error?: unknown }> {
    return new Promise((resolve) => {
      let rv = startRv;
      let gone = false;
      let lastSeen = Date.now();
      let request: AbortController | undefined;
      let finished = false;
      const finish = (error?: unknown) => {
        if (finished) return;
        finished = true;
        clearInterval(watchdog);
        this.#stop.signal.removeEventListener("abort", onStop);
        request?.abort();
        resolve({ rv, gone, ...(error === undefined || gone ? {} : { error }) });
      };
      const onStop = () => finish();
      this.#stop.signal.addEventListener("abort", onStop);
      const watchdog = setInterval(
        () => {
          if (Date.now() - lastSeen > this.#stallMs) {
            // A silent connection may be dead without knowing it: drop it and watch again from rv.
            this.#onRestart("stalled");
            finish();
          }
        },
        Math.min(5_000, this.#stallMs),
      );
      watchdog.unref();
      new Watch(this.#kc)
        .watch(
          pathOf(this.#target),
          {
            resourceVersion: rv,
            allowWatchBookmarks: true,
            labelSelector: this.#target.labelSelector,
            timeoutSeconds: 240 + Math.floor(Math.random() * 60),
          },
          (type: string, obj: KubernetesObject & { code?: number }) => {
            lastSeen = Date.now();
            if (type === "ERROR") {
              if (obj.code === 410) gone = true;
              finish(new Error(`watch error: ${JSON.stringify(obj)}`));
              return;
            }
            rv = obj.metadata?.resourceVersion ?? rv;
            if (type === "BOOKMARK") return;
            const kept = type === "DELETED" ? this.#forget(this.#kept(obj)) : this.#store(obj);
            this.#handler(type as "ADDED" | "MODIFIED" | "DELETED", kept);
          },
          (err: unknown) => {
            if (err !== null && typeof err === "object" && "statusCode" in err && err.statusCode === 410) gone = true;
            // client-node ends an idle watch after 30 s with a TimeoutError: not a failure, just watch again.
            const idle = err instanceof Error && err.name === "TimeoutError";
            finish(err === null || err === undefined || idle ? undefined : err);
          },
        )
        .then((controller) => {
          request = controller;
          if (finished) controller.abort();
        })
        .catch((err: unknown) => finish(err));
    });
  }
}

export function keyOf(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}
