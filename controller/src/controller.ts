// The shell around reconcile(): watches feed a work queue; a worker observes one Dataflow,
// asks reconcile() for a plan, writes the status first (the write-ahead record), then acts.
import type {
  KubeConfig,
  KubernetesObject,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Service,
  V1StatefulSet,
} from "@kubernetes/client-node";
import { API_VERSION, type Dataflow, KIND, PLURAL } from "@waxflow/crds";
import { DATAFLOW_LABEL, FINALIZER, hashOf, MANAGED_BY } from "./desired/objects.ts";
import { Kube } from "./kube/client.ts";
import { WorkQueue } from "./kube/queue.ts";
import { ResilientWatch, type WatchOptions } from "./kube/watch.ts";
import { errorText, log, statusCode } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { type Action, type Plan, REJECTED, reconcile } from "./reconcile/reconcile.ts";

export interface ControllerOptions {
  /** Namespaces to watch; all namespaces when undefined or empty. */
  readonly namespaces?: readonly string[];
  readonly workers?: number;
  readonly watch?: WatchOptions;
  readonly metrics?: Metrics;
}

export class Controller {
  readonly kube: Kube;
  readonly metrics: Metrics;
  readonly queue = new WorkQueue();
  readonly #kc: KubeConfig;
  readonly #options: ControllerOptions;
  readonly #watches: ResilientWatch[] = [];
  readonly #caches = new Map<string, ResilientWatch[]>();
  /** Per Dataflow, what of it (besides status) was last seen: our own status writes do not requeue. */
  readonly #seen = new Map<string, string>();
  #workers: Promise<void>[] = [];

  constructor(kc: KubeConfig, options: ControllerOptions = {}) {
    this.#kc = kc;
    this.kube = new Kube(kc);
    this.#options = options;
    this.metrics = options.metrics ?? new Metrics();
    this.metrics.queueLength = () => this.queue.depth;
  }

  get synced(): boolean {
    return this.#watches.length > 0 && this.#watches.every((w) => w.synced);
  }

