// What each process restored its empty recovery store from (a backup set, a savepoint, and
// the newer sets it found unusable), as its /status tells it, turned into events on the
// Dataflow. Pure: the reconciler asks the pods (askForRestore) and passes the answers in.
import type { V1Pod } from "@kubernetes/client-node";
import { type Dataflow, isPodReady } from "@waxflow/crds";
import { isPreflight, isTerminating, ordinalOf } from "./facts.ts";
import type { KubeEvent, Plan } from "./reconcile.ts";

/** One pod's answer: `restore` is the /status field as it came (the pod runs user code). */
export interface ObservedRestore {
  readonly pod: string;
  readonly uid: string;
  readonly restore?: unknown;
}

export interface RestoreReport {
  readonly from: string;
  readonly epoch: number;
  readonly fellBack: readonly string[];
}

/** Bounds on what a pod may tell: each string, and the fallback lines. */
export const MAX_RESTORE_TEXT = 1024;
export const MAX_FELL_BACK_LINES = 10;
/** A pod whose /status could not be read is asked again this soon. */
export const RESTORE_ASK_AGAIN_MS = 10_000;
/** What status.restoresReported may hold (the schema's maxItems). */
export const MAX_RESTORES_REPORTED = 2000;

/** One line (an event message tells it as such), not empty, within the bound. */
const boundedText = (v: unknown): v is string =>
  typeof v === "string" && v.length > 0 && v.length <= MAX_RESTORE_TEXT && !/[\r\n]/.test(v);

/** The answer's `restore` when it has the runtime's shape within the bounds; else why not. */
export function restoreReportOf(value: unknown): RestoreReport | { readonly refused: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { refused: "not an object" };
  const { from, epoch, fellBack } = value as Record<string, unknown>;
  if (!boundedText(from) || !/^(backup set|savepoint) /.test(from)) {
    return { refused: `from is not "backup set <name>" or "savepoint <id>" within ${MAX_RESTORE_TEXT} characters` };
  }
  if (typeof epoch !== "number" || !Number.isSafeInteger(epoch) || epoch < 0) {
    return { refused: "epoch is not a non-negative integer" };
  }
  if (!Array.isArray(fellBack) || fellBack.length > MAX_FELL_BACK_LINES || !fellBack.every(boundedText)) {
    return { refused: `fellBack is not at most ${MAX_FELL_BACK_LINES} single lines of ${MAX_RESTORE_TEXT} characters` };
  }
  return { from, epoch, fellBack };
}

/** Whether the Dataflow's processes may restore from a bucket: only then are they asked. */
export function restoresFromBucket(df: Dataflow): boolean {
  return df.spec?.recovery?.backup !== undefined || df.spec?.restoreFrom !== undefined;
}

/** The Ready pods not asked before (by uid): the ones the reconciler asks for /status. */
export function podsToAsk(df: Dataflow, pods: readonly V1Pod[]): { readonly pod: string; readonly uid: string }[] {
  if (!restoresFromBucket(df)) return [];
  const asked = new Set(df.status?.restoresReported ?? []);
  return pods
    .filter((p) => isPodReady(p) && !isTerminating(p) && !isPreflight(p))
    .map((p) => ({ pod: p.metadata?.name ?? "", uid: p.metadata?.uid ?? "" }))
    .filter(({ pod, uid }) => pod !== "" && uid !== "" && !asked.has(uid));
}

/**
 * The events of the answers (`Restored`, a `RestoreFellBack` Warning per unusable set) and
 * restoresReported with their uids, pruned to the pods that still exist. An answer of the
 * wrong shape is recorded as asked and told nothing.
 */
export function reportRestores(
  df: Dataflow,
  pods: readonly V1Pod[],
  answers: readonly ObservedRestore[],
): { readonly restoresReported: string[] | undefined; readonly events: KubeEvent[] } {
  const prefix = `${df.metadata?.name ?? ""}-`;
  const events: KubeEvent[] = [];
  for (const { pod, restore } of answers) {
    if (restore === undefined) continue;
    const report = restoreReportOf(restore);
    if ("refused" in report) continue;
    const process = ordinalOf(pod, prefix) ?? pod;
    for (const line of report.fellBack) {
      events.push({ type: "Warning", reason: "RestoreFellBack", message: `process ${process}: ${line}` });
    }
    events.push({
      type: "Normal",
      reason: "Restored",
      message: `process ${process} restored its recovery store from ${report.from} (epoch ${report.epoch})`,
    });
  }
  const current = new Set(pods.map((p) => p.metadata?.uid));
  const kept = (df.status?.restoresReported ?? []).filter((uid) => current.has(uid));
  const all = [...new Set([...kept, ...answers.map((a) => a.uid)])].slice(-MAX_RESTORES_REPORTED);
  return { restoresReported: all.length === 0 ? undefined : all, events };
}

/**
 * The plan's status and events with what the pods told of their restores. The status
 * builders start afresh, so restoresReported is set here on every pass, pruned.
 */
export function withRestores<P extends Plan>(
  plan: P,
  df: Dataflow,
  pods: readonly V1Pod[],
  answers: readonly ObservedRestore[],
  unanswered = 0,
): P {
  const { restoresReported, events } = reportRestores(df, pods, answers);
  const { restoresReported: _replaced, ...status } = plan.status;
  const askAgain =
    unanswered === 0
      ? {}
      : { requeueAfterMs: Math.min(plan.requeueAfterMs ?? RESTORE_ASK_AGAIN_MS, RESTORE_ASK_AGAIN_MS) };
  return {
    ...plan,
    status: restoresReported === undefined ? status : { ...status, restoresReported },
    events: [...plan.events, ...events],
    ...askAgain,
  };
}
