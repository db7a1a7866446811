// The operator's log line for one reconcile: what it decided for which Dataflow and why.
// Pure, so its format is tested without a cluster; dataflow-reconciler.ts writes it.
import type { DataflowStatus } from "@waxflow/crds";
import { hashOf } from "../desired/objects.ts";
import type { Action, Plan } from "./reconcile.ts";

/** One action as the log and events name it: `apply StatefulSet/wc`. */
export function describe(action: Action): string {
  switch (action.type) {
    case "apply":
      return `apply ${action.object.kind}/${action.object.metadata?.name}`;
    case "check":
      return `check ${action.object.kind}/${action.object.metadata?.name}`;
    case "revert":
      return `revert ${action.object.kind}/${action.object.metadata?.name}`;
    case "scaleToZero":
      return `scale ${action.target.kind}/${action.target.name} to 0`;
    case "delete":
      return `delete ${action.target.kind}/${action.target.name}`;
    case "triggerSavepoint":
      return `request savepoint ${action.id}`;
    default:
      return action.type;
  }
}

export interface Decision {
  /** info when the reconcile changed something (objects, status, events); debug when it only looked. */
  readonly level: "info" | "debug";
  readonly fields: {
    readonly dataflow: string;
    readonly generation: number | undefined;
    readonly phase: string | undefined;
    /** What was done, in order, or "none". */
    readonly action: string;
    /** The reason of the condition that explains it: Progressing while true, else Degraded while true, else Ready. */
    readonly reason: string | undefined;
    readonly durationMs: number;
  };
}

/** Status apart from its refresh stamp: a refresh alone is no decision. */
const substance = (status: DataflowStatus | undefined) => hashOf({ ...status, lastReconcileTime: undefined });

export function decisionOf(
  dataflow: string,
  generation: number | undefined,
  before: DataflowStatus | undefined,
  plan: Plan,
  durationMs: number,
): Decision {
  const done = plan.actions.map(describe);
  if (substance(before) !== substance(plan.status)) done.push("write status");
  const conditions = plan.status.conditions ?? [];
  const holding = (type: string) => conditions.find((c) => c.type === type && c.status === "True");
  const reason = (holding("Progressing") ?? holding("Degraded") ?? conditions.find((c) => c.type === "Ready"))?.reason;
  return {
    level: done.length > 0 || plan.events.length > 0 ? "info" : "debug",
    fields: {
      dataflow,
      generation,
      phase: plan.status.phase,
      action: done.length > 0 ? done.join(", ") : "none",
      reason,
      durationMs: Math.round(durationMs),
    },
  };
}
