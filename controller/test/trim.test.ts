// The watch caches keep trimmed objects; reconcile() must decide on them exactly as on
// the objects read in full from the API server.
import type { V1ManagedFieldsEntry, V1PersistentVolumeClaim, V1Pod, V1Service } from "@kubernetes/client-node";
import { withDefaults } from "@waxflow/crds";
import { expect, test } from "vitest";
import { desiredApiService, desiredHeadlessService } from "../src/desired/objects.ts";
import { trimPod, trimStatefulSet, trimToMetadata } from "../src/kube/trim.ts";
import { type Observed, reconcile } from "../src/reconcile/reconcile.ts";
import { crashLooping, dataflow, IMAGE, now, podOf, statefulSetOf } from "./fixtures.ts";

const managedFields: V1ManagedFieldsEntry[] = [{ manager: "kube-controller-manager", operation: "Update" }];
const noise = { "kubectl.kubernetes.io/last-applied-configuration": "{}" };

function served<T extends { metadata?: object }>(obj: T): T {
  return { ...obj, metadata: { ...obj.metadata, managedFields, resourceVersion: "7", uid: "u" } };
}

function full(df = dataflow({ processes: 2, recovery: { enabled: true } })): Observed {
  const sts = served(statefulSetOf(df, 2));
  sts.status = { replicas: 2, observedGeneration: 3, readyReplicas: 1, currentRevision: "r1" };
  sts.metadata = { ...sts.metadata, generation: 3, annotations: { ...sts.metadata?.annotations, ...noise } };
  const crashing = podOf(df, 1, false, {
    startTime: new Date("2026-11-23T11:00:00Z"),
    podIP: "10.0.0.2",
    containerStatuses: [crashLooping(3, "back-off", { exitCode: 2, reason: "Error" })],
  });
  const pods: V1Pod[] = [podOf(df, 0, true), crashing].map((p) =>
    served({ ...p, spec: { ...p.spec, containers: p.spec?.containers ?? [], nodeName: "n1" } }),
  );
  const claims: V1PersistentVolumeClaim[] = [0, 1, 2].map((i) =>
    served({ metadata: { name: `recovery-wc-${i}` }, spec: { accessModes: ["ReadWriteOnce"] } }),
  );
  const services: V1Service[] = [desiredHeadlessService(df), desiredApiService(df)].map(served);
  return { dataflow: df, statefulSet: sts, pods, claims, services };
}

function trimmed(o: Observed): Observed {
  return {
    ...o,
    statefulSet: o.statefulSet && trimStatefulSet(o.statefulSet),
    pods: o.pods.map(trimPod),
    claims: o.claims.map(trimToMetadata),
    services: (o.services ?? []).map(trimToMetadata),
  };
}

test("reconcile decides the same on trimmed objects: steady, degraded, rolling, scaling down", () => {
  const base = dataflow({ processes: 2, recovery: { enabled: true, retention: { whenScaled: "Delete" } } });
  const upgraded = dataflow({ processes: 2, image: `r/x@sha256:${"c".repeat(64)}`, recovery: { enabled: true } });
  upgraded.status = { lastReconciledSpec: JSON.stringify(withDefaults(base.spec)) };
  for (const observed of [full(), full(base), { ...full(base), dataflow: upgraded }]) {
    const plan = reconcile(trimmed(observed), now);
    expect(plan).toEqual(reconcile(observed, now));
  }
  const plan = reconcile(trimmed(full(base)), now);
  expect(plan.status.conditions?.find((c) => c.type === "Degraded")?.reason).toBe("CrashLoopBackOff");
  expect(plan.actions.flatMap((a) => (a.type === "delete" ? [a.target.name] : []))).toEqual(["recovery-wc-2"]);
});

test("trimming keeps our annotations and the pod template, and drops managedFields, pod specs and foreign annotations", () => {
  const o = full();
  const sts = trimStatefulSet(o.statefulSet ?? {});
  expect(sts.metadata?.managedFields).toBeUndefined();
  expect(Object.keys(sts.metadata?.annotations ?? {})).toEqual(["waxflow.io/applied-hash"]);
  // The pod template stays: drift in it is reverted.
  expect(sts.spec?.template).toEqual(o.statefulSet?.spec?.template);
  const pod = trimPod(o.pods[0] ?? {});
  expect(pod.spec?.containers).toEqual([{ name: "waxflow", image: IMAGE }]);
  expect(JSON.stringify(pod).length).toBeLessThan(JSON.stringify(o.pods[0]).length / 3);
});
