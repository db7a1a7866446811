// rollout: what to apply, delete or check, and the roll's next stage. A worker cluster is
// fixed-size, so a scale or an upgrade stops every old process before the new ones start
// (Stopping), hands a larger cluster's recovery data to a smaller one through holders
// (HandingOff), then starts the new processes (Starting); each stage is recorded
// write-ahead in status.rollout. Pure.
import type { V1NetworkPolicy, V1Pod, V1PodDisruptionBudget, V1Service, V1StatefulSet } from "@kubernetes/client-node";
import {
  CONTAINER,
  type Dataflow,
  type DataflowLastRoll,
  type DataflowRollout,
  type DataflowSavepointRef,
  type DataflowStatus,
  isPodReady,
  replacesProcesses,
} from "@waxflow/crds";
import { desiredNetworkPolicy } from "../desired/network-policy.ts";
import {
  appliedHashOf,
  desiredApiService,
  desiredDisruptionBudget,
  desiredHeadlessService,
  desiredPreflightPod,
  desiredStatefulSet,
  preflightPodName,
  RECOVERY_VOLUME,
  templateHashOf,
} from "../desired/objects.ts";
import { PULL_FAILED, progressMessage, STUCK } from "./diagnosis.ts";
import { statefulSetDrift } from "./drift.ts";
import { type ClusterFacts, isTerminating, observeCluster, ordinalOf, type Wanted } from "./facts.ts";
import type { Action, KubeEvent, ObjectRef, Observed, OperatorSettings } from "./reconcile.ts";
import { type Source, savepointId } from "./upgrade.ts";

/** What the pre-flight pod of the wanted template showed about its image. */
export type Preflight =
  | { readonly state: "passed" }
  | { readonly state: "waiting"; readonly message: string }
  | { readonly state: "failed"; readonly reason: string; readonly message: string };

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

/** The rollout phase's decisions, for the status that reports them. */
export interface RolloutOutcome {
  readonly actions: Action[];
  readonly events: KubeEvent[];
  /** The write-ahead record after this step; undefined when no roll runs. */
  readonly rollout: DataflowRollout | undefined;
  readonly progressing: Progress | undefined;
  /** What holds a roll back until the spec changes (a failed savepoint): Degraded, Progressing False. */
  readonly held?: Progress;
  readonly lastReconciledSpec: string | undefined;
  /** What the pre-flight pod of a new image showed ("passed" when none was needed). */
  readonly gate: Preflight;
  /** Images of ready processes other than the spec's: what an upgrade would stop. */
  readonly oldImages: readonly string[];
  /** status.startFrom: the running template's WAXFLOW_START_FROM, set once a roll is complete. */
  readonly startFrom: string | undefined;
  readonly lastRoll: DataflowStatus["lastRoll"];
  readonly lastSavepoint: DataflowStatus["lastSavepoint"];
}

interface Progress {
  readonly reason: string;
  readonly message: string;
}

type Appliable = V1StatefulSet | V1Service | V1NetworkPolicy | V1PodDisruptionBudget;

/** What every stage reads, and the actions and events it adds to. */
interface Stage extends Wanted {
  readonly df: Dataflow;
  readonly observed: Observed;
  readonly facts: ClusterFacts;
  readonly actions: Action[];
  readonly events: KubeEvent[];
  /** Applies `object` unless the live one carries its hash; sets the StatefulSet's drift back. */
  readonly apply: (object: Appliable) => Action[];
  /** The Services, the NetworkPolicy and the PDB, as `apply` would. */
  readonly services: readonly Action[];
  readonly stsRef: ObjectRef;
}

/** A stage's result: the record after it, what the Progressing condition says, the spec it started. */
interface Step {
  readonly rollout: DataflowRollout | undefined;
  readonly progressing?: Progress;
  readonly lastReconciledSpec?: string;
}

/** Before anything stops: a new roll, or the savepoint one waits for. What the status keeps of it. */
interface Upgrade {
  readonly rollout: DataflowRollout | undefined;
  readonly lastRoll: DataflowStatus["lastRoll"];
  readonly lastSavepoint: DataflowStatus["lastSavepoint"];
  readonly progressing?: Progress;
  readonly held?: Progress;
  /** The processes run on as they are this pass: nothing but the Services is applied. */
  readonly waiting: boolean;
  readonly cancelled: boolean;
}