  start(): void {
    const namespaces = this.#options.namespaces?.length ? this.#options.namespaces : [undefined];
    const owned = `app.kubernetes.io/managed-by=${MANAGED_BY}`;
    const kinds = [
      { apiVersion: API_VERSION, kind: KIND, plural: PLURAL },
      { apiVersion: "apps/v1", kind: "StatefulSet", plural: "statefulsets", labelSelector: owned },
      { apiVersion: "v1", kind: "Pod", plural: "pods", labelSelector: owned },
      { apiVersion: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", labelSelector: owned },
      { apiVersion: "v1", kind: "Service", plural: "services", labelSelector: owned },
    ];
    for (const namespace of namespaces) {
      for (const target of kinds) {
        const watch = new ResilientWatch(
          this.#kc,
          { ...target, ...(namespace === undefined ? {} : { namespace }) },
          (type, obj) => this.#enqueueFor(type, obj),
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
    this.#workers = Array.from({ length: this.#options.workers ?? 4 }, () => this.#work());
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.#watches.map((w) => w.stop()));
    await Promise.all(this.#workers);
  }

  #enqueueFor(type: string, obj: KubernetesObject): void {
    const namespace = obj.metadata?.namespace;
    const name = obj.kind === KIND ? obj.metadata?.name : obj.metadata?.labels?.[DATAFLOW_LABEL];
    if (namespace === undefined || name === undefined) return;
    const key = `${namespace}/${name}`;
    if (obj.kind === KIND) {
      const m = obj.metadata;
      const fingerprint = `${m?.generation}|${m?.deletionTimestamp ?? ""}|${(m?.finalizers ?? []).join(",")}`;
      if (type === "DELETED") this.#seen.delete(key);
      else if (type === "MODIFIED" && this.#seen.get(key) === fingerprint) return;
      else this.#seen.set(key, fingerprint);
    }
    this.queue.add(key);
  }

  /** Owned objects of one Dataflow from the watch caches. */
  #cached<T extends KubernetesObject>(kind: string, namespace: string, name: string): T[] {
    const out: T[] = [];
    for (const watch of this.#caches.get(kind) ?? []) {
      for (const obj of watch.objects()) {
        if (obj.metadata?.namespace === namespace && obj.metadata.labels?.[DATAFLOW_LABEL] === name) out.push(obj as T);
      }
    }
    return out;
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const timer = this.metrics.duration.startTimer();
      try {
        const requeue = await this.reconcileKey(key);
        this.metrics.reconciles.inc({ result: "ok" });
        this.queue.forget(key);
        if (requeue !== undefined) this.queue.addAfter(key, requeue);
      } catch (err) {
        this.metrics.reconciles.inc({ result: statusCode(err) === 409 ? "conflict" : "error" });
        this.metrics.errors.inc();
        const retryMs = this.queue.addRateLimited(key);
        if (statusCode(err) !== 409) log("warn", "reconcile failed", { dataflow: key, error: errorText(err), retryMs });
      } finally {
        timer();
        this.queue.done(key);
      }
    }
  }

  /** observe -> reconcile -> act for one Dataflow; returns when to look again (ms), if at all. */
  async reconcileKey(key: string): Promise<number | undefined> {
    const [namespace = "", name = ""] = key.split("/");
    const dataflow = await this.kube.readDataflow(namespace, name);
    if (dataflow === undefined) return undefined; // deleted; the finalizer already cleaned up
    // Steady state reads the watch caches. Before leaving the Stopping stage of a roll the
    // reconciler must not miss a pod, so it reads the API server itself.
    const live = !this.synced || dataflow.status?.rollout?.stage === "Stopping";
    const [statefulSet, pods, claims, services] = live
      ? await Promise.all([
          this.kube.readStatefulSet(namespace, name),
          this.kube.listPods(namespace, name),
          this.kube.listClaims(namespace, name),
          this.kube.listServices(namespace, name),
        ])
      : [
          this.#cached<V1StatefulSet>("StatefulSet", namespace, name).find((s) => s.metadata?.name === name),
          this.#cached<V1Pod>("Pod", namespace, name),
          this.#cached<V1PersistentVolumeClaim>("PersistentVolumeClaim", namespace, name),
          this.#cached<V1Service>("Service", namespace, name),
        ];
    let observed = { dataflow, statefulSet, pods, claims, services };
    let plan = reconcile(observed, new Date());
    if (plan.actions.some((a) => a.type === "addFinalizer")) {
      // The finalizer is the only action of that plan, and it is carried out here (not by
      // #act): the same reconcile then goes on with the updated object at once.
      const updated = await this.kube.setFinalizers(dataflow, [...(dataflow.metadata?.finalizers ?? []), FINALIZER]);
      observed = { ...observed, dataflow: updated };
      plan = reconcile(observed, new Date());
    }
    await this.#execute(observed.dataflow, plan);
    return plan.requeueAfterMs;
  }

  async #execute(observed: Dataflow, plan: Plan): Promise<void> {
    let df = observed;
    // The status goes first: when the next step is destructive, it records what is in flight.
    if (hashOf(plan.status) !== hashOf(df.status ?? {})) df = await this.kube.writeStatus(df, plan.status);
    for (const action of plan.actions) {
      try {
        await this.#act(df, action);
      } catch (err) {
        const message = `${describe(action)}: ${errorText(err)}: fix the Dataflow spec`;
        const code = statusCode(err);
        const degraded = df.status?.conditions?.find((c) => c.type === "Degraded");
        const recorded = degraded?.reason === REJECTED && degraded.message === message;
        // Said once, not on every retry: the event and (when the API server refused an
        // object built from the spec, say a bad podTemplate) the Failed status.
        if (!recorded) {
          await this.#event(df, { type: "Warning", reason: "ActionFailed", message });
          if (code === 400 || code === 422) await this.#markFailed(df, message);
        }
        throw err;
      }
    }
    for (const event of plan.events) await this.#event(df, event);
  }

  async #markFailed(df: Dataflow, message: string): Promise<void> {
    const now = new Date().toISOString();
    const gen = df.metadata?.generation;
    const others = (df.status?.conditions ?? []).filter((c) => c.type === "Progressing");
    const cond = (type: "Ready" | "Degraded", status: "True" | "False") => ({
      type,
      status,
      reason: REJECTED,
      message,
      lastTransitionTime: now,
      ...(gen === undefined ? {} : { observedGeneration: gen }),
    });
    const status = {
      ...df.status,
      phase: "Failed" as const,
      conditions: [cond("Ready", "False"), ...others, cond("Degraded", "True")],
    };
    await this.kube
      .writeStatus(df, status)
      .catch((err: unknown) => log("warn", "could not record the failure in status", { error: errorText(err) }));
  }

  async #act(df: Dataflow, action: Action): Promise<void> {
    switch (action.type) {
      case "apply":
        await this.kube.apply(action.object);
        return;
      case "scaleToZero":
        await this.kube.scaleToZero(action.target);
        return;
      case "delete":
        await this.kube.delete(action.target, action.propagation);
        return;
      case "removeFinalizer":
        await this.kube.setFinalizers(
          df,
          (df.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER),
        );
        return;
    }
  }

  async #event(df: Dataflow, event: Parameters<Kube["event"]>[1]): Promise<void> {
    try {
      await this.kube.event(df, event);
    } catch (err) {
      log("warn", "could not record event", { reason: event.reason, error: errorText(err) });
    }
  }
}

function describe(action: Action): string {
  switch (action.type) {
    case "apply":
      return `apply ${action.object.kind}/${action.object.metadata?.name}`;
    case "scaleToZero":
      return `scale ${action.target.kind}/${action.target.name} to 0`;
    case "delete":
      return `delete ${action.target.kind}/${action.target.name}`;
    default:
      return action.type;
  }
}
