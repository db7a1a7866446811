// The Dataflow policy the runner (kube/runner.ts) calls: what to watch and how an owned
// object maps to its Dataflow; for one Dataflow, observe it (caches, or the API server),
// ask reconcile() for a plan, carry the plan out, then tell it in events and the log.
import { randomBytes } from "node:crypto";
import type {
  KubernetesObject,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodDisruptionBudget,
  V1Service,
  V1StatefulSet,
} from "@kubernetes/client-node";
import { API_VERSION, type Dataflow, KIND, PLURAL } from "@waxflow/crds";
import {
  CLUSTER_SECRET_BYTES,
  clusterSecretName,
  desiredClusterSecret,
  hashOf,
  MANAGED_BY,
  PREFLIGHT_LABEL,
} from "./desired/objects.ts";
import { type Reference, referencesOf } from "./desired/references.ts";
import type { Kube } from "./kube/client.ts";
import type { ProcessStatuses } from "./kube/process-status.ts";
import type { Caches, ErrorPolicy, Reconciler, Watched } from "./kube/runner.ts";
import type { Savepoints } from "./kube/savepoints.ts";
import { ownerKeyOf, trimPod, trimStatefulSet, trimToMetadata, withoutManagedFields } from "./kube/trim.ts";
import { keyOf, type WatchEvent } from "./kube/watch.ts";
import { enabled, errorText, log, statusCode } from "./log.ts";
import { decisionOf, describe } from "./reconcile/decision.ts";
import { actionStage, finalizersAfter } from "./reconcile/finalizer.ts";
import {
  type Action,
  DEFAULT_SETTINGS,
  type Observed,
  type OperatorSettings,
  type Plan,
  reconcile,
  rejected,
  statusFirst,
} from "./reconcile/reconcile.ts";
import { type ObservedRestore, podsToAsk } from "./reconcile/restores.ts";
import { REJECTED } from "./reconcile/status.ts";
import type { SavepointObservation } from "./reconcile/upgrade.ts";

export interface DataflowReconcilerOptions {
  /** What the operator was installed with: API clients, privileged Dataflows. */
  readonly settings?: OperatorSettings;
  /** How savepoints are asked for (upgradeMode savepoint). */
  readonly savepoints: Savepoints;
  /** How a process's /status is read (what it restored from); none: nobody is asked. */
  readonly processStatuses?: ProcessStatuses;
}

/** A failed reconcile: a conflict (someone wrote in between) is just another look, not worth a warning. */
export const dataflowErrorPolicy: ErrorPolicy = (_key, err) =>
  statusCode(err) === 409 ? { result: "conflict", warn: false } : { result: "error", warn: true };

