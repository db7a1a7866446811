// Reading a Dataflow's and its pods' state for people: pure, so list, describe and the
// deploy wait all say the same thing.
import type { V1Pod } from "@kubernetes/client-node";
import { CONTAINER, type Dataflow, isPodReady } from "@waxflow/crds";

/** kubectl's STATUS: the waiting or terminated reason when there is one, else the phase. */
export function podStatus(pod: V1Pod): string {
  if (pod.metadata?.deletionTimestamp !== undefined) return "Terminating";
  const container = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER);
  const reason = container?.state?.waiting?.reason ?? container?.state?.terminated?.reason;
  if (reason !== undefined) return reason;
  const unschedulable = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (unschedulable?.reason !== undefined) return unschedulable.reason;
  return pod.status?.phase ?? "Unknown";
}

export function podRestarts(pod: V1Pod): number {
  return pod.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.restartCount ?? 0;
}

/** The list's STATE column: the controller's phase, or what the spec asks while none is reported. */
export function dataflowState(df: Dataflow): string {
  if (df.status?.phase !== undefined) return df.status.phase;
  return df.spec.state === "suspended" ? "Suspended" : "Pending";
}

/** processes ready/desired, e.g. `2/3`. */
export function readyOfDesired(df: Dataflow): string {
  return `${df.status?.readyProcesses ?? 0}/${df.spec.processes ?? 1}`;
}

export interface Readiness {
  readonly desired: number;
  /** Pods running the spec's image, not terminating. */
  readonly pods: number;
  readonly podsReady: number;
  /** The controller reports the worker cluster formed for this generation of the spec. */
  readonly formed: boolean;
}

export function readiness(df: Dataflow, pods: readonly V1Pod[], generation: number): Readiness {
  const desired = df.spec.processes ?? 1;
  const current = pods.filter(
    (p) =>
      p.metadata?.deletionTimestamp === undefined &&
      p.spec?.containers.find((c) => c.name === CONTAINER)?.image === df.spec.image,
  );
  const status = df.status;
  const ready = status?.conditions?.find((c) => c.type === "Ready");
  return {
    desired,
    pods: current.length,
    podsReady: current.filter(isPodReady).length,
    formed:
      (status?.observedGeneration ?? 0) >= generation && ready?.status === "True" && status?.readyProcesses === desired,
  };
}
