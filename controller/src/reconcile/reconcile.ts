// reconcile(observed, now) -> plan: one pure function of what was observed. It never
// talks to the API server; the executor (controller.ts) carries out the actions and writes
// the status, before them when it records a step they start (see statusFirst).
import type {
  KubernetesObject,
  V1NetworkPolicy,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodDisruptionBudget,
  V1Service,
  V1StatefulSet,
} from "@kubernetes/client-node";
import {
  CONTAINER,
  classifySpecDiff,
  type Dataflow,
  type DataflowRollout,
  type DataflowStatus,
  type DefaultedDataflowSpec,
  isPodReady,
  podSelectorString,
  withDefaults,
} from "@waxflow/crds";
import { type ApiClients, DEFAULT_API_CLIENTS, desiredNetworkPolicy } from "../desired/network-policy.ts";
import {
  apiServiceName,
  appliedHashOf,
  desiredApiService,
  desiredDisruptionBudget,
  desiredHeadlessService,
  desiredPreflightPod,
  desiredStatefulSet,
  durationSeconds,
  FINALIZER,
  hashOf,
  immutableShape,
  PREFLIGHT_LABEL,
  preflightPodName,
  RECOVERY_VOLUME,
  refOf,
  templateHashOf,
} from "../desired/objects.ts";
import { guardPodTemplate } from "../desired/pod-guard.ts";
import type { Reference } from "../desired/references.ts";
import { progressMessage } from "./diagnosis.ts";
import { statefulSetDrift } from "./drift.ts";
import { diagnoseFailures, trackFailures } from "./failures.ts";
import { condition, STATUS_REFRESH_MS, stamped } from "./status.ts";

export interface Observed {
  readonly dataflow: Dataflow;
  readonly statefulSet: V1StatefulSet | undefined;
  /** Every pod of the Dataflow, terminating ones included. */
  readonly pods: readonly V1Pod[];
  readonly claims: readonly V1PersistentVolumeClaim[];
  /** The Dataflow's Services; applies of unchanged objects are skipped. */
  readonly services?: readonly V1Service[];
  readonly networkPolicy?: V1NetworkPolicy;
  readonly disruptionBudget?: V1PodDisruptionBudget;
  /** Secrets and ConfigMaps the pod template needs that do not exist (looked up while a pod waits). */
  readonly missing?: readonly Reference[];
}

/** What the operator was installed with (the chart's values, through the controller's environment). */
export interface OperatorSettings {
  /** Who besides a Dataflow's own pods may reach their API port. */
  readonly apiClients: ApiClients;
  /** Whether a Dataflow with spec.allowPrivileged may have the pod template it asks for. */
  readonly allowPrivilegedDataflows: boolean;
}

export const DEFAULT_SETTINGS: OperatorSettings = { apiClients: DEFAULT_API_CLIENTS, allowPrivilegedDataflows: false };

export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
}

export type Action =
  | { readonly type: "apply"; readonly object: KubernetesObject }
  /**
   * Puts a StatefulSet's pod template and update strategy back as `object` has them
   * (replacing, so fields another manager added go too), then applies `object`.
   */
  | { readonly type: "revert"; readonly object: V1StatefulSet }
  /**
   * A dry run of applying `object`: carried out first, before the write-ahead record of a
   * roll, so a spec the API server refuses never stops a process.
   */
  | { readonly type: "check"; readonly object: KubernetesObject }
  | { readonly type: "scaleToZero"; readonly target: ObjectRef }
  | { readonly type: "delete"; readonly target: ObjectRef; readonly propagation: "Background" | "Orphan" }
  /**
   * Creates the Dataflow's cluster secret (desiredClusterSecret) with fresh random bytes
   * if it does not exist; never replaces one. Carried out before the plan's other actions.
   */
  | { readonly type: "ensureClusterSecret" }
  | { readonly type: "addFinalizer" }
  | { readonly type: "removeFinalizer" };

export interface KubeEvent {
  readonly type: "Normal" | "Warning";
  readonly reason: string;
  readonly message: string;
}

export interface Plan {
  readonly status: DataflowStatus;
  readonly actions: readonly Action[];
  readonly events: readonly KubeEvent[];
  readonly requeueAfterMs?: number;
}