export function planRollout(
  observed: Observed,
  preflight: V1Pod | undefined,
  wanted: Wanted,
  facts: ClusterFacts,
  now: Date,
  settings: OperatorSettings,
  source: Source,
): RolloutOutcome {
  let stage = stageOf(observed, wanted, facts, settings);
  const { events, services } = stage;
  const { replicas, stalePods, stsStale, stsReplicas, holdersFrom, live } = facts;

  // A roll is needed when starting the wanted processes could meet processes of another
  // spec, or when a smaller cluster must first take over the recovery data of a larger one
  // (a scale-down decided while suspended).
  const needsRoll =
    replicas > 0 &&
    (stalePods.length > 0 ||
      (stsStale && stsReplicas > 0) ||
      (holdersFrom !== undefined && facts.prev.rollout === undefined));
  const beforeStop = facts.prev.rollout?.stage === "Stopping" || facts.prev.rollout?.stage === "Savepointing";
  const { gate, oldImages } = checkImage(stage, preflight, needsRoll && !beforeStop);
  const holding = gate.state !== "passed";
  const upgrade = holding ? undefined : prepare(stage, needsRoll, now, source);
  const rollout = holding ? facts.prev.rollout : upgrade?.rollout;
  const kept = {
    lastRoll: upgrade?.lastRoll ?? facts.prev.lastRoll,
    lastSavepoint: upgrade?.lastSavepoint ?? facts.prev.lastSavepoint,
  };
  const outcome = { actions: stage.actions, events, gate, oldImages, ...kept };
  if (holding || upgrade?.waiting === true) {
    // While the image is checked, or a savepoint taken, the old processes run on as they are.
    stage.actions.push(...services);
    const progressing = holding
      ? {
          reason: "CheckingImage",
          message: `${gate.state === "waiting" ? gate.message : "the pre-flight pod failed"}; the ${live.length} running process(es) of ${oldImages.join(", ")} stop only once it has started`,
        }
      : upgrade?.progressing;
    return {
      ...outcome,
      rollout,
      progressing,
      ...(upgrade?.held === undefined ? {} : { held: upgrade.held }),
      lastReconciledSpec: facts.prev.lastReconciledSpec,
      startFrom: facts.prev.startFrom,
    };
  }
  // The record says where the new processes start from: the objects follow it.
  if (rollout !== undefined && rollout.startFrom !== stage.startFrom) stage = startingFrom(stage, rollout.startFrom);
  // One reconcile may pass through several stages: each goes on from where the one before left the record.
  let step: Step = { rollout, lastReconciledSpec: facts.prev.lastReconciledSpec };
  let progressing: Progress | undefined = upgrade?.progressing;
  for (const next of [stopping, handingOff]) {
    if (step.rollout === undefined) break;
    step = { ...step, ...next(stage, step.rollout) };
    progressing = step.progressing ?? progressing;
  }
  const final =
    step.rollout?.stage === "Starting"
      ? starting(stage, step.rollout)
      : step.rollout === undefined
        ? steady(stage)
        : step;
  const startFrom = final.rollout !== undefined || upgrade?.cancelled === true ? facts.prev.startFrom : stage.startFrom;
  return {
    ...outcome,
    rollout: final.rollout,
    progressing: final.progressing ?? progressing,
    lastReconciledSpec: final.lastReconciledSpec ?? step.lastReconciledSpec,
    startFrom,
  };
}

/** What every stage reads: the wanted objects and how to apply them. */
function stageOf(observed: Observed, wanted: Wanted, facts: ClusterFacts, settings: OperatorSettings): Stage {
  const df = observed.dataflow;
  const events: KubeEvent[] = [];
  const apply = applier(observed, facts, events);
  const services = [
    desiredNetworkPolicy(df, settings.apiClients),
    desiredHeadlessService(df),
    desiredApiService(df),
    desiredDisruptionBudget(df),
  ].flatMap(apply);
  const stsRef: ObjectRef = {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    name: facts.name,
    namespace: facts.namespace,
  };
  return { ...wanted, df, observed, facts, actions: [], events, apply, services, stsRef };
}

/** The stage with the objects of processes that start from `startFrom` (WAXFLOW_START_FROM). */
function startingFrom(stage: Stage, startFrom: string | undefined): Stage {
  const { df, spec, observed, facts } = stage;
  const stsWanted = desiredStatefulSet(df, spec, facts.replicas, startFrom);
  const wanted = { spec, startFrom, stsWanted };
  return { ...stage, ...wanted, facts: { ...observeCluster(observed, wanted), prev: facts.prev } };
}

