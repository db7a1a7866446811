// The shell around reconcile(): watches feed a work queue and caches; a worker observes
// one Dataflow from the caches, asks reconcile() for a plan, and carries it out.
import { randomBytes } from "node:crypto";
import type {
  KubeConfig,
  KubernetesObject,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodDisruptionBudget,
  V1Service,
  V1StatefulSet,
} from "@kubernetes/client-node";
import { API_VERSION, DATAFLOW_LABEL, type Dataflow, KIND, PLURAL } from "@waxflow/crds";
import {
  CLUSTER_SECRET_BYTES,
  clusterSecretName,
  desiredClusterSecret,
  hashOf,
  MANAGED_BY,
  PREFLIGHT_LABEL,
} from "./desired/objects.ts";
import { type Reference, referencesOf } from "./desired/references.ts";
import { Kube, PooledKubeConfig } from "./kube/client.ts";
import { WorkQueue } from "./kube/queue.ts";
import { PodProxySavepoints, type Savepoints } from "./kube/savepoints.ts";
import { ownerKeyOf, trimPod, trimStatefulSet, trimToMetadata, withoutManagedFields } from "./kube/trim.ts";
import { keyOf, ResilientWatch, type WatchOptions, type WatchTarget } from "./kube/watch.ts";
import { enabled, errorText, log, statusCode } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { decisionOf, describe } from "./reconcile/decision.ts";
import { actionStage, finalizersAfter } from "./reconcile/finalizer.ts";
import {
  type Action,
  DEFAULT_SETTINGS,
  type OperatorSettings,
  type Plan,
  reconcile,
  rejected,
  statusFirst,
} from "./reconcile/reconcile.ts";
import { REJECTED } from "./reconcile/status.ts";
import type { SavepointObservation } from "./reconcile/upgrade.ts";

/**
 * Dataflows reconciled at once. A reconcile mostly waits for the API server, so this is
 * what keeps a burst of new Dataflows from queueing behind each other.
 */
const DEFAULT_WORKERS = 32;

export interface ControllerOptions {
  /** Namespaces to watch; all namespaces when undefined or empty. */
  readonly namespaces?: readonly string[];
  readonly workers?: number;
  readonly watch?: WatchOptions;
  readonly metrics?: Metrics;
  /** What the operator was installed with: API clients, privileged Dataflows. */
  readonly settings?: OperatorSettings;
  /** How savepoints are asked for (upgradeMode savepoint); default: process 0's API through the pod proxy. */
  readonly savepoints?: Savepoints;
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
  /**
   * Our own writes to a Dataflow that its watch cache does not show yet: the versions they
   * replaced and the object they returned. Read-your-writes: a reconcile right after a
   * write never decides on the status (the write-ahead record) that write replaced.
   */
  readonly #written = new Map<string, { readonly replaced: Set<string>; readonly latest: Dataflow }>();
  #workers: Promise<void>[] = [];
  readonly #savepoints: Savepoints;
  /** Savepoint requests process 0 refused, by `<uid>/<id>`: the next reconcile records them in status. */
  readonly #refused = new Map<string, string>();

  constructor(kc: KubeConfig, options: ControllerOptions = {}) {
    this.#kc = PooledKubeConfig.of(kc);
    this.kube = new Kube(this.#kc);
    this.#options = options;
    this.metrics = options.metrics ?? new Metrics();
    this.metrics.queueLength = () => this.queue.depth;
    this.#savepoints = options.savepoints ?? new PodProxySavepoints(this.#kc, this.kube);
  }

  get synced(): boolean {
    return this.#watches.length > 0 && this.#watches.every((w) => w.synced);
  }

  start(): void {
    const namespaces = this.#options.namespaces?.length ? this.#options.namespaces : [undefined];
    const owned = { labelSelector: `app.kubernetes.io/managed-by=${MANAGED_BY}`, indexBy: ownerKeyOf };
    const kinds: WatchTarget[] = [
      { apiVersion: API_VERSION, kind: KIND, plural: PLURAL, trim: withoutManagedFields },
      { apiVersion: "apps/v1", kind: "StatefulSet", plural: "statefulsets", trim: trimStatefulSet, ...owned },
      { apiVersion: "v1", kind: "Pod", plural: "pods", trim: trimPod, ...owned },
      {
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        plural: "persistentvolumeclaims",
        trim: trimToMetadata,
        ...owned,
      },
      { apiVersion: "v1", kind: "Service", plural: "services", trim: trimToMetadata, ...owned },
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        trim: trimToMetadata,
        ...owned,
      },
      {
        apiVersion: "policy/v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        trim: trimToMetadata,
        ...owned,
      },
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
    this.#workers = Array.from({ length: this.#options.workers ?? DEFAULT_WORKERS }, () => this.#work());
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
      const written = this.#written.get(key);
      if (written !== undefined && !written.replaced.has(obj.metadata?.resourceVersion ?? ""))
        this.#written.delete(key);
      const fingerprint = fingerprintOf(obj);
      if (type === "DELETED") this.#seen.delete(key);
      else if (type === "MODIFIED" && this.#seen.get(key) === fingerprint) return;
      else this.#seen.set(key, fingerprint);
    }
    this.queue.add(key);
  }

  /** The Dataflow as last seen or, when newer, as our own last write returned it. */
  #dataflow(key: string): Dataflow | undefined {
    const cached = this.#caches
      .get(KIND)
      ?.map((watch) => watch.get(key))
      .find((obj) => obj !== undefined) as Dataflow | undefined;
    const written = this.#written.get(key);
    return cached !== undefined && written?.replaced.has(cached.metadata?.resourceVersion ?? "")
      ? written.latest
      : cached;
  }