/** Container states that will not get better by waiting; the user has to act. */
const STUCK = new Set([
  "CrashLoopBackOff",
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);
/** Degraded reason the executor writes when the API server refuses an object we built. */
export const REJECTED = "RejectedByApiServer";
/** How long running processes may stay unready (peers not connected) before we call it a failure. */
const CLUSTER_FORM_TIMEOUT_MS = 120_000;
/**
 * Pod, StatefulSet and Dataflow changes arrive by watch; these requeues are the safety net
 * (and the clock for time-based conditions), so they can be slow.
 */
const ROLL_POLL_MS = 5_000;
const POLL_MS = 30_000;

const isTerminating = (pod: V1Pod) => pod.metadata?.deletionTimestamp !== undefined;

/** Why the processes are unhealthy, from pod status; undefined when nothing is wrong. */
function diagnosePods(pods: readonly V1Pod[], now: Date): { reason: string; message: string } | undefined {
  for (const pod of pods) {
    if (isTerminating(pod)) continue;
    const name = pod.metadata?.name ?? "?";
    for (const cs of pod.status?.containerStatuses ?? []) {
      const waiting = cs.state?.waiting;
      if (waiting?.reason !== undefined && STUCK.has(waiting.reason)) {
        const last = cs.lastState?.terminated;
        const exit =
          last === undefined
            ? ""
            : `; last exit code ${last.exitCode}${last.message ? `: ${last.message.trim().split("\n").at(-1)}` : last.reason ? ` (${last.reason})` : ""}`;
        return {
          reason: waiting.reason,
          message: `pod ${name}: container ${cs.name} ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}${exit}`,
        };
      }
    }
    const unschedulable = pod.status?.conditions?.find(
      (c) => c.type === "PodScheduled" && c.reason === "Unschedulable",
    );
    if (unschedulable !== undefined) {
      return { reason: "Unschedulable", message: `pod ${name} cannot be scheduled: ${unschedulable.message ?? ""}` };
    }
  }
  const running = pods.filter((p) => !isTerminating(p) && p.status?.phase === "Running");
  const stuck = running.filter((p) => {
    // Not ready since it started, since its container last (re)started, or since it last
    // went unready: a process that re-forms its cluster after a lost peer or a restart
    // does so in a pod that has run for long.
    const since = [
      p.status?.startTime,
      p.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.running?.startedAt,
      p.status?.conditions?.find((c) => c.type === "Ready")?.lastTransitionTime,
    ]
      .filter((t) => t !== undefined)
      .map((t) => new Date(t).getTime());
    return !isPodReady(p) && since.length > 0 && now.getTime() - Math.max(...since) > CLUSTER_FORM_TIMEOUT_MS;
  });
  if (stuck.length > 0) {
    return {
      reason: "ClusterNotFormed",
      message: `${stuck.length} process(es) running for over ${CLUSTER_FORM_TIMEOUT_MS / 1000}s without every peer connected (/readyz): check their logs and that port 2101 is reachable between pods`,
    };
  }
  return undefined;
}

/** Pods that cannot start for a Secret or ConfigMap that does not exist: which, and where the spec uses it. */
function missingProblem(
  missing: readonly Reference[],
  live: readonly V1Pod[],
  namespace: string,
): { reason: string; message: string } | undefined {
  const first = missing[0];
  const waiting = live.filter((p) => !isPodReady(p)).map((p) => p.metadata?.name ?? "?");
  if (first === undefined || waiting.length === 0) return undefined;
  const what = missing.map((r) => `${r.kind} "${r.name}" (${r.where})`).join(", ");
  return {
    reason: `Missing${first.kind}`,
    message:
      `${waiting.length} pod(s) (${waiting.join(", ")}) cannot start: ${what} ${missing.length === 1 ? "does" : "do"} not exist ` +
      `in namespace ${namespace}; create ${missing.length === 1 ? "it" : "them"}, or change the Dataflow's env, envFrom or podTemplate`,
  };
}

function parseSpec(text: string | undefined): DefaultedDataflowSpec | undefined {
  if (text === undefined) return undefined;
  try {
    return withDefaults(JSON.parse(text) as DefaultedDataflowSpec);
  } catch {
    return undefined;
  }
}

/** The ordinal that ends a pod's name (`<name>-<i>`) or a claim's (`recovery-<name>-<i>`). */
function ordinalOf(objectName: string | undefined, prefix: string): number | undefined {
  if (objectName === undefined || !objectName.startsWith(prefix)) return undefined;
  const ordinal = Number(objectName.slice(prefix.length));
  return Number.isInteger(ordinal) ? ordinal : undefined;
}

/**
 * The size of the last started cluster when its recovery data must be handed to a smaller
 * one: each pod has its own volume, so the pods beyond the new size run once more, as
 * holders, until they have handed their data over. Undefined when there is nothing to hand over.
 */
function handOffFrom(
  last: DefaultedDataflowSpec | undefined,
  spec: DefaultedDataflowSpec,
  leftover: number,
): number | undefined {
  if (!spec.recovery.enabled) return undefined;
  // Never started: volumes beyond its size are an earlier Dataflow's of the same name (kept
  // by its delete), whose last cluster had one process per volume.
  const from = last === undefined ? leftover : last.recovery.enabled ? last.processes : 0;
  return from > spec.processes ? from : undefined;
}

/** How many processes the recovery volumes left by an earlier Dataflow of this name served: the highest ordinal + 1. */
function leftoverVolumes(claims: readonly V1PersistentVolumeClaim[], name: string): number {
  const ordinals = claims
    .filter((c) => c.metadata?.deletionTimestamp === undefined)
    .map((c) => ordinalOf(c.metadata?.name, `${RECOVERY_VOLUME}-${name}-`))
    .filter((o) => o !== undefined);
  return ordinals.length === 0 ? 0 : Math.max(...ordinals) + 1;
}

const isPreflight = (pod: V1Pod) => pod.metadata?.labels?.[PREFLIGHT_LABEL] !== undefined;

/** What the pre-flight pod of the wanted template showed about its image. */
type Preflight =
  | { readonly state: "passed" }
  | { readonly state: "waiting"; readonly message: string }
  | { readonly state: "failed"; readonly reason: string; readonly message: string };

const PULL_FAILED = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"]);

/** Read from the pre-flight pod's status: the kubelet pulled the image and started it, or why not. */
function preflightOf(pod: V1Pod | undefined, image: string, hashWant: string | undefined): Preflight {
  const name = pod?.metadata?.name ?? "";
  if (pod === undefined || templateHashOf(pod) !== hashWant || isTerminating(pod)) {
    return { state: "waiting", message: `starting a pre-flight pod of image ${image}` };
  }
  const cs = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER);
  const exit = cs?.state?.terminated?.exitCode;
  if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Running" || exit === 0) return { state: "passed" };
  const waiting = cs?.state?.waiting;
  if (waiting?.reason !== undefined && (PULL_FAILED.has(waiting.reason) || STUCK.has(waiting.reason))) {
    const what = PULL_FAILED.has(waiting.reason) ? `cannot pull image ${image}` : `cannot start image ${image}`;
    return {
      state: "failed",
      reason: waiting.reason,
      message: `pre-flight pod ${name} ${what}: ${waiting.reason}${waiting.message ? `: ${waiting.message.trim()}` : ""}`,
    };
  }
  if (pod.status?.phase === "Failed" || (exit !== undefined && exit !== 0)) {
    return {
      state: "failed",
      reason: "PreflightFailed",
      message: `pre-flight pod ${name}: image ${image} exited with code ${exit ?? "?"} on \`waxflow run --help\``,
    };
  }
  return { state: "waiting", message: `pre-flight pod ${name} is pulling and starting image ${image}` };
}