/**
 * What comes before the processes stop: a roll's record (begin), the savepoint it waits for
 * (savepointing), a record the spec no longer needs (cancel). A newer spec takes over a roll
 * that has stopped nothing yet.
 */
function prepare(stage: Stage, needsRoll: boolean, now: Date, source: Source): Upgrade {
  const { facts } = stage;
  let rollout = facts.prev.rollout;
  let lastRoll = facts.prev.lastRoll;
  let lastSavepoint = facts.prev.lastSavepoint;
  let progressing: Progress | undefined;
  let held: Progress | undefined;
  let waiting = false;
  let cancelled = false;
  const gen = facts.gen ?? 0;
  // Nothing stopped yet (or the savepoint still pending): the newer spec's timer starts now.
  const unstopped =
    rollout?.stage === "Stopping" || (rollout?.stage === "Savepointing" && rollout.savepoint?.error === undefined);
  if (rollout !== undefined && unstopped && rollout.generation < gen && source.rolledBack === undefined) {
    rollout = { ...rollout, generation: gen };
    lastRoll = { generation: gen, startedAt: now.toISOString() };
  }
  // Nothing new started yet: a rollback's start-from replaces the forward roll's.
  if (rollout?.stage === "Stopping" && source.rolledBack !== undefined)
    rollout = { ...rollout, startFrom: stage.startFrom };
  if (rollout?.stage === "Savepointing") {
    const sp = savepointing(stage, rollout, needsRoll);
    rollout = sp.rollout;
    ({ progressing, held } = sp);
    waiting = rollout?.stage === "Savepointing";
    cancelled = rollout === undefined && !needsRoll;
    if (sp.taken !== undefined) {
      lastSavepoint = sp.taken;
      if (lastRoll !== undefined) lastRoll = { ...lastRoll, savepoint: sp.taken.id };
    }
  }
  if (needsRoll && (rollout === undefined || rollout.stage === "Starting" || rollout.stage === "HandingOff")) {
    const begun = begin(stage, now, source);
    rollout = begun.rollout;
    lastRoll = begun.lastRoll ?? lastRoll;
    waiting = rollout.stage === "Savepointing";
    if (waiting) progressing = { reason: "SavepointInProgress", message: savepointWaitMessage(stage, rollout) };
  }
  if (rollout?.stage === "Stopping" && !needsRoll && runsWanted(stage)) {
    rollout = cancel(stage);
    cancelled = true;
  }
  return {
    rollout,
    lastRoll,
    lastSavepoint,
    waiting,
    cancelled,
    ...(progressing === undefined ? {} : { progressing }),
    ...(held === undefined ? {} : { held }),
  };
}

function savepointWaitMessage({ facts }: Stage, rollout: DataflowRollout): string {
  return `taking savepoint ${rollout.savepoint?.id ?? "?"} of the ${facts.live.length} running process(es) (through process 0, ${facts.name}-0) before stopping them; they run on until it is complete`;
}

/**
 * Savepointing: the roll waits for its savepoint. Complete: the new processes start from it
 * (stage Stopping). Failed: the roll is held and the running processes run on untouched,
 * until the spec changes (a new generation asks for a new savepoint).
 */
