// reconcile(observed, now) -> plan: one pure function of what was observed. It never
// talks to the API server; the executor (dataflow-reconciler.ts) carries out the actions and writes
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
import { type Dataflow, type DataflowStatus, isPodReady } from "@waxflow/crds";
import { type ApiClients, DEFAULT_API_CLIENTS } from "../desired/network-policy.ts";
import { desiredStatefulSet, durationSeconds, hashOf } from "../desired/objects.ts";
import { guardPodTemplate } from "../desired/pod-guard.ts";
import type { Reference } from "../desired/references.ts";
import { type ClusterFacts, isPreflight, observeCluster, type Wanted } from "./facts.ts";
import { finalize, withFinalizer } from "./finalizer.ts";
import { report } from "./report.ts";
import { type ObservedRestore, withRestores } from "./restores.ts";
import { planRollout } from "./rollout.ts";
import { condition, REJECTED, STATUS_REFRESH_MS, stamped } from "./status.ts";
import { judge, type SavepointObservation, type Source, sourceOf, type Verdict } from "./upgrade.ts";

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
  /** The savepoint a roll waits for (stage Savepointing), as process 0 tells it. */
  readonly savepoint?: SavepointObservation;
  /** The /status answers of the Ready pods not asked before (restores.ts podsToAsk); a failed request is left out. */
  readonly restores?: readonly ObservedRestore[];
  /** Pods asked for /status that gave no answer: asked again soon (RESTORE_ASK_AGAIN_MS). */
  readonly restoresUnanswered?: number;
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
  /** Asks process 0 for savepoint `id` (Savepoints.trigger); recorded in status.rollout first. */
  | { readonly type: "triggerSavepoint"; readonly id: string }
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
  const converged = withRestores(
    converge(processes, preflight, now, settings),
    df,
    observed.pods,
    observed.restores ?? [],
    observed.restoresUnanswered,
  );
  const plan = refreshed(converged, df, now);
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
  return withFinalizer(plan, observed);
}

/** The spec as the operator can run it, or why not: what the API server's schema cannot check. */
function validate(
  { spec, startFrom }: Source,
  settings: OperatorSettings,
  df: Dataflow,
): Wanted | { readonly error: unknown } {
  try {
    durationSeconds(spec.recovery.snapshotInterval);
    durationSeconds(spec.recovery.backupInterval);
    guardPodTemplate(spec.podTemplate, spec.allowPrivileged, settings.allowPrivilegedDataflows);
    const replicas = spec.state === "running" ? spec.processes : 0;
    return { spec, startFrom, stsWanted: desiredStatefulSet(df, spec, replicas, startFrom) };
  } catch (error) {
    return { error };
  }
}

/**
 * validate -> observe -> (the readiness timer: roll back?) -> rollout -> report, each a
 * pure function of the one before. A rollback renders status.lastStableSpec instead of the
 * spec, from this pass on, and goes through the same roll as any change.
 */
function converge(observed: Observed, preflight: V1Pod | undefined, now: Date, settings: OperatorSettings): Plan {
  const df = observed.dataflow;
  let source: Source;
  try {
    source = sourceOf(df);
  } catch (error) {
    return invalid(observed, error, now);
  }
  let wanted = validate(source, settings, df);
  if ("error" in wanted) return invalid(observed, wanted.error, now);
  let facts = observeCluster(observed, wanted);
  const verdict: Verdict = judge(df, source, facts, allReady(facts, wanted), now);
  if (verdict.kind === "rollBack") {
    const rolledBack = { ...(df.status ?? {}), rolledBack: verdict.record };
    source = sourceOf(df, { ...rolledBack, rollout: undefined });
    const back = validate(source, settings, df);
    if ("error" in back) return invalid(observed, back.error, now);
    wanted = back;
    facts = { ...observeCluster(observed, wanted), prev: rolledBack };
  }
  const outcome = planRollout(observed, preflight, wanted, facts, now, settings, source);
  return report(observed, source, facts, outcome, now, verdict);
}

/** Every process of the rendered spec is Ready and nothing is rolling: what Ready means. */
function allReady(facts: ClusterFacts, { spec }: Wanted): boolean {
  const ready = facts.live.filter((p) => isPodReady(p) && !facts.isHolder(p)).length;
  return (
    facts.prev.rollout === undefined &&
    ready === spec.processes &&
    facts.live.length === spec.processes &&
    facts.stalePods.length === 0
  );
}
