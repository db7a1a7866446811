// What a deploy changes, from the live Dataflow and the server's dry run of the apply (both
// as the API server stores them, defaults filled in), so "unchanged" and "this restarts
// every process" are decided on what the server would really store.
import { isDeepStrictEqual } from "node:util";
import type { Dataflow } from "@waxflow/crds";

export interface DeployPlan {
  readonly action: "create" | "update" | "unchanged";
  /** Spec fields that change, as `image` or `recovery.snapshotInterval`. */
  readonly fields: readonly string[];
  /** A running dataflow whose processes would all be replaced: needs the user's --yes. */
  readonly replacesRunning: boolean;
}

// As the controller classifies them: these change nothing a process sees.
const IN_PLACE = (field: string) => field === "state" || field.startsWith("recovery.retention");

function leaves(spec: object): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(spec)) {
    if (key === "recovery" && value !== null && typeof value === "object") {
      for (const [sub, v] of Object.entries(value)) out.set(`recovery.${sub}`, v);
    } else {
      out.set(key, value);
    }
  }
  return out;
}

export function changedFields(before: Dataflow, after: Dataflow): string[] {
  const a = leaves(before.spec);
  const b = leaves(after.spec);
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => !isDeepStrictEqual(a.get(k), b.get(k))).sort();
}

export function planDeploy(live: Dataflow | undefined, next: Dataflow): DeployPlan {
  if (live === undefined) return { action: "create", fields: [], replacesRunning: false };
  const fields = changedFields(live, next);
  const metadata = ["labels", "annotations"] as const;
  const relabeled = metadata.some((m) => !isDeepStrictEqual(live.metadata?.[m] ?? {}, next.metadata?.[m] ?? {}));
  return {
    action: fields.length === 0 && !relabeled ? "unchanged" : "update",
    fields,
    replacesRunning: live.spec.state !== "suspended" && fields.some((f) => !IN_PLACE(f)),
  };
}