function savepointing(
  stage: Stage,
  rollout: DataflowRollout,
  needsRoll: boolean,
): { rollout: DataflowRollout | undefined; progressing?: Progress; held?: Progress; taken?: DataflowSavepointRef } {
  const { facts, observed, actions, events } = stage;
  const sp = rollout.savepoint;
  if (!needsRoll) {
    events.push({
      type: "Normal",
      reason: "RollCancelled",
      message: `the ${facts.live.length} running process(es) already run the spec; nothing to restart${sp === undefined ? "" : ` (savepoint ${sp.id} is not needed)`}`,
    });
    return { rollout: undefined };
  }
  if (sp === undefined) return { rollout: { ...rollout, stage: "Stopping" } };
  const gen = facts.gen ?? 0;
  const heldBack = (error: string): Progress => ({
    reason: "SavepointFailed",
    message:
      `savepoint ${sp.id} of the running processes failed: ${error}; the roll to generation ${rollout.generation} is held and ` +
      `the ${facts.live.length} running process(es) run on untouched: fix the cause and edit the spec to try again, or set spec.upgradeMode to last-state`,
  });
  if (sp.error !== undefined) {
    // A newer spec asks again, with a new savepoint.
    return rollout.generation < gen ? { rollout: undefined } : { rollout, held: heldBack(sp.error) };
  }
  const waiting = { reason: "SavepointInProgress", message: savepointWaitMessage(stage, rollout) };
  const current = { ...rollout, generation: Math.max(rollout.generation, gen) };
  const seen = observed.savepoint;
  switch (seen?.state) {
    case undefined:
      return { rollout: current, progressing: waiting };
    case "absent":
      actions.push({ type: "triggerSavepoint", id: sp.id });
      return { rollout: current, progressing: waiting };
    case "pending":
      return {
        rollout: current,
        progressing: {
          reason: "SavepointInProgress",
          message: `${waiting.message}; requested at ${seen.requestedAt}, it completes with the next complete backup set`,
        },
      };
    case "unreachable":
      return {
        rollout: current,
        progressing: {
          reason: "SavepointInProgress",
          message: `${waiting.message}; cannot ask process 0 yet: ${oneLine(seen.error)}`,
        },
      };
    case "failed":
    case "refused": {
      const error = oneLine(seen.error ?? "failed");
      events.push({ type: "Warning", reason: "SavepointFailed", message: heldBack(error).message });
      return { rollout: { ...current, savepoint: { ...sp, error } }, held: heldBack(error) };
    }
    case "complete": {
      events.push({
        type: "Normal",
        reason: "SavepointTaken",
        message: `savepoint ${sp.id} is complete${seen.epoch === undefined ? "" : ` (epoch ${seen.epoch})`}; stopping all ${facts.live.length} process(es), the new ones start from it`,
      });
      const taken = {
        id: sp.id,
        ...(seen.epoch === undefined ? {} : { epoch: seen.epoch }),
        ...(seen.createdAt === undefined ? {} : { createdAt: seen.createdAt }),
      };
      return { rollout: { ...current, stage: "Stopping", startFrom: `savepoint:${sp.id}` }, taken };
    }
  }
}

const oneLine = (text: string): string => text.trim().split("\n")[0] ?? "";

/**
 * Server-side apply is idempotent but costly: skip it when the live object carries the
 * hash of exactly what we would send.
 */
function applier(observed: Observed, facts: ClusterFacts, events: KubeEvent[]): (object: Appliable) => Action[] {
  return (object) => {
    const live =
      object.kind === "StatefulSet"
        ? facts.sts
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
        events.push({ type: "Warning", reason: "DriftReverted", message: templateDriftMessage(facts.name, fields) });
        // An apply would keep what another field manager added (an env var, a label): replace.
        return [{ type: "revert", object: wanted }];
      }
    }
    // Its pods mount the cluster secret: it exists before a StatefulSet that starts pods.
    const startsPods = object.kind === "StatefulSet" && ((object as V1StatefulSet).spec?.replicas ?? 0) > 0;
    return startsPods ? [{ type: "ensureClusterSecret" }, { type: "apply", object }] : [{ type: "apply", object }];
  };
}

/**
 * Before working processes of another image are stopped, one pod of the new template
 * shows that the image pulls and starts; until then (or when it cannot) they run on.
 * Processes that are not ready (crash looping, say) have nothing to keep: no check.
 */
function checkImage(
  { df, spec, startFrom, stsWanted, facts, actions }: Stage,
  preflight: V1Pod | undefined,
  rollWanted: boolean,
): { gate: Preflight; oldImages: string[] } {
  const { live, imageOf, hashWant, shapeChanged, name, namespace } = facts;
  const oldImages = [
    ...new Set(
      live
        .filter(isPodReady)
        .map(imageOf)
        .filter((i): i is string => i !== undefined && i !== spec.image),
    ),
  ];
  const gate: Preflight =
    rollWanted && oldImages.length > 0 ? preflightOf(preflight, spec.image, hashWant) : { state: "passed" };
  const holding = gate.state !== "passed";
  if (holding) {
    if (!shapeChanged) actions.push({ type: "check", object: stsWanted });
    if (preflight === undefined) actions.push({ type: "apply", object: desiredPreflightPod(df, spec, startFrom) });
  }
  if (preflight !== undefined && !isTerminating(preflight) && (!holding || templateHashOf(preflight) !== hashWant)) {
    // Done with, or of an older spec: a new one is made once it is gone.
    const target = { apiVersion: "v1", kind: "Pod", name: preflightPodName(name), namespace };
    actions.push({ type: "delete", target, propagation: "Background" });
  }
  return { gate, oldImages };
}

/**
 * The write-ahead record of a new roll, checked (a dry run) before anything stops, and
 * where its new processes start from (spec.upgradeMode): stateless from empty state,
 * savepoint from a savepoint taken first (stage Savepointing), last-state from their volumes.
 */
