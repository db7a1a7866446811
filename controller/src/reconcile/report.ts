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

/**
 * Pod, StatefulSet and Dataflow changes arrive by watch; these requeues are the safety net
 * (and the clock for time-based conditions), so they can be slow.
 */
const ROLL_POLL_MS = 5_000;
const POLL_MS = 30_000;

export function report(
  observed: Observed,
  spec: DefaultedDataflowSpec,
  facts: ClusterFacts,
  outcome: RolloutOutcome,
  now: Date,
): Plan {
  const { name, namespace, prev, gen, hashWant, live, stalePods, isHolder, told } = facts;
  const { actions, events, rollout, lastReconciledSpec, gate, oldImages } = outcome;
  let { progressing } = outcome;
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
  const conditions = conditionsOf(prev, gen, now, {
    phase,
    crashLoop,
    suspended,
    rollout,
    readyMessage,
    progressing,
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
  };
  return planOf(observed, status, { actions, events, readyMessage, problem });
}

interface Told {
  readonly phase: DataflowStatus["phase"];
  readonly crashLoop: boolean;
  readonly suspended: boolean;
  readonly rollout: DataflowRollout | undefined;
  readonly readyMessage: string;
  readonly progressing: { readonly reason: string; readonly message: string } | undefined;
  readonly problem: { readonly reason: string; readonly message: string } | undefined;
}

/** Ready, Progressing and Degraded, each with a reason stable for automation and a message for people. */
function conditionsOf(
  prev: DataflowStatus,
  gen: number | undefined,
  now: Date,
  { phase, crashLoop, suspended, rollout, readyMessage, progressing, problem }: Told,
): DataflowCondition[] {
  return [
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
    ...(rollout !== undefined
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