function finalize(observed: Observed, now: Date): Plan {
  const df = observed.dataflow;
  const { name, namespace } = refOf(df);
  const prev = df.status ?? {};
  if (!(df.metadata?.finalizers ?? []).includes(FINALIZER)) return { status: prev, actions: [], events: [] };
  const spec = withDefaults(df.spec);
  const removeVolumes = spec.recovery.retention.whenDeleted === "Delete";
  const ref = (apiVersion: string, kind: string, n: string): ObjectRef => ({ apiVersion, kind, name: n, namespace });
  const actions: Action[] = [
    { type: "delete", target: ref("apps/v1", "StatefulSet", name), propagation: "Background" },
    { type: "delete", target: ref("v1", "Service", name), propagation: "Background" },
    { type: "delete", target: ref("v1", "Service", apiServiceName(name)), propagation: "Background" },
  ];
  const claims = observed.claims.map((c) => c.metadata?.name ?? "").filter((n) => n !== "");
  if (removeVolumes) {
    for (const c of claims) {
      actions.push({ type: "delete", target: ref("v1", "PersistentVolumeClaim", c), propagation: "Background" });
    }
  }
  actions.push({ type: "removeFinalizer" });
  const events: KubeEvent[] = [
    {
      type: "Normal",
      reason: "Deleting",
      message:
        claims.length === 0
          ? "deleting the worker cluster"
          : removeVolumes
            ? `deleting the worker cluster and its ${claims.length} recovery volume(s) (recovery.retention.whenDeleted: Delete)`
            : `deleting the worker cluster; keeping its ${claims.length} recovery volume(s): ${claims.join(", ")}`,
    },
  ];
  const status: DataflowStatus = {
    ...prev,
    observedGeneration: df.metadata?.generation,
    phase: "Deleting",
    conditions: [
      condition(
        prev.conditions,
        "Ready",
        false,
        "Deleting",
        "the Dataflow is being deleted",
        df.metadata?.generation,
        now,
      ),
      ...(prev.conditions ?? []).filter((c) => c.type !== "Ready"),
    ],
  };
  return { status, actions, events };
}

function invalid(observed: Observed, err: unknown, now: Date): Plan {
  const df = observed.dataflow;
  const prev = df.status ?? {};
  const gen = df.metadata?.generation;
  const message = `invalid spec: ${err instanceof Error ? err.message : String(err)}`;
  return {
    status: {
      ...prev,
      observedGeneration: gen,
      phase: "Failed",
      conditions: [
        condition(prev.conditions, "Ready", false, "InvalidSpec", message, gen, now),
        condition(prev.conditions, "Progressing", false, "InvalidSpec", "fix the spec to continue", gen, now),
        condition(prev.conditions, "Degraded", true, "InvalidSpec", message, gen, now),
      ],
    },
    actions: [],
    events: prev.phase === "Failed" ? [] : [{ type: "Warning", reason: "InvalidSpec", message }],
  };
}