function begin(stage: Stage, now: Date, source: Source): { rollout: DataflowRollout; lastRoll?: DataflowLastRoll } {
  const { spec, stsWanted, facts, actions, events, startFrom } = stage;
  const { gen, replicas, last, diff, stsReplicas, shapeChanged, holdersFrom, live, name } = facts;
  const kind = diff.class === "scale" ? "scale" : "upgrade";
  const from = last?.processes ?? stsReplicas;
  // A changed shape is refused in place by design (the StatefulSet is recreated), so only a
  // template can be checked against the live object.
  if (!shapeChanged) actions.push({ type: "check", object: stsWanted });
  const handOff =
    holdersFrom === undefined
      ? ""
      : last === undefined
        ? `, with ${holdersFrom - replicas} holder(s) first handing over the recovery data that an earlier Dataflow ${name} left on volumes ${RECOVERY_VOLUME}-${name}-0..${holdersFrom - 1}`
        : `, with ${holdersFrom - replicas} holder(s) handing their recovery data over first`;
  const record = { kind, generation: gen ?? 0, startedAt: now.toISOString(), from, to: replicas } as const;
  // A rollback starts from what its record says (the savepoint taken before the upgrade); it
  // takes no savepoint and starts no readiness timer of its own.
  const mode = source.rolledBack === undefined && replacesProcesses(diff.class) ? spec.upgradeMode : undefined;
  const zero = live.find((p) => p.metadata?.name === `${name}-0`);
  const saving = mode === "savepoint" && zero !== undefined && isPodReady(zero);
  if (mode === "savepoint" && !saving) {
    events.push({
      type: "Normal",
      reason: "SavepointSkipped",
      message: `process 0 (${name}-0) is not ready, so no savepoint can be taken: the new processes start from their recovery volumes (last-state)`,
    });
  }
  events.push({
    type: "Normal",
    reason: source.rolledBack !== undefined ? "RollingBack" : kind === "scale" ? "Scaling" : "Upgrading",
    message:
      `${diff.fields.length > 0 ? `changed ${diff.fields.join(", ")}: ` : ""}${saving ? "taking a savepoint, then " : ""}stopping all ${Math.max(live.length, from)} process(es) ` +
      `before starting ${replicas} new one(s)${handOff}; a worker cluster never mixes old and new processes`,
  });
  const lastRoll = mode === undefined ? {} : { lastRoll: { generation: gen ?? 0, startedAt: now.toISOString() } };
  if (saving) {
    const id = savepointId(now, gen ?? 0);
    actions.push({ type: "triggerSavepoint", id });
    const savepoint = { id };
    return { rollout: { ...record, stage: "Savepointing", savepoint, ...startFromOf(startFrom) }, ...lastRoll };
  }
  const fresh = mode === "stateless" && spec.recovery.enabled ? `fresh:${gen ?? 0}` : startFrom;
  return { rollout: { ...record, stage: "Stopping", ...startFromOf(fresh) }, ...lastRoll };
}

const startFromOf = (startFrom: string | undefined) => (startFrom === undefined ? {} : { startFrom });

/** The processes already run what the record's roll was to start (the spec went back, or a refused edit left it). */
function runsWanted({ observed, facts }: Stage): boolean {
  const { replicas, sts, stsStale, stsReplicas, stalePods, live } = facts;
  return (
    replicas > 0 &&
    sts !== undefined &&
    !stsStale &&
    stsReplicas === replicas &&
    stalePods.length === 0 &&
    observed.pods.length === replicas &&
    live.length === replicas
  );
}

/** A record with nothing left to do is dropped: nothing is stopped. */
function cancel({ facts, events }: Stage): undefined {
  events.push({
    type: "Normal",
    reason: "RollCancelled",
    message: `the ${facts.replicas} running process(es) already run the spec; nothing to restart`,
  });
  return undefined;
}