/** Dataflows by their own name; what they own by the Dataflow label, in the caches trimmed to what reconcile reads. */
function dataflowWatches(dataflowKeyFor: Watched["keyFor"]): Watched[] {
  const owned = { labelSelector: `app.kubernetes.io/managed-by=${MANAGED_BY}`, indexBy: ownerKeyOf };
  const ownerKeyFor = (_type: WatchEvent, obj: KubernetesObject) =>
    obj.metadata?.namespace === undefined ? undefined : ownerKeyOf(obj);
  return [
    {
      target: { apiVersion: API_VERSION, kind: KIND, plural: PLURAL, trim: withoutManagedFields },
      keyFor: dataflowKeyFor,
    },
    ...[
      { apiVersion: "apps/v1", kind: "StatefulSet", plural: "statefulsets", trim: trimStatefulSet },
      { apiVersion: "v1", kind: "Pod", plural: "pods", trim: trimPod },
      { apiVersion: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", trim: trimToMetadata },
      { apiVersion: "v1", kind: "Service", plural: "services", trim: trimToMetadata },
      { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", plural: "networkpolicies", trim: trimToMetadata },
      { apiVersion: "policy/v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", trim: trimToMetadata },
    ].map((target) => ({ target: { ...target, ...owned }, keyFor: ownerKeyFor })),
  ];
}

export class DataflowReconciler implements Reconciler {
  readonly watches: readonly Watched[];
  readonly #kube: Kube;
  readonly #settings: OperatorSettings;
  /** Per Dataflow, what of it (besides status) was last seen: our own status writes do not requeue. */
  readonly #seen = new Map<string, string>();
  /**
   * Our own writes to a Dataflow that its watch cache does not show yet: the versions they
   * replaced and the object they returned. Read-your-writes: a reconcile right after a
   * write never decides on the status (the write-ahead record) that write replaced.
   */
  readonly #written = new Map<string, { readonly replaced: Set<string>; readonly latest: Dataflow }>();
  readonly #savepoints: Savepoints;
  readonly #processStatuses: ProcessStatuses | undefined;
  /** Savepoint requests process 0 refused, by `<uid>/<id>`: the next reconcile records them in status. */
  readonly #refused = new Map<string, string>();

  constructor(kube: Kube, options: DataflowReconcilerOptions) {
    this.#kube = kube;
    this.#settings = options.settings ?? DEFAULT_SETTINGS;
    this.#savepoints = options.savepoints;
    this.#processStatuses = options.processStatuses;
    this.watches = dataflowWatches((type, obj) => this.#keyFor(type, obj));
  }

  /** A Dataflow's event asks for a reconcile unless it shows only our own status write. */
  #keyFor(type: WatchEvent, obj: KubernetesObject): string | undefined {
    const namespace = obj.metadata?.namespace;
    const name = obj.metadata?.name;
    if (namespace === undefined || name === undefined) return undefined;
    const key = `${namespace}/${name}`;
    const written = this.#written.get(key);
    if (written !== undefined && !written.replaced.has(obj.metadata?.resourceVersion ?? "")) this.#written.delete(key);
    const fingerprint = fingerprintOf(obj);
    if (type === "DELETED") this.#seen.delete(key);
    else if (type === "MODIFIED" && this.#seen.get(key) === fingerprint) return undefined;
    else this.#seen.set(key, fingerprint);
    return key;
  }

  /** The Dataflow as last seen or, when newer, as our own last write returned it. */
  #dataflow(key: string, caches: Caches): Dataflow | undefined {
    const cached = caches.get(KIND, key) as Dataflow | undefined;
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

  /** observe -> reconcile -> act for one Dataflow; returns when to look again (ms), if at all. */
  async reconcile(key: string, caches: Caches): Promise<number | undefined> {
    const started = performance.now();
    const observed = await this.#observe(key, caches);
    if (observed === undefined) return undefined; // deleted: owner references (and a finalizer) cleaned up
    const { dataflow } = observed;
    const plan = reconcile(observed, new Date(), this.#settings);
    await this.#execute(dataflow, plan);
    const decision = decisionOf(key, dataflow.metadata?.generation, dataflow.status, plan, performance.now() - started);
    if (enabled(decision.level)) log(decision.level, "reconciled", decision.fields);
    return plan.requeueAfterMs;
  }

  /** The Dataflow and what it owns, from the caches once they are synced, else from the API server. */
  async #observe(key: string, caches: Caches): Promise<Observed | undefined> {
    const [namespace = "", name = ""] = key.split("/");
    const dataflow = caches.synced ? this.#dataflow(key, caches) : await this.#kube.readDataflow(namespace, name);
    if (dataflow === undefined) return undefined;
    // Steady state reads the watch caches. Before leaving the Stopping stage of a roll the
    // reconciler must not miss a pod, so it reads the API server itself.
    const live = !caches.synced || dataflow.status?.rollout?.stage === "Stopping";
    const cached = <T extends KubernetesObject>(kind: string) => caches.indexed(kind, key) as T[];
    const [statefulSet, pods, claims, services, networkPolicy, disruptionBudget] = live
      ? await Promise.all([
          this.#kube.readStatefulSet(namespace, name),
          this.#kube.listPods(namespace, name),
          this.#kube.listClaims(namespace, name),
          this.#kube.listServices(namespace, name),
          this.#kube.readNetworkPolicy(namespace, name),
          this.#kube.readDisruptionBudget(namespace, name),
        ])
      : [
          cached<V1StatefulSet>("StatefulSet").find((s) => s.metadata?.name === name),
          cached<V1Pod>("Pod"),
          cached<V1PersistentVolumeClaim>("PersistentVolumeClaim"),
          cached<V1Service>("Service"),
          cached<V1NetworkPolicy>("NetworkPolicy").find((p) => p.metadata?.name === name),
          cached<V1PodDisruptionBudget>("PodDisruptionBudget").find((p) => p.metadata?.name === name),
        ];
    const missing = await this.#missingReferences(namespace, name, statefulSet, pods);
    const [savepoint, asked] = await Promise.all([this.#savepointOf(dataflow), this.#restoresOf(dataflow, pods)]);
    const restores = asked.filter((a) => a !== undefined);
    const unanswered = asked.length - restores.length;
    return {
      dataflow,
      statefulSet,
      pods,
      claims,
      services,
      networkPolicy,
      disruptionBudget,
      missing,
      ...(savepoint === undefined ? {} : { savepoint }),
      ...(restores.length === 0 ? {} : { restores }),
      ...(unanswered === 0 ? {} : { restoresUnanswered: unanswered }),
    };
  }

  /**
   * What each Ready pod not asked before restored from, as its /status tells it (only with
   * a bucket to restore from). A pod that cannot be asked now is undefined: not recorded as
   * asked, so a later reconcile asks again.
   */
  async #restoresOf(df: Dataflow, pods: readonly V1Pod[]): Promise<(ObservedRestore | undefined)[]> {
    const statuses = this.#processStatuses;
    const namespace = df.metadata?.namespace ?? "";
    if (statuses === undefined) return [];
    const answers = await Promise.all(
      podsToAsk(df, pods).map(async ({ pod, uid }): Promise<ObservedRestore | undefined> => {
        try {
          const restore = await statuses.restoreOf(namespace, pod);
          return restore === undefined ? { pod, uid } : { pod, uid, restore };
        } catch (err) {
          log("debug", "could not read a process's /status; asked again later", {
            dataflow: keyOf(df),
            pod,
            error: errorText(err),
          });
          return undefined;
        }
      }),
    );
    return answers;
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
        this.#kube.exists(r.kind, namespace, r.name).catch((err: unknown) => {
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
      df = this.#wrote(df, await this.#kube.writeStatus(df, plan.status));
      statusDue = false;
    }
    for (const batch of [0, 1, 2].map((n) => plan.actions.filter((a) => actionStage(a) === n))) {
      const results = await Promise.allSettled(batch.map((action) => this.#act(df, action)));
      for (const [i, result] of results.entries()) {
        if (result.status === "fulfilled") df = result.value ?? df;
        else await this.#failed(df, batch[i] as Action, result.reason);
      }
    }
    if (statusDue) df = this.#wrote(df, await this.#kube.writeStatus(df, plan.status));
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
        await this.#kube
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
        await this.#kube.apply(action.object);
        return undefined;
      case "check":
        await this.#kube.apply(action.object, { dryRun: true });
        return undefined;
      case "revert":
        await this.#kube.replaceTemplate(action.object);
        await this.#kube.apply(action.object);
        return undefined;
      case "scaleToZero":
        await this.#kube.scaleToZero(action.target);
        return undefined;
      case "delete":
        await this.#kube.delete(action.target, action.propagation);
        return undefined;
      case "ensureClusterSecret":
        // Random bytes here, at the edge: the builder stays a pure function of its input.
        await this.#kube.createIfAbsent(desiredClusterSecret(df, randomBytes(CLUSTER_SECRET_BYTES)));
        return undefined;
      case "triggerSavepoint":
        await this.#triggerSavepoint(df, action.id);
        return undefined;
      case "addFinalizer":
      case "removeFinalizer":
        return this.#wrote(df, await this.#kube.setFinalizers(df, finalizersAfter(df, action.type)));
    }
  }

  async #event(df: Dataflow, event: Parameters<Kube["event"]>[1]): Promise<void> {
    try {
      await this.#kube.event(df, event);
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
