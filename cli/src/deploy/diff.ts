// What a deploy changes, from the live Dataflow and the server's dry run of the apply (both
// as the API server stores them, defaults filled in), so "unchanged" and "this restarts
// every process" are decided on what the server would really store, and classed as the
// operator classes them.
import { isDeepStrictEqual } from "node:util";
import { classifySpecDiff, type Dataflow, replacesProcesses } from "@waxflow/crds";

export interface DeployPlan {
  readonly action: "create" | "update" | "unchanged";
  /** Spec fields that change, as `image` or `recovery.snapshotInterval`. */
  readonly fields: readonly string[];
  /** A running dataflow whose processes would all be replaced: needs the user's --yes. */
  readonly replacesRunning: boolean;
}

export function planDeploy(live: Dataflow | undefined, next: Dataflow): DeployPlan {
  if (live === undefined) return { action: "create", fields: [], replacesRunning: false };
  const diff = classifySpecDiff(live.spec, next.spec);
  const metadata = ["labels", "annotations"] as const;
  const relabeled = metadata.some((m) => !isDeepStrictEqual(live.metadata?.[m] ?? {}, next.metadata?.[m] ?? {}));
  return {
    action: diff.fields.length === 0 && !relabeled ? "unchanged" : "update",
    fields: diff.fields,
    replacesRunning: live.spec.state !== "suspended" && replacesProcesses(diff.class),
  };
}
