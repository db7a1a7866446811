// report: the status, conditions and events that tell what the cluster is doing, from what
// was observed and what the rollout phase decided, and when to look again. Pure.
import type { V1Pod } from "@kubernetes/client-node";
import {
  CONTAINER,
  type DataflowCondition,
  type DataflowRollout,
  type DataflowStatus,
  type DefaultedDataflowSpec,
  isPodReady,
  podSelectorString,
} from "@waxflow/crds";
import { templateHashOf } from "../desired/objects.ts";
import { diagnosePods, missingProblem, progressMessage } from "./diagnosis.ts";
import type { ClusterFacts } from "./facts.ts";
import { diagnoseFailures, trackFailures } from "./failures.ts";
import type { Observed, Plan } from "./reconcile.ts";
import type { RolloutOutcome } from "./rollout.ts";
import { condition, REJECTED } from "./status.ts";
import { type Source, stableOf, type Verdict } from "./upgrade.ts";

/**
 * Pod, StatefulSet and Dataflow changes arrive by watch; these requeues are the safety net
 * (and the clock for time-based conditions), so they can be slow.
 */
const ROLL_POLL_MS = 5_000;
const POLL_MS = 30_000;

export function report(
  observed: Observed,
  source: Source,
  facts: ClusterFacts,
  outcome: RolloutOutcome,
  now: Date,
  verdict: Verdict,
): Plan {
  const { spec } = source;
  const { name, namespace, prev, gen, hashWant, live, stalePods, isHolder, told } = facts;
  const { actions, events, rollout, lastReconciledSpec } = outcome;
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
  const phase = phaseOf(
    crashLoop,
    rollout,
    suspended,
    ready === spec.processes && live.length === spec.processes && stalePods.length === 0,
    live,
  );
  // A failed run first: it is what the restarts and CrashLoopBackOff waits come from.
  const held = heldBack(spec, live.length, outcome);
  const upgrade = upgradeProblem(verdict);
  const stalled = crashLoop || held !== undefined || upgrade?.reason === "UpgradeStuck";
  const progressing = stalled
    ? undefined
    : (outcome.progressing ?? idleProgress(observed, spec, phase, facts, rollout));
  const problem =
    failure ?? held ?? upgrade ?? missingProblem(observed.missing ?? [], live, namespace) ?? diagnosePods(live, now);
  const readyMessage =
    phase === "Running"
      ? `${ready}/${spec.processes} processes ready`
      : suspended
        ? "suspended: no processes run; set spec.state to running to resume from recovery"
        : `${rollout ? `${rollout.kind} in progress: ` : ""}${progressMessage(told, spec.processes, CONTAINER)}`;
  const stuck = upgrade?.reason === "UpgradeStuck" ? upgrade : undefined;
  const conditions = conditionsOf(prev, gen, now, {
    phase,
    crashLoop,
    suspended,
    rollout,
    readyMessage,
    progressing,
    stalled: held ?? stuck,
    rolledBack: stuck === undefined ? upgrade : undefined,
    problem,
  });
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
    ...upgradeStatus(source, facts, outcome, verdict, { running: phase === "Running", problem, upgrade }),
  };
  const plan = planOf(observed, status, { actions, events, readyMessage, problem });
  const wake = "wakeInMs" in verdict ? verdict.wakeInMs : undefined;
  // The readiness timer: look again when it runs out.
  return wake === undefined ? plan : { ...plan, requeueAfterMs: Math.min(plan.requeueAfterMs ?? wake, wake) };
}

/** Progressing without a roll: suspending, or processes still starting. */
function idleProgress(
  observed: Observed,
  spec: DefaultedDataflowSpec,
  phase: DataflowStatus["phase"],
  { told }: ClusterFacts,
  rollout: DataflowRollout | undefined,
): Problem | undefined {
  if (rollout !== undefined) return undefined;
  const suspended = spec.state === "suspended";
  if (suspended && observed.pods.length > 0) {
    return { reason: "Suspending", message: `stopping ${observed.pods.length} process(es); volumes are kept` };
  }
  if (!suspended && phase !== "Running") {
    return { reason: "Starting", message: progressMessage(told, spec.processes, CONTAINER) };
  }
  return undefined;
}

/** What holds a roll back until something changes: a pre-flight pod that failed, a failed savepoint. */
function heldBack(spec: DefaultedDataflowSpec, running: number, { gate, oldImages, held }: RolloutOutcome) {
  if (gate.state !== "failed") return held;
  return {
    reason: gate.reason,
    message: `upgrade to image ${spec.image} held back: ${gate.message}; the ${running} running process(es) keep image ${oldImages.join(", ")}`,
  };
}

/**
 * The status of upgrades: start-from, the last roll and savepoint, the stable spec, the
 * rollback in effect; and the events that tell a rollback and a roll turning stuck.
 */
