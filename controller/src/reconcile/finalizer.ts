// The finalizer `waxflow.io/volumes`, in one place: when a Dataflow gets it, what deleting
// one does before letting it go, and where its removal falls among a plan's actions.
import type { Dataflow, DataflowStatus } from "@waxflow/crds";
import { withDefaults } from "@waxflow/crds";
import { apiServiceName, FINALIZER, refOf } from "../desired/objects.ts";
import type { Action, KubeEvent, ObjectRef, Observed, Plan } from "./reconcile.ts";
import { condition } from "./status.ts";

/**
 * Owned objects follow their owner reference when the Dataflow goes; the finalizer is for
 * recovery volumes, which the StatefulSet stops owning once their ordinal is removed. So it
 * is needed only with volumes, and goes beside the other actions, not before them.
 */
export function withFinalizer(plan: Plan, observed: Observed): Plan {
  const df = observed.dataflow;
  const volumes = df.spec.recovery?.enabled === true || observed.claims.length > 0;
  if (!volumes || (df.metadata?.finalizers ?? []).includes(FINALIZER)) return plan;
  return { ...plan, actions: [{ type: "addFinalizer" }, ...plan.actions] };
}

/** A Dataflow being deleted: its worker cluster goes, its volumes as the spec says, then the finalizer. */
export function finalize(observed: Observed, now: Date): Plan {
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

/**
 * The order the executor carries a plan's actions out in: dry-run checks first (before the
 * write-ahead record), the cluster Secret before the pods that mount it, everything else
 * together, and the finalizer's removal last, once the rest is done.
 */
export function actionStage(action: Action): number {
  switch (action.type) {
    case "check":
      return -1;
    case "ensureClusterSecret":
      return 0;
    case "removeFinalizer":
      return 2;
    default:
      return 1;
  }
}

/** The Dataflow's finalizers once `action` has added or removed ours. */
export function finalizersAfter(df: Dataflow, action: "addFinalizer" | "removeFinalizer"): string[] {
  const others = (df.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER);
  return action === "addFinalizer" ? [...others, FINALIZER] : others;
}
