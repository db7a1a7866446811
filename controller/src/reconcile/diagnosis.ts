// What each process is doing, told from its pod's status, for the Ready and Progressing
// messages: a reader should learn why "0/3 processes ready" without running kubectl.
import type { V1Pod } from "@kubernetes/client-node";
import { CONTAINER, isPodReady } from "@waxflow/crds";
import type { Reference } from "../desired/references.ts";
import { isTerminating } from "./facts.ts";

/** What one process (pod) is doing now; the order is the order of the message's parts. */
export type Activity =
  | { readonly kind: "stopping" }
  | { readonly kind: "pullFailed"; readonly image: string; readonly error: string }
  | { readonly kind: "backOff"; readonly reason: string }
  | { readonly kind: "waiting"; readonly reason: string; readonly message: string }
  | { readonly kind: "unschedulable"; readonly message: string }
  | { readonly kind: "scheduling" }
  | { readonly kind: "settingUp" }
  | { readonly kind: "pulling"; readonly image: string }
  | { readonly kind: "forming" }
  | { readonly kind: "ready" };

export const PULL_FAILED = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"]);
/** Waiting reasons of a container that ran and is held back by the kubelet before its next run. */
const BACK_OFF = new Set(["CrashLoopBackOff", "RunContainerError"]);

const hasCondition = (pod: V1Pod, type: string, status = "True") =>
  pod.status?.conditions?.some((c) => c.type === type && c.status === status) === true;

export function activityOf(pod: V1Pod, container: string): Activity {
  if (pod.metadata?.deletionTimestamp !== undefined) return { kind: "stopping" };
  const cs = pod.status?.containerStatuses?.find((c) => c.name === container);
  const image = cs?.image ?? pod.spec?.containers.find((c) => c.name === container)?.image ?? "?";
  const waiting = cs?.state?.waiting;
  if (waiting?.reason !== undefined) {
    const message = waiting.message?.trim() ?? "";
    if (PULL_FAILED.has(waiting.reason)) return { kind: "pullFailed", image, error: message || waiting.reason };
    if (BACK_OFF.has(waiting.reason)) return { kind: "backOff", reason: waiting.reason };
    if (waiting.reason === "ContainerCreating") {
      // The kubelet mounts volumes and sets up the sandbox (then PodReadyToStartContainers
      // turns True) before it pulls: after that, the wait is for the image.
      return hasCondition(pod, "PodReadyToStartContainers") ? { kind: "pulling", image } : { kind: "settingUp" };
    }
    if (waiting.reason !== "PodInitializing") return { kind: "waiting", reason: waiting.reason, message };
  }
  const unschedulable = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.reason === "Unschedulable");
  if (unschedulable !== undefined) return { kind: "unschedulable", message: unschedulable.message ?? "" };
  if (!hasCondition(pod, "PodScheduled") && pod.status?.phase !== "Running") return { kind: "scheduling" };
  if (pod.status?.phase !== "Running") return { kind: "settingUp" };
  return hasCondition(pod, "Ready") ? { kind: "ready" } : { kind: "forming" };
}

const ORDER: readonly Activity["kind"][] = [
  "stopping",
  "pullFailed",
  "backOff",
  "waiting",
  "unschedulable",
  "scheduling",
  "settingUp",
  "pulling",
  "forming",
];

function phrase(activity: Activity, names: readonly string[]): string {
  const n = names.length;
  const which = `(${names.join(", ")})`;
  switch (activity.kind) {
    case "stopping":
      return `stopping ${n} process(es) ${which}`;
    case "pullFailed":
      return `${n} cannot pull image ${activity.image}: ${activity.error} ${which}`;
    case "backOff":
      return `${n} waiting for back-off after a failed run (${activity.reason}: ${names.join(", ")})`;
    case "waiting":
      return `${n} waiting: ${activity.reason}${activity.message ? `: ${activity.message}` : ""} ${which}`;
    case "unschedulable":
      return `${n} cannot be scheduled: ${activity.message} ${which}`;
    case "scheduling":
      return `${n} being scheduled ${which}`;
    case "settingUp":
      return `${n} mounting volumes and setting up networking ${which}`;
    case "pulling":
      return `${n} pulling image ${activity.image} ${which}`;
    case "forming":
      return `${n} running, waiting for every peer to connect ${which}`;
    case "ready":
      return `${n} ready ${which}`;
  }
}

/**
 * "<ready>/<wanted> processes ready", then what the others do, e.g.
 * "0/3 processes ready: stopping 3 process(es) (wc-0, wc-1, wc-2)". A terminating pod is
 * never ready: it is on its way out, whatever its Ready condition still says.
 */
