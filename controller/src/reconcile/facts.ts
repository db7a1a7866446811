// observe: what the pods, the StatefulSet and the last started spec say about the worker
// cluster, before anything is decided. Pure, as every phase of reconcile.
import type { V1PersistentVolumeClaim, V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import {
  CONTAINER,
  classifySpecDiff,
  type DataflowStatus,
  type DefaultedDataflowSpec,
  type SpecDiff,
  withDefaults,
} from "@waxflow/crds";
import { immutableShape, PREFLIGHT_LABEL, RECOVERY_VOLUME, refOf, templateHashOf } from "../desired/objects.ts";
import type { Observed } from "./reconcile.ts";

export const isTerminating = (pod: V1Pod) => pod.metadata?.deletionTimestamp !== undefined;

export const isPreflight = (pod: V1Pod) => pod.metadata?.labels?.[PREFLIGHT_LABEL] !== undefined;

function parseSpec(text: string | undefined): DefaultedDataflowSpec | undefined {
  if (text === undefined) return undefined;
  try {
    return withDefaults(JSON.parse(text) as DefaultedDataflowSpec);
  } catch {
    return undefined;
  }
}

/** The ordinal that ends a pod's name (`<name>-<i>`) or a claim's (`recovery-<name>-<i>`). */
export function ordinalOf(objectName: string | undefined, prefix: string): number | undefined {
  if (objectName === undefined || !objectName.startsWith(prefix)) return undefined;
  const ordinal = Number(objectName.slice(prefix.length));
  return Number.isInteger(ordinal) ? ordinal : undefined;
}

/**
 * The size of the last started cluster when its recovery data must be handed to a smaller
 * one: each pod has its own volume, so the pods beyond the new size run once more, as
 * holders, until they have handed their data over. Undefined when there is nothing to hand over.
 */
function handOffFrom(
  last: DefaultedDataflowSpec | undefined,
  spec: DefaultedDataflowSpec,
  leftover: number,
): number | undefined {
  // Stateless: the new processes start empty, so there is nothing to hand over.
  if (!spec.recovery.enabled || spec.upgradeMode === "stateless") return undefined;
  // Never started: volumes beyond its size are an earlier Dataflow's of the same name (kept
  // by its delete), whose last cluster had one process per volume.
  const from = last === undefined ? leftover : last.recovery.enabled ? last.processes : 0;
  return from > spec.processes ? from : undefined;
}

/** How many processes the recovery volumes left by an earlier Dataflow of this name served: the highest ordinal + 1. */
function leftoverVolumes(claims: readonly V1PersistentVolumeClaim[], name: string): number {
  const ordinals = claims
    .filter((c) => c.metadata?.deletionTimestamp === undefined)
    .map((c) => ordinalOf(c.metadata?.name, `${RECOVERY_VOLUME}-${name}-`))
    .filter((o) => o !== undefined);
  return ordinals.length === 0 ? 0 : Math.max(...ordinals) + 1;
}

/** The spec as validated, and the StatefulSet it asks for. */
export interface Wanted {
  readonly spec: DefaultedDataflowSpec;
  /** WAXFLOW_START_FROM of the pods to run (status.rollout's during a roll, else status.startFrom). */
  readonly startFrom: string | undefined;
  readonly stsWanted: V1StatefulSet;
}

/** What reconcile knows about the cluster once it has looked: the inputs of every later phase. */
export interface ClusterFacts {
  readonly name: string;
  readonly namespace: string;
  readonly prev: DataflowStatus;
  readonly gen: number | undefined;
  /** The wanted StatefulSet's replicas: 0 while suspended. */
  readonly replicas: number;
  readonly sts: V1StatefulSet | undefined;
  readonly stsReplicas: number;
  readonly hashWant: string | undefined;
  /** Pods not terminating. */
  readonly live: readonly V1Pod[];
  /** Pods of another template or image than the spec's. */
  readonly stalePods: readonly V1Pod[];
  /** The live StatefulSet differs in a field that cannot change in place (its claims). */
  readonly shapeChanged: boolean;
  readonly stsStale: boolean;
  /** The spec the processes were last started with. */
  readonly last: DefaultedDataflowSpec | undefined;
  readonly diff: SpecDiff;
  /** The size whose recovery data must be handed to a smaller cluster first; undefined if none. */
  readonly holdersFrom: number | undefined;
  readonly isHolder: (pod: V1Pod) => boolean;
  /** What the messages count: the cluster's processes and every pod on its way out. */
  readonly told: readonly V1Pod[];
  readonly imageOf: (pod: V1Pod) => string | undefined;
}

export function observeCluster(observed: Observed, { spec, stsWanted }: Wanted): ClusterFacts {
  const df = observed.dataflow;
  const { name, namespace } = refOf(df);
  const prev = df.status ?? {};
  const gen = df.metadata?.generation;
  const replicas = stsWanted.spec?.replicas ?? 0;
  const sts = observed.statefulSet;
  const hashWant = templateHashOf(stsWanted.spec?.template);
  const live = observed.pods.filter((p) => !isTerminating(p));
  // A pod the StatefulSet made while its template was changed by hand carries our hash
  // but maybe not our image: it is not what the spec runs either.
  const imageOf = (p: V1Pod) => p.spec?.containers.find((c) => c.name === CONTAINER)?.image;
  const stalePods = observed.pods.filter(
    (p) => templateHashOf(p) !== hashWant || (imageOf(p) ?? spec.image) !== spec.image,
  );
  const stsReplicas = sts?.spec?.replicas ?? 0;
  const shapeChanged = sts !== undefined && immutableShape(sts) !== immutableShape(stsWanted);
  const stsStale = sts !== undefined && (templateHashOf(sts.spec?.template) !== hashWant || shapeChanged);
  const last = parseSpec(prev.lastReconciledSpec);
  const diff = classifySpecDiff(last, spec);
  // Not yet started by us (no StatefulSet, or only the one of the roll we recorded): any
  // volumes already there were left by an earlier Dataflow of this name.
  const fresh = last === undefined && (sts === undefined || prev.rollout !== undefined);
  const holdersFrom = handOffFrom(last, spec, fresh ? leftoverVolumes(observed.claims, name) : 0);
  // Holders exist only while a hand-off runs; any other pod beyond spec.processes (the
  // StatefulSet scaled by hand, an old cluster's pods) is counted like every pod.
  const isHolder = (pod: V1Pod) =>
    prev.rollout?.stage === "HandingOff" && (ordinalOf(pod.metadata?.name, `${name}-`) ?? 0) >= spec.processes;
  // What the messages count: the cluster's processes, and every pod on its way out; a
  // holder hands data over and has its own message (HandingOffRecovery).
  const told = observed.pods.filter((p) => isTerminating(p) || !isHolder(p));
  return {
    name,
    namespace,
    prev,
    gen,
    replicas,
    sts,
    stsReplicas,
    hashWant,
    live,
    stalePods,
    shapeChanged,
    stsStale,
    last,
    diff,
    holdersFrom,
    isHolder,
    told,
    imageOf,
  };
}