/** Stopping: every old process stops (the StatefulSet to 0) before anything new starts. */
function stopping(stage: Stage, rollout: DataflowRollout): Step {
  if (rollout.stage !== "Stopping") return { rollout };
  const { df, spec, startFrom, observed, facts, actions, events, apply, stsRef } = stage;
  const { sts, stsReplicas, shapeChanged, holdersFrom, replicas } = facts;
  // The StatefulSet controller must have seen the scale to 0 too, or it could still be
  // creating a pod of the old template that no list shows yet. (No observedGeneration at
  // all: no StatefulSet controller ever acted on it, so it created no pods.)
  const observedGen = sts?.status?.observedGeneration;
  const stsSettled =
    observedGen === undefined ||
    (observedGen >= (sts?.metadata?.generation ?? 0) && (sts?.status?.replicas ?? 0) === 0);
  if (observed.pods.length > 0 || stsReplicas > 0 || !stsSettled) {
    if (shapeChanged) actions.push({ type: "scaleToZero", target: stsRef });
    else actions.push(...apply(desiredStatefulSet(df, spec, 0, startFrom)));
    return {
      rollout,
      progressing: {
        reason: rollout.kind === "scale" ? "Scaling" : "Upgrading",
        message: `stopping ${observed.pods.length} old process(es) before starting ${replicas} new one(s)`,
      },
    };
  }
  if (holdersFrom !== undefined && replicas > 0 && !shapeChanged) {
    events.push({
      type: "Normal",
      reason: "HandingOffRecovery",
      message:
        `all old processes stopped; starting ${replicas} process(es) and, on the volumes of ordinals ` +
        `${replicas}..${holdersFrom - 1}, ${holdersFrom - replicas} holder(s) that hand their recovery data to them`,
    });
    return { rollout: { ...rollout, stage: "HandingOff", from: holdersFrom, to: replicas } };
  }
  events.push({
    type: "Normal",
    reason: "ProcessesStopped",
    message: `all old processes stopped; starting ${replicas}`,
  });
  return { rollout: { ...rollout, stage: "Starting", to: replicas } };
}

/**
 * HandingOff: every pod of the larger cluster runs the new template; those beyond
 * `replicas` are holders, which turn Ready once the new processes have taken their data over.
 */
function handingOff(stage: Stage, rollout: DataflowRollout): Step {
  if (rollout.stage !== "HandingOff") return { rollout };
  const { df, spec, startFrom, facts, actions, events, apply, services } = stage;
  const { sts, stsStale, stsReplicas, live, stalePods, holdersFrom, replicas } = facts;
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
    return { rollout: { ...rollout, stage: "Starting" } };
  }
  actions.push(...apply(desiredStatefulSet(df, spec, from, startFrom)), ...services);
  const ready = live.filter(isPodReady).length;
  return {
    rollout,
    progressing: {
      reason: "HandingOffRecovery",
      message:
        `${ready}/${from} pods ready: ${replicas} process(es) resume while ${from - replicas} holder(s) ` +
        `hand the recovery data of their volumes over; their claims stay until that is done`,
    },
  };
}

/** Starting: the new processes alone; the roll is complete once the StatefulSet runs the wanted template and size. */
function starting(stage: Stage, rollout: DataflowRollout): Step {
  const { spec, stsWanted, facts, actions, events, apply, services, stsRef } = stage;
  const { shapeChanged, sts, stsStale, stsReplicas, replicas, told } = facts;
  if (shapeChanged) {
    // The pods are gone: recreate the StatefulSet with fields that cannot change in place; Orphan keeps the claims.
    actions.push({ type: "delete", target: stsRef, propagation: "Orphan" });
    return {
      rollout,
      progressing: { reason: "Recreating", message: "recreating the StatefulSet for a change of recovery storage" },
    };
  }
  actions.push(...apply(stsWanted), ...services);
  const lastReconciledSpec = replicas > 0 ? JSON.stringify(spec) : undefined;
  if (sts !== undefined && !stsStale && stsReplicas === replicas) {
    events.push({
      type: "Normal",
      reason: "RollComplete",
      message: `started ${replicas} process(es) of ${spec.image}`,
    });
    return { rollout: undefined, ...(lastReconciledSpec === undefined ? {} : { lastReconciledSpec }) };
  }
  return {
    rollout,
    progressing: {
      reason: "Starting",
      message: `starting ${replicas} process(es) together: ${progressMessage(told, replicas, CONTAINER)}`,
    },
    ...(lastReconciledSpec === undefined ? {} : { lastReconciledSpec }),
  };
}

/** No roll: keep what runs as the spec says, and drop the claims a scale-down left when asked to. */
function steady(stage: Stage): Step {
  const { spec, stsWanted, observed, facts, actions, events, apply, services } = stage;
  const { replicas, last, name, namespace } = facts;
  actions.push(...apply(stsWanted), ...services);
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
  // The spec the processes were started with: while none run (suspended), the last
  // cluster's size still says which volumes hold recovery data.
  return { rollout: undefined, ...(replicas > 0 ? { lastReconciledSpec: JSON.stringify(spec) } : {}) };
}
