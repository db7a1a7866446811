// Pure builders of the status fields that carry time: a condition's lastTransitionTime and
// the status's lastReconcileTime, the two things a reader uses to tell old news from new.
import type { DataflowCondition, DataflowStatus } from "@waxflow/crds";
import { hashOf } from "../desired/objects.ts";

/**
 * How often a running operator rewrites status.lastReconcileTime although nothing changed:
 * `kubectl get df` shows its age, so an age well past this says no operator is reconciling.
 */
export const STATUS_REFRESH_MS = 60_000;

/**
 * One condition as computed now. Its lastTransitionTime moves only when its status flips
 * (a new reason or message keeps it): readers time how long a state has held.
 */
export function condition(
  prev: readonly DataflowCondition[] | undefined,
  type: DataflowCondition["type"],
  status: boolean,
  reason: string,
  message: string,
  generation: number | undefined,
  now: Date,
): DataflowCondition {
  const value = status ? "True" : "False";
  const old = prev?.find((c) => c.type === type);
  return {
    type,
    status: value,
    reason,
    message,
    lastTransitionTime: old?.status === value && old.lastTransitionTime ? old.lastTransitionTime : now.toISOString(),
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  };
}

/**
 * The status to write, stamped with when it was reconciled: the previous stamp is kept
 * while the rest is unchanged and younger than STATUS_REFRESH_MS (no write for nothing),
 * and replaced by now otherwise.
 */
export function stamped(next: DataflowStatus, prev: DataflowStatus, now: Date): DataflowStatus {
  const { lastReconcileTime: last, ...before } = prev;
  const { lastReconcileTime: _ignored, ...after } = next;
  const fresh = last !== undefined && now.getTime() - new Date(last).getTime() < STATUS_REFRESH_MS;
  const unchanged = hashOf(before) === hashOf(after);
  return { ...after, lastReconcileTime: fresh && unchanged ? last : now.toISOString() };
}

/** Degraded reason the executor writes when the API server refuses an object we built. */
export const REJECTED = "RejectedByApiServer";
