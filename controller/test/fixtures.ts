// Dataflows, StatefulSets and pods as the API server would hand them to reconcile().
import type { V1ContainerStateTerminated, V1ContainerStatus, V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import { CONTAINER, type Dataflow, type DataflowSpec, withDefaults } from "@waxflow/crds";
import { desiredStatefulSet, FINALIZER } from "../src/desired/objects.ts";

export const IMAGE = `registry.local/flow@sha256:${"a".repeat(64)}`;
export const now = new Date("2026-11-23T12:00:00Z");

export function dataflow(spec: Partial<DataflowSpec> = {}, extra: Partial<Dataflow> = {}): Dataflow {
  return {
    apiVersion: "waxflow.io/v1alpha1",
    kind: "Dataflow",
    metadata: { name: "wc", namespace: "ns1", uid: "uid-1", generation: 1, finalizers: [FINALIZER] },
    spec: { image: IMAGE, module: "/app/flow.js", ...spec },
    ...extra,
  };
}

export function statefulSetOf(df: Dataflow, replicas: number): V1StatefulSet {
  return desiredStatefulSet(df, withDefaults(df.spec), replicas);
}

/** Pod `wc-<i>` of `df`'s template, Running. */
export function podOf(df: Dataflow, i: number, ready: boolean, extra: Partial<V1Pod["status"]> = {}): V1Pod {
  const t = statefulSetOf(df, 1).spec?.template;
  return {
    metadata: { name: `wc-${i}`, namespace: "ns1", annotations: t?.metadata?.annotations },
    spec: { containers: t?.spec?.containers ?? [] },
    status: { phase: "Running", conditions: [{ type: "Ready", status: ready ? "True" : "False" }], ...extra },
  };
}

/** The `waxflow` container's status after `restartCount` restarts, waiting in CrashLoopBackOff. */
export function crashLooping(
  restartCount: number,
  message: string,
  terminated: V1ContainerStateTerminated,
): V1ContainerStatus {
  return {
    name: CONTAINER,
    image: IMAGE,
    imageID: "",
    ready: false,
    restartCount,
    state: { waiting: { reason: "CrashLoopBackOff", message } },
    lastState: { terminated },
  };
}