/** The status the executor writes when the API server refused an object built from the spec. */
export function rejected(df: Dataflow, message: string, now: Date): DataflowStatus {
  const { rollout: _notCarriedOut, ...prev } = df.status ?? {};
  const gen = df.metadata?.generation;
  const running = prev.processes ?? 0;
  return {
    ...prev,
    observedGeneration: gen,
    lastReconcileTime: now.toISOString(),
    phase: "Failed",
    conditions: [
      condition(
        prev.conditions,
        "Ready",
        false,
        REJECTED,
        running > 0 ? `${running} process(es) keep running the previous spec, untouched: ${message}` : message,
        gen,
        now,
      ),
      ...(prev.conditions ?? []).filter((c) => c.type === "Progressing"),
      condition(prev.conditions, "Degraded", true, REJECTED, message, gen, now),
    ],
  };
}

/**
 * Whether the executor writes the plan's status before its actions: when it records a
 * roll step they start (the write-ahead record a restarted controller resumes from), or
 * when they delete. Otherwise it goes after them, saying what they did without another
 * round trip before them.
 */
export function statusFirst(before: DataflowStatus | undefined, plan: Plan): boolean {
  return (
    hashOf(before?.rollout ?? null) !== hashOf(plan.status.rollout ?? null) ||
    plan.actions.some((a) => a.type === "delete" || a.type === "removeFinalizer")
  );
}

/** What changed in a StatefulSet's replicas behind the operator's back, as the event says it; undefined if nothing. */
function replicasDrift(live: V1StatefulSet, wanted: V1StatefulSet): string | undefined {
  const have = live.spec?.replicas ?? 1;
  const want = wanted.spec?.replicas ?? 1;
  if (have === want) return undefined;
  return (
    `StatefulSet ${live.metadata?.name ?? ""} was scaled to ${have} replica(s) outside the operator; ` +
    `set back to ${want} (to change the number of processes, use waxctl df scale or spec.processes)`
  );
}

/** What was changed in a StatefulSet's template or labels, as the DriftReverted event says it. */
function templateDriftMessage(name: string, fields: readonly string[]): string {
  const shown = fields.length > 5 ? [...fields.slice(0, 5), `${fields.length - 5} more`] : fields;
  return (
    `StatefulSet ${name} was changed outside the operator (${shown.join(", ")}); set back ` +
    "(to change the processes, change the Dataflow: waxctl df deploy, or its spec)"
  );
}

/**
 * The plan with its status stamped (lastReconcileTime) and a look again within
 * STATUS_REFRESH_MS: a status that stops being refreshed then tells that no operator runs.
 */
function refreshed(plan: Plan, df: Dataflow, now: Date): Plan {
  return {
    ...plan,
    status: stamped(plan.status, df.status ?? {}, now),
    requeueAfterMs: Math.min(plan.requeueAfterMs ?? STATUS_REFRESH_MS, STATUS_REFRESH_MS),
  };
}

export function reconcile(observed: Observed, now: Date, settings: OperatorSettings = DEFAULT_SETTINGS): Plan {
  const df = observed.dataflow;
  if (df.metadata?.deletionTimestamp !== undefined) {
    const plan = finalize(observed, now);
    return plan.actions.length === 0 ? plan : refreshed(plan, df, now); // none: the object is already going
  }
  const preflight = observed.pods.find(isPreflight);
  const processes = { ...observed, pods: observed.pods.filter((p) => !isPreflight(p)) };
  const plan = refreshed(converge(processes, preflight, now, settings), df, now);
  // A StatefulSet is what a new Dataflow's pods wait for: create it alone (with the
  // cluster Secret its pods mount and the NetworkPolicy that fences them from their start)
  // and look again (at the back of the queue). A burst of new Dataflows then gets every
  // worker cluster before the Services, status and events, which the API server would
  // serve in between.
  const created = plan.actions.filter(
    (a) =>
      a.type === "ensureClusterSecret" ||
      (a.type === "apply" && (a.object.kind === "StatefulSet" || a.object.kind === "NetworkPolicy")),
  );
  if (observed.statefulSet === undefined && created.length > 0 && !statusFirst(df.status, plan)) {
    return { status: df.status ?? {}, actions: created, events: [], requeueAfterMs: 0 };
  }
  // Owned objects follow their owner reference when the Dataflow goes; the finalizer is
  // for recovery volumes, which the StatefulSet stops owning once their ordinal is removed.
  // So it is needed only with volumes, and goes beside the other actions, not before them.
  const volumes = df.spec.recovery?.enabled === true || observed.claims.length > 0;
  if (!volumes || (df.metadata?.finalizers ?? []).includes(FINALIZER)) return plan;
  return { ...plan, actions: [{ type: "addFinalizer" }, ...plan.actions] };
}