export function progressMessage(pods: readonly V1Pod[], wanted: number, container: string): string {
  const groups = new Map<string, { activity: Activity; names: string[] }>();
  let ready = 0;
  for (const pod of pods) {
    const activity = activityOf(pod, container);
    if (activity.kind === "ready") {
      ready++;
      continue;
    }
    const key = JSON.stringify(activity);
    const group = groups.get(key) ?? { activity, names: [] };
    group.names.push(pod.metadata?.name ?? "?");
    groups.set(key, group);
  }
  const parts = [...groups.values()]
    .sort((a, b) => ORDER.indexOf(a.activity.kind) - ORDER.indexOf(b.activity.kind))
    .map((g) => phrase(g.activity, g.names));
  const alive = pods.filter((p) => p.metadata?.deletionTimestamp === undefined).length;
  if (alive < wanted) parts.push(`${wanted - alive} not created yet`);
  if (alive > wanted) parts.push(`${alive - wanted} pod(s) more than the ${wanted} the spec asks for`);
  const counted = Math.min(ready, wanted);
  return `${counted}/${wanted} processes ready${parts.length > 0 ? `: ${parts.join("; ")}` : ""}`;
}

/** Container states that will not get better by waiting; the user has to act. */
export const STUCK = new Set([
  "CrashLoopBackOff",
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);
/** How long running processes may stay unready (peers not connected) before we call it a failure. */
const CLUSTER_FORM_TIMEOUT_MS = 120_000;

/** Why the processes are unhealthy, from pod status; undefined when nothing is wrong. */
export function diagnosePods(pods: readonly V1Pod[], now: Date): { reason: string; message: string } | undefined {
  for (const pod of pods) {
    if (isTerminating(pod)) continue;
    const name = pod.metadata?.name ?? "?";
    for (const cs of pod.status?.containerStatuses ?? []) {
      const waiting = cs.state?.waiting;
      if (waiting?.reason !== undefined && STUCK.has(waiting.reason)) {
        const last = cs.lastState?.terminated;
        const exit =
          last === undefined
            ? ""
            : `; last exit code ${last.exitCode}${last.message ? `: ${last.message.trim().split("\n").at(-1)}` : last.reason ? ` (${last.reason})` : ""}`;
        return {
          reason: waiting.reason,
          message: `pod ${name}: container ${cs.name} ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}${exit}`,
        };
      }
    }
    const unschedulable = pod.status?.conditions?.find(
      (c) => c.type === "PodScheduled" && c.reason === "Unschedulable",
    );
    if (unschedulable !== undefined) {
      return { reason: "Unschedulable", message: `pod ${name} cannot be scheduled: ${unschedulable.message ?? ""}` };
    }
  }
  const running = pods.filter((p) => !isTerminating(p) && p.status?.phase === "Running");
  const stuck = running.filter((p) => {
    // Not ready since it started, since its container last (re)started, or since it last
    // went unready: a process that re-forms its cluster after a lost peer or a restart
    // does so in a pod that has run for long.
    const since = [
      p.status?.startTime,
      p.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.running?.startedAt,
      p.status?.conditions?.find((c) => c.type === "Ready")?.lastTransitionTime,
    ]
      .filter((t) => t !== undefined)
      .map((t) => new Date(t).getTime());
    return !isPodReady(p) && since.length > 0 && now.getTime() - Math.max(...since) > CLUSTER_FORM_TIMEOUT_MS;
  });
  if (stuck.length > 0) {
    return {
      reason: "ClusterNotFormed",
      message: `${stuck.length} process(es) running for over ${CLUSTER_FORM_TIMEOUT_MS / 1000}s without every peer connected (/readyz): check their logs and that port 2101 is reachable between pods`,
    };
  }
  return undefined;
}

/** Pods that cannot start for a Secret or ConfigMap that does not exist: which, and where the spec uses it. */
export function missingProblem(
  missing: readonly Reference[],
  live: readonly V1Pod[],
  namespace: string,
): { reason: string; message: string } | undefined {
  const first = missing[0];
  const waiting = live.filter((p) => !isPodReady(p)).map((p) => p.metadata?.name ?? "?");
  if (first === undefined || waiting.length === 0) return undefined;
  const what = missing.map((r) => `${r.kind} "${r.name}" (${r.where})`).join(", ");
  return {
    reason: `Missing${first.kind}`,
    message:
      `${waiting.length} pod(s) (${waiting.join(", ")}) cannot start: ${what} ${missing.length === 1 ? "does" : "do"} not exist ` +
      `in namespace ${namespace}; create ${missing.length === 1 ? "it" : "them"}, or change the Dataflow's env, envFrom or podTemplate`,
  };
}