function upgradeStatus(
  source: Source,
  { prev, gen }: ClusterFacts,
  outcome: RolloutOutcome,
  verdict: Verdict,
  { running, problem, upgrade }: { running: boolean; problem: Problem | undefined; upgrade: Problem | undefined },
): Partial<DataflowStatus> {
  const { events, startFrom, lastRoll, lastSavepoint } = outcome;
  // Told once, as it turns stuck (Degraded's own event tells it when it is the problem shown).
  const stuckBefore = prev.conditions?.find((c) => c.type === "Progressing")?.reason === "UpgradeStuck";
  if (upgrade?.reason === "UpgradeStuck" && problem !== upgrade && !stuckBefore) {
    events.push({ type: "Warning", reason: "UpgradeStuck", message: upgrade.message });
  }
  if (verdict.kind === "rollBack")
    events.push({ type: "Warning", reason: "RolledBack", message: verdict.record.message });
  // Any edit of the spec ends a rollback: the newest spec always wins.
  const rolledBack =
    verdict.kind === "rollBack" ? verdict.record : source.rolledBack === undefined ? undefined : prev.rolledBack;
  return {
    ...stableOf(prev, source, gen, running),
    ...(startFrom === undefined ? {} : { startFrom }),
    ...(lastRoll === undefined ? {} : { lastRoll }),
    ...(lastSavepoint === undefined ? {} : { lastSavepoint }),
    ...(rolledBack === undefined ? {} : { rolledBack }),
  };
}

interface Problem {
  readonly reason: string;
  readonly message: string;
}

/** What the readiness timer found, as a problem: the rollback in effect, or the stuck roll. */
function upgradeProblem(verdict: Verdict): Problem | undefined {
  switch (verdict.kind) {
    case "rollBack":
      return {
        reason: "RolledBack",
        message: `rolled back to generation ${verdict.record.toGeneration} (status.lastStableSpec): ${verdict.record.message}; edit the spec to roll forward again`,
      };
    case "rolledBack":
      return { reason: verdict.failed ? "RollbackFailed" : "RolledBack", message: verdict.message };
    case "stuck":
      return { reason: "UpgradeStuck", message: verdict.message };
    default:
      return undefined;
  }
}

interface Told {
  readonly phase: DataflowStatus["phase"];
  readonly crashLoop: boolean;
  readonly suspended: boolean;
  readonly rollout: DataflowRollout | undefined;
  readonly readyMessage: string;
  readonly progressing: { readonly reason: string; readonly message: string } | undefined;
  /** What holds a roll back (a failed savepoint, a roll not Ready in time): Progressing False with it. */
  readonly stalled: { readonly reason: string; readonly message: string } | undefined;
  /** A rollback in effect: Ready is False with it, whatever the processes of the stable spec do. */
  readonly rolledBack: { readonly reason: string; readonly message: string } | undefined;
  readonly problem: { readonly reason: string; readonly message: string } | undefined;
}

/** Ready, Progressing and Degraded, each with a reason stable for automation and a message for people. */
function conditionsOf(
  prev: DataflowStatus,
  gen: number | undefined,
  now: Date,
  { phase, crashLoop, suspended, rollout, readyMessage, progressing, stalled, rolledBack, problem }: Told,
): DataflowCondition[] {
  // Ready says the spec as written runs: not while a rollback runs the last stable one instead.
  const ready = phase === "Running" && rolledBack === undefined;
  return [
    condition(
      prev.conditions,
      "Ready",
      ready,
      ready
        ? "ProcessesReady"
        : rolledBack !== undefined
          ? rolledBack.reason
          : crashLoop
            ? "CrashLoop"
            : suspended
              ? "Suspended"
              : rollout
                ? "RollInProgress"
                : "ProcessesNotReady",
      rolledBack === undefined ? readyMessage : `${rolledBack.message}; ${readyMessage}`,
      gen,
      now,
    ),
    condition(
      prev.conditions,
      "Progressing",
      progressing !== undefined,
      progressing?.reason ?? stalled?.reason ?? (crashLoop ? "CrashLoop" : suspended ? "Suspended" : "Stable"),
      progressing?.message ??
        stalled?.message ??
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
}

/** The events that narrate a new phase or a new problem, and when to look again. */
function planOf(
  observed: Observed,
  status: DataflowStatus,
  {
    actions,
    events,
    readyMessage,
    problem,
  }: Pick<RolloutOutcome, "actions" | "events"> & {
    readonly readyMessage: string;
    readonly problem: { readonly reason: string; readonly message: string } | undefined;
  },
): Plan {
  const prev = observed.dataflow.status ?? {};
  const gen = observed.dataflow.metadata?.generation;
  const { phase, rollout } = status;
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
    // A roll held by a failed savepoint waits for an edit, which its watch brings.
    ...(rollout !== undefined && rollout.savepoint?.error === undefined
      ? { requeueAfterMs: ROLL_POLL_MS }
      : settled && problem === undefined
        ? {}
        : { requeueAfterMs: POLL_MS }),
  };
}

/** Failed (crash loop) before Deploying (a roll) before Suspended before Running (all ready, current), else Pending or Deploying. */
function phaseOf(
  crashLoop: boolean,
  rollout: DataflowRollout | undefined,
  suspended: boolean,
  allReady: boolean,
  live: readonly V1Pod[],
): DataflowStatus["phase"] {
  if (crashLoop) return "Failed";
  if (rollout !== undefined) return "Deploying";
  if (suspended) return "Suspended";
  if (allReady) return "Running";
  return live.some((p) => p.status?.phase === "Running") ? "Deploying" : "Pending";
}