function converge(observed: Observed, preflight: V1Pod | undefined, now: Date, settings: OperatorSettings): Plan {
  const df = observed.dataflow;

  // validate: what the API server's schema cannot check.
  let spec: DefaultedDataflowSpec;
  let stsWanted: V1StatefulSet;
  try {
    spec = withDefaults(df.spec);
    durationSeconds(spec.recovery.snapshotInterval);
    durationSeconds(spec.recovery.backupInterval);
    guardPodTemplate(spec.podTemplate, spec.allowPrivileged, settings.allowPrivilegedDataflows);
    stsWanted = desiredStatefulSet(df, spec, spec.state === "running" ? spec.processes : 0);
  } catch (err) {
    return invalid(observed, err, now);
  }

  const { name, namespace } = refOf(df);
  const prev = df.status ?? {};
  const gen = df.metadata?.generation;
  const replicas = stsWanted.spec?.replicas ?? 0;
  const sts = observed.statefulSet;
  const hashWant = templateHashOf(stsWanted.spec?.template);
  const live = observed.pods.filter((p) => !isTerminating(p));
  // A pod the StatefulSet made while its template was changed by hand carries our hash
  // but maybe not our image: it is not what the spec runs either.
  const imageOf = (p: V1Pod) => p.spec?.containers.find((c) => c.name === CONTAINER)?.image;
  const stalePods = observed.pods.filter(
    (p) => templateHashOf(p) !== hashWant || (imageOf(p) ?? spec.image) !== spec.image,
  );
  const stsReplicas = sts?.spec?.replicas ?? 0;
  const shapeChanged = sts !== undefined && immutableShape(sts) !== immutableShape(stsWanted);
  const stsStale = sts !== undefined && (templateHashOf(sts.spec?.template) !== hashWant || shapeChanged);
  const last = parseSpec(prev.lastReconciledSpec);
  const diff = classifySpecDiff(last, spec);
  // Not yet started by us (no StatefulSet, or only the one of the roll we recorded): any
  // volumes already there were left by an earlier Dataflow of this name.
  const fresh = last === undefined && (sts === undefined || prev.rollout !== undefined);
  const holdersFrom = handOffFrom(last, spec, fresh ? leftoverVolumes(observed.claims, name) : 0);
  // Holders exist only while a hand-off runs; any other pod beyond spec.processes (the
  // StatefulSet scaled by hand, an old cluster's pods) is counted like every pod.
  const isHolder = (pod: V1Pod) =>
    prev.rollout?.stage === "HandingOff" && (ordinalOf(pod.metadata?.name, `${name}-`) ?? 0) >= spec.processes;
  // What the messages count: the cluster's processes, and every pod on its way out; a
  // holder hands data over and has its own message (HandingOffRecovery).
  const told = observed.pods.filter((p) => isTerminating(p) || !isHolder(p));
  const actions: Action[] = [];
  const events: KubeEvent[] = [];
  const stsRef: ObjectRef = { apiVersion: "apps/v1", kind: "StatefulSet", name, namespace };
  // Server-side apply is idempotent but costly: skip it when the live object carries the
  // hash of exactly what we would send.
  const applyIfChanged = (object: V1StatefulSet | V1Service | V1NetworkPolicy | V1PodDisruptionBudget): Action[] => {
    const live =
      object.kind === "StatefulSet"
        ? sts
        : object.kind === "NetworkPolicy"
          ? observed.networkPolicy
          : object.kind === "PodDisruptionBudget"
            ? observed.disruptionBudget
            : observed.services?.find((s) => s.metadata?.name === object.metadata?.name);
    if (live !== undefined && appliedHashOf(live) === appliedHashOf(object)) {
      // Same hash, so what differs was changed by someone else: `kubectl scale sts` and
      // `kubectl set env` leave the annotation alone. A worker cluster's size and pod
      // template are the spec's; put them back.
      if (object.kind !== "StatefulSet") return [];
      const wanted = object as V1StatefulSet;
      const drift = replicasDrift(live as V1StatefulSet, wanted);
      const fields = statefulSetDrift(live as V1StatefulSet, wanted);
      if (drift === undefined && fields.length === 0) return [];
      if (drift !== undefined) events.push({ type: "Warning", reason: "DriftReverted", message: drift });
      if (fields.length > 0) {
        events.push({ type: "Warning", reason: "DriftReverted", message: templateDriftMessage(name, fields) });
        // An apply would keep what another field manager added (an env var, a label): replace.
        return [{ type: "revert", object: wanted }];
      }
    }
    // Its pods mount the cluster secret: it exists before a StatefulSet that starts pods.
    const startsPods = object.kind === "StatefulSet" && ((object as V1StatefulSet).spec?.replicas ?? 0) > 0;
    return startsPods ? [{ type: "ensureClusterSecret" }, { type: "apply", object }] : [{ type: "apply", object }];
  };
  const services: Action[] = [
    desiredNetworkPolicy(df, settings.apiClients),
    desiredHeadlessService(df),
    desiredApiService(df),
    desiredDisruptionBudget(df),
  ].flatMap(applyIfChanged);

  // A roll is needed when starting the wanted processes could meet processes of another
  // spec, or when a smaller cluster must first take over the recovery data of a larger one
  // (a scale-down decided while suspended).
  let rollout: DataflowRollout | undefined = prev.rollout;
  const needsRoll =
    replicas > 0 &&
    (stalePods.length > 0 || (stsStale && stsReplicas > 0) || (holdersFrom !== undefined && rollout === undefined));
  // Before working processes of another image are stopped, one pod of the new template
  // shows that the image pulls and starts; until then (or when it cannot) they run on.
  // Processes that are not ready (crash looping, say) have nothing to keep: no check.
  const oldImages = [
    ...new Set(
      live
        .filter(isPodReady)
        .map(imageOf)
        .filter((i) => i !== undefined && i !== spec.image),
    ),
  ];
  const gate: Preflight =
    needsRoll && rollout?.stage !== "Stopping" && oldImages.length > 0
      ? preflightOf(preflight, spec.image, hashWant)
      : { state: "passed" };
  const holding = gate.state !== "passed";
  if (holding) {
    if (!shapeChanged) actions.push({ type: "check", object: stsWanted });
    if (preflight === undefined) actions.push({ type: "apply", object: desiredPreflightPod(df, spec) });
  }
  if (preflight !== undefined && !isTerminating(preflight) && (!holding || templateHashOf(preflight) !== hashWant)) {
    // Done with, or of an older spec: a new one is made once it is gone.
    const target = { apiVersion: "v1", kind: "Pod", name: preflightPodName(name), namespace };
    actions.push({ type: "delete", target, propagation: "Background" });
  }
  if (needsRoll && rollout?.stage !== "Stopping" && !holding) {
    const kind = diff.class === "scale" ? "scale" : "upgrade";
    const from = last?.processes ?? stsReplicas;
    rollout = { kind, stage: "Stopping", generation: gen ?? 0, startedAt: now.toISOString(), from, to: replicas };
    // A changed shape is refused in place by design (the StatefulSet is recreated), so only a
    // template can be checked against the live object.
    if (!shapeChanged) actions.push({ type: "check", object: stsWanted });
    const handOff =
      holdersFrom === undefined
        ? ""
        : last === undefined
          ? `, with ${holdersFrom - replicas} holder(s) first handing over the recovery data that an earlier Dataflow ${name} left on volumes ${RECOVERY_VOLUME}-${name}-0..${holdersFrom - 1}`
          : `, with ${holdersFrom - replicas} holder(s) handing their recovery data over first`;
    events.push({
      type: "Normal",
      reason: kind === "scale" ? "Scaling" : "Upgrading",
      message:
        `${diff.fields.length > 0 ? `changed ${diff.fields.join(", ")}: ` : ""}stopping all ${Math.max(live.length, from)} process(es) ` +
        `before starting ${replicas} new one(s)${handOff}; a worker cluster never mixes old and new processes`,
    });
  }
  // A record whose target is what already runs (the spec went back to it, or a refused
  // edit left it behind) has nothing left to do: dropped, nothing is stopped.
  const runsWanted =
    replicas > 0 &&
    sts !== undefined &&
    !stsStale &&
    stsReplicas === replicas &&
    stalePods.length === 0 &&
    observed.pods.length === replicas &&
    live.length === replicas;
  if (rollout?.stage === "Stopping" && !needsRoll && runsWanted) {
    events.push({
      type: "Normal",
      reason: "RollCancelled",
      message: `the ${replicas} running process(es) already run the spec; nothing to restart`,
    });
    rollout = undefined;
  }
  let lastReconciledSpec = prev.lastReconciledSpec;
  let progressing: { reason: string; message: string } | undefined;

  // The StatefulSet controller must have seen the scale to 0 too, or it could still be
  // creating a pod of the old template that no list shows yet. (No observedGeneration at
  // all: no StatefulSet controller ever acted on it, so it created no pods.)
  const observedGen = sts?.status?.observedGeneration;
  const stsSettled =
    observedGen === undefined ||
    (observedGen >= (sts?.metadata?.generation ?? 0) && (sts?.status?.replicas ?? 0) === 0);
  if (holding) {
    actions.push(...services);
    progressing = {
      reason: "CheckingImage",
      message: `${gate.state === "waiting" ? gate.message : "the pre-flight pod failed"}; the ${live.length} running process(es) of ${oldImages.join(", ")} stop only once it has started`,
    };
  } else if (rollout?.stage === "Stopping") {
    if (observed.pods.length > 0 || stsReplicas > 0 || !stsSettled) {
      if (shapeChanged) actions.push({ type: "scaleToZero", target: stsRef });
      else actions.push(...applyIfChanged(desiredStatefulSet(df, spec, 0)));
      progressing = {
        reason: rollout.kind === "scale" ? "Scaling" : "Upgrading",
        message: `stopping ${observed.pods.length} old process(es) before starting ${replicas} new one(s)`,
      };
    } else if (holdersFrom !== undefined && replicas > 0 && !shapeChanged) {
      rollout = { ...rollout, stage: "HandingOff", from: holdersFrom, to: replicas };
      events.push({
        type: "Normal",
        reason: "HandingOffRecovery",
        message:
          `all old processes stopped; starting ${replicas} process(es) and, on the volumes of ordinals ` +
          `${replicas}..${holdersFrom - 1}, ${holdersFrom - replicas} holder(s) that hand their recovery data to them`,
      });
    } else {
      rollout = { ...rollout, stage: "Starting", to: replicas };
      events.push({
        type: "Normal",
        reason: "ProcessesStopped",
        message: `all old processes stopped; starting ${replicas}`,
      });
    }
  }
  if (!holding && rollout?.stage === "HandingOff") {
    // Every pod of the larger cluster runs the new template; those beyond `replicas` are
    // holders, which turn Ready once the new processes have taken their data over.
    const from = holdersFrom ?? 0;
    const handedOver =
      sts !== undefined &&
      !stsStale &&
      stsReplicas === from &&
      live.length === from &&
      live.every(isPodReady) &&
      stalePods.length === 0;
    // Nothing (left) to hand over: the spec no longer asks for it, or the Dataflow was
    // suspended meanwhile (the holders run again on resume: the last started size is kept).
    if (from <= replicas || replicas === 0 || handedOver) {
      if (handedOver) {
        events.push({
          type: "Normal",
          reason: "RecoveryHandedOff",
          message: `${replicas} process(es) resumed with the recovery data of all ${from} volumes; removing ${from - replicas} holder(s)`,
        });
      }
      rollout = { ...rollout, stage: "Starting" };
    } else {
      actions.push(...applyIfChanged(desiredStatefulSet(df, spec, from)), ...services);
      const ready = live.filter(isPodReady).length;
      progressing = {
        reason: "HandingOffRecovery",
        message:
          `${ready}/${from} pods ready: ${replicas} process(es) resume while ${from - replicas} holder(s) ` +
          `hand the recovery data of their volumes over; their claims stay until that is done`,
      };
    }
  }
  // While the image is checked the old processes run on as they are: nothing else is applied.
  if (!holding && rollout?.stage === "Starting") {
    if (shapeChanged) {
      // The pods are gone: recreate the StatefulSet with fields that cannot change in place; Orphan keeps the claims.
      actions.push({ type: "delete", target: stsRef, propagation: "Orphan" });
      progressing = { reason: "Recreating", message: "recreating the StatefulSet for a change of recovery storage" };
    } else {
      actions.push(...applyIfChanged(stsWanted), ...services);
      if (replicas > 0) lastReconciledSpec = JSON.stringify(spec);
      if (sts !== undefined && !stsStale && stsReplicas === replicas) {
        events.push({
          type: "Normal",
          reason: "RollComplete",
          message: `started ${replicas} process(es) of ${spec.image}`,
        });
        rollout = undefined;
      } else {
        progressing = {
          reason: "Starting",
          message: `starting ${replicas} process(es) together: ${progressMessage(told, replicas, CONTAINER)}`,
        };
      }
    }
  } else if (!holding && rollout === undefined) {
    actions.push(...applyIfChanged(stsWanted), ...services);
    // The spec the processes were started with: while none run (suspended), the last
    // cluster's size still says which volumes hold recovery data.
    if (replicas > 0) lastReconciledSpec = JSON.stringify(spec);
    if (spec.recovery.retention.whenScaled === "Delete") {
      const used = new Set(observed.pods.map((p) => p.metadata?.name));
      const kept = Math.max(spec.processes, last?.processes ?? 0);
      for (const claim of observed.claims) {
        const ordinal = ordinalOf(claim.metadata?.name, `${RECOVERY_VOLUME}-${name}-`);
        if (ordinal === undefined || ordinal < kept || used.has(`${name}-${ordinal}`)) continue;
        if (claim.metadata?.deletionTimestamp !== undefined) continue;
        const target = { apiVersion: "v1", kind: "PersistentVolumeClaim", name: claim.metadata?.name ?? "", namespace };
        actions.push({ type: "delete", target, propagation: "Background" });
        events.push({
          type: "Normal",
          reason: "VolumeDeleted",
          message: `deleted ${target.name}: scaled below ordinal ${ordinal}`,
        });
      }
    }
  }

  // observe -> status. Holders hand data over; they are not processes of the cluster.
  const ready = live.filter((p) => isPodReady(p) && !isHolder(p)).length;
  const suspended = spec.state === "suspended";
  // Pods of an older template are on their way out: how they failed is history.
  const failures = suspended
    ? []
    : trackFailures(
        prev.failures ?? [],
        live.filter((p) => templateHashOf(p) === hashWant),
        CONTAINER,
      );
  const failure = diagnoseFailures(failures);
  const crashLoop = failure?.reason === "CrashLoop";
  const phase: DataflowStatus["phase"] = crashLoop
    ? "Failed"
    : rollout !== undefined
      ? "Deploying"
      : suspended
        ? "Suspended"
        : ready === spec.processes && live.length === spec.processes && stalePods.length === 0
          ? "Running"
          : !live.some((p) => p.status?.phase === "Running")
            ? "Pending"
            : "Deploying";
  if (crashLoop) {
    progressing = undefined;
  } else if (progressing === undefined && rollout === undefined) {
    if (suspended && observed.pods.length > 0) {
      progressing = { reason: "Suspending", message: `stopping ${observed.pods.length} process(es); volumes are kept` };
    } else if (!suspended && phase !== "Running") {
      progressing = { reason: "Starting", message: progressMessage(told, spec.processes, CONTAINER) };
    }
  }
  // A failed run first: it is what the restarts and CrashLoopBackOff waits come from.
  const held =
    gate.state === "failed"
      ? {
          reason: gate.reason,
          message: `upgrade to image ${spec.image} held back: ${gate.message}; the ${live.length} running process(es) keep image ${oldImages.join(", ")}`,
        }
      : undefined;
  const problem = failure ?? held ?? missingProblem(observed.missing ?? [], live, namespace) ?? diagnosePods(live, now);
  const readyMessage =
    phase === "Running"
      ? `${ready}/${spec.processes} processes ready`
      : suspended
        ? "suspended: no processes run; set spec.state to running to resume from recovery"
        : `${rollout ? `${rollout.kind} in progress: ` : ""}${progressMessage(told, spec.processes, CONTAINER)}`;
  const conditions = [
    condition(
      prev.conditions,
      "Ready",
      phase === "Running",
      phase === "Running"
        ? "ProcessesReady"
        : crashLoop
          ? "CrashLoop"
          : suspended
            ? "Suspended"
            : rollout
              ? "RollInProgress"
              : "ProcessesNotReady",
      readyMessage,
      gen,
      now,
    ),
    condition(
      prev.conditions,
      "Progressing",
      progressing !== undefined,
      progressing?.reason ?? (crashLoop ? "CrashLoop" : suspended ? "Suspended" : "Stable"),
      progressing?.message ??
        (crashLoop
          ? "the processes restart with back-off and fail again: fix the cause and deploy again"
          : suspended
            ? "suspended"
            : "every process runs the current spec"),
      gen,
      now,
    ),
    condition(
      prev.conditions,
      "Degraded",
      problem !== undefined,
      problem?.reason ?? "AsExpected",
      // Empty, so `kubectl get df`'s Problem column is empty too.
      problem?.message ?? "",
      gen,
      now,
    ),
  ];
  const runningImage = live.flatMap((p) => p.spec?.containers ?? []).find((c) => c.name === CONTAINER)?.image;
  const status: DataflowStatus = {
    observedGeneration: gen,
    phase,
    processes: live.length,
    readyProcesses: ready,
    ready: `${ready}/${spec.processes}`,
    selector: podSelectorString(name),
    ...((runningImage ?? prev.image) ? { image: runningImage ?? prev.image } : {}),
    conditions,
    ...(rollout === undefined ? {} : { rollout }),
    ...(failures.length === 0 ? {} : { failures }),
    ...(lastReconciledSpec === undefined ? {} : { lastReconciledSpec }),
  };
  if (prev.phase !== phase) {
    events.push({
      type: "Normal",
      reason: phase ?? "Pending",
      message: `${prev.phase === undefined ? "" : `phase ${prev.phase} -> ${phase}: `}${readyMessage}`,
    });
  }
  const prevDegraded = prev.conditions?.find((c) => c.type === "Degraded");
  if (problem !== undefined && (prevDegraded?.status !== "True" || prevDegraded.reason !== problem.reason)) {
    events.push({ type: "Warning", reason: problem.reason, message: problem.message });
  }
  // The executor recorded that the API server refused an object built from this
  // generation: keep saying so (the actions are retried with backoff) until the spec changes.
  const rejected =
    prev.phase === "Failed" &&
    prevDegraded?.reason === REJECTED &&
    prevDegraded.status === "True" &&
    prevDegraded.observedGeneration === gen;
  if (rejected) {
    return { status: { ...status, phase: "Failed", conditions: prev.conditions }, actions, events: [] };
  }
  const settled = phase === "Running" || (phase === "Suspended" && observed.pods.length === 0);
  return {
    status,
    actions,
    events,
    ...(rollout !== undefined
      ? { requeueAfterMs: ROLL_POLL_MS }
      : settled && problem === undefined
        ? {}
        : { requeueAfterMs: POLL_MS }),
  };
}