  #wrote(before: Dataflow, after: Dataflow): Dataflow {
    const key = keyOf(after);
    const replaced = this.#written.get(key)?.replaced ?? new Set<string>();
    replaced.add(before.metadata?.resourceVersion ?? "");
    this.#written.set(key, { replaced, latest: after });
    this.#seen.set(key, fingerprintOf(after)); // its watch event needs no reconcile of its own
    return after;
  }

  /** Owned objects of one Dataflow (by its queue key) from the watch caches, as trimmed there. */
  #cached<T extends KubernetesObject>(kind: string, key: string): T[] {
    return (this.#caches.get(kind) ?? []).flatMap((watch) => [...watch.indexed(key)] as T[]);
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
    const started = performance.now();
    const [namespace = "", name = ""] = key.split("/");
    const dataflow = this.synced ? this.#dataflow(key) : await this.kube.readDataflow(namespace, name);
    if (dataflow === undefined) return undefined; // deleted: owner references (and a finalizer) cleaned up
    // Steady state reads the watch caches. Before leaving the Stopping stage of a roll the
    // reconciler must not miss a pod, so it reads the API server itself.
    const live = !this.synced || dataflow.status?.rollout?.stage === "Stopping";
    const [statefulSet, pods, claims, services, networkPolicy, disruptionBudget] = live
      ? await Promise.all([
          this.kube.readStatefulSet(namespace, name),
          this.kube.listPods(namespace, name),
          this.kube.listClaims(namespace, name),
          this.kube.listServices(namespace, name),
          this.kube.readNetworkPolicy(namespace, name),
          this.kube.readDisruptionBudget(namespace, name),
        ])
      : [
          this.#cached<V1StatefulSet>("StatefulSet", key).find((s) => s.metadata?.name === name),
          this.#cached<V1Pod>("Pod", key),
          this.#cached<V1PersistentVolumeClaim>("PersistentVolumeClaim", key),
          this.#cached<V1Service>("Service", key),
          this.#cached<V1NetworkPolicy>("NetworkPolicy", key).find((p) => p.metadata?.name === name),
          this.#cached<V1PodDisruptionBudget>("PodDisruptionBudget", key).find((p) => p.metadata?.name === name),
        ];
    const missing = await this.#missingReferences(namespace, name, statefulSet, pods);
    const savepoint = await this.#savepointOf(dataflow);
    const plan = reconcile(
      {
        dataflow,
        statefulSet,
        pods,
        claims,
        services,
        networkPolicy,
        disruptionBudget,
        missing,
        ...(savepoint === undefined ? {} : { savepoint }),
      },
      new Date(),
      this.#options.settings ?? DEFAULT_SETTINGS,
    );
    await this.#execute(dataflow, plan);
    const decision = decisionOf(key, dataflow.metadata?.generation, dataflow.status, plan, performance.now() - started);
    if (enabled(decision.level)) log(decision.level, "reconciled", decision.fields);
    return plan.requeueAfterMs;
  }

  /** The savepoint a roll waits for (stage Savepointing), as process 0 tells it; asked only then. */
  async #savepointOf(df: Dataflow): Promise<SavepointObservation | undefined> {
    const rollout = df.status?.rollout;
    const id =
      rollout?.stage === "Savepointing" && rollout.savepoint?.error === undefined ? rollout.savepoint?.id : undefined;
    if (id === undefined) return undefined;
    const key = `${df.metadata?.uid}/${id}`;
    const refused = this.#refused.get(key);
    if (refused !== undefined) {
      this.#refused.delete(key);
      return { state: "refused", error: refused };
    }
    try {
      return (await this.#savepoints.get(df, id)) ?? { state: "absent" };
    } catch (err) {
      return { state: "unreachable", error: errorText(err) };
    }
  }

  /** Asks for a savepoint; a refusal is kept for the next reconcile, which holds the roll and says why. */
  async #triggerSavepoint(df: Dataflow, id: string): Promise<void> {
    try {
      await this.#savepoints.trigger(df, id);
    } catch (err) {
      log("warn", "savepoint request failed", { dataflow: keyOf(df), savepoint: id, error: errorText(err) });
      this.#refused.set(`${df.metadata?.uid}/${id}`, errorText(err));
    }
  }

  /**
   * The Secrets and ConfigMaps the StatefulSet's pods need that do not exist. Asked only
   * while one of its pods has not started: a steady Dataflow costs no request.
   */
  async #missingReferences(
    namespace: string,
    name: string,
    statefulSet: V1StatefulSet | undefined,
    pods: readonly V1Pod[],
  ): Promise<Reference[]> {
    const waiting = pods.some(
      (p) =>
        p.metadata?.deletionTimestamp === undefined &&
        p.metadata?.labels?.[PREFLIGHT_LABEL] === undefined &&
        (p.status?.phase !== "Running" ||
          p.status.containerStatuses?.some((c) => c.state?.waiting?.reason === "CreateContainerConfigError")),
    );
    if (!waiting) return [];
    const refs = referencesOf(statefulSet?.spec?.template.spec, [clusterSecretName(name)]);
    const found = await Promise.all(
      refs.map((r) =>
        this.kube.exists(r.kind, namespace, r.name).catch((err: unknown) => {
          log("debug", "could not check a referenced object", { kind: r.kind, name: r.name, error: errorText(err) });
          return true; // unknown is not missing
        }),
      ),
    );
    return refs.filter((_, i) => !found[i]);
  }

  /**
   * Status first when it is the write-ahead record of what the actions start; then the
   * actions, concurrently (each acts on another object), the finalizer's removal last;
   * then the status, if not yet written; then the events, once the status they narrate
   * is recorded (a failed write is retried with the same events).
   */
  async #execute(observed: Dataflow, plan: Plan): Promise<void> {
    let df = observed;
    let statusDue = hashOf(plan.status) !== hashOf(df.status ?? {});
    // Checks before the write-ahead record: a refused spec records no roll.
    for (const check of plan.actions.filter((a) => a.type === "check")) {
      await this.#act(df, check).catch((err: unknown) => this.#failed(df, check, err));
    }
    if (statusDue && statusFirst(df.status, plan)) {
      df = this.#wrote(df, await this.kube.writeStatus(df, plan.status));
      statusDue = false;
    }
    for (const batch of [0, 1, 2].map((n) => plan.actions.filter((a) => actionStage(a) === n))) {
      const results = await Promise.allSettled(batch.map((action) => this.#act(df, action)));
      for (const [i, result] of results.entries()) {
        if (result.status === "fulfilled") df = result.value ?? df;
        else await this.#failed(df, batch[i] as Action, result.reason);
      }
    }
    if (statusDue) df = this.#wrote(df, await this.kube.writeStatus(df, plan.status));
    await Promise.all(plan.events.map((event) => this.#event(df, event)));
  }

  /** Reports a failed action once (not on every retry), then throws for a retry with backoff. */
  async #failed(df: Dataflow, action: Action, err: unknown): Promise<never> {
    const code = statusCode(err);
    if (code === 409) throw err; // someone wrote in between: look again, nothing to report
    // The API server refused an object built from the spec (say a bad podTemplate): the
    // Dataflow is Failed until the spec changes.
    // Server-side apply answers 500 "failed to create typed patch object" for fields the
    // schema lacks (a typo in env or podTemplate): the spec's fault as well.
    const refused = code === 400 || code === 422 || (code === 500 && errorText(err).includes("typed patch object"));
    const message = `${describe(action)}: ${errorText(err)}${refused ? ": fix the Dataflow spec" : ""}`;
    const degraded = df.status?.conditions?.find((c) => c.type === "Degraded");
    if (degraded?.reason !== REJECTED || degraded.message !== message) {
      await this.#event(df, { type: "Warning", reason: "ActionFailed", message });
      if (refused) {
        await this.kube
          .writeStatus(df, rejected(df, message, new Date()))
          .then((after) => this.#wrote(df, after))
          .catch((e: unknown) => log("warn", "could not record the failure in status", { error: errorText(e) }));
      }
    }
    throw err;
  }

  /** Carries out one action; returns the Dataflow when the action changed it. */
  async #act(df: Dataflow, action: Action): Promise<Dataflow | undefined> {
    switch (action.type) {
      case "apply":
        await this.kube.apply(action.object);
        return undefined;
      case "check":
        await this.kube.apply(action.object, { dryRun: true });
        return undefined;
      case "revert":
        await this.kube.replaceTemplate(action.object);
        await this.kube.apply(action.object);
        return undefined;
      case "scaleToZero":
        await this.kube.scaleToZero(action.target);
        return undefined;
      case "delete":
        await this.kube.delete(action.target, action.propagation);
        return undefined;
      case "ensureClusterSecret":
        // Random bytes here, at the edge: the builder stays a pure function of its input.
        await this.kube.createIfAbsent(desiredClusterSecret(df, randomBytes(CLUSTER_SECRET_BYTES)));
        return undefined;
      case "triggerSavepoint":
        await this.#triggerSavepoint(df, action.id);
        return undefined;
      case "addFinalizer":
      case "removeFinalizer":
        return this.#wrote(df, await this.kube.setFinalizers(df, finalizersAfter(df, action.type)));
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

/** What a reconcile depends on, besides status (which only we write). */
function fingerprintOf(obj: KubernetesObject): string {
  const m = obj.metadata;
  return `${m?.generation}|${m?.deletionTimestamp ?? ""}|${(m?.finalizers ?? []).join(",")}`;
}
