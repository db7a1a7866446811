import type { V1Pod } from "@kubernetes/client-node";
import { type Dataflow, type DataflowSpec, withDefaults } from "@waxflow/crds";
import { expect, test } from "vitest";
import {
  desiredApiService,
  desiredHeadlessService,
  desiredStatefulSet,
  durationSeconds,
  FINALIZER,
  podTemplate,
  TEMPLATE_HASH,
} from "../src/desired/objects.ts";
import { classifySpecDiff } from "../src/reconcile/diff.ts";
import { type Observed, reconcile } from "../src/reconcile/reconcile.ts";

const IMAGE = `registry.local/flow@sha256:${"a".repeat(64)}`;
const now = new Date("2026-11-23T12:00:00Z");

function dataflow(spec: Partial<DataflowSpec> = {}, extra: Partial<Dataflow> = {}): Dataflow {
  return {
    apiVersion: "waxflow.io/v1alpha1",
    kind: "Dataflow",
    metadata: { name: "wc", namespace: "ns1", uid: "uid-1", generation: 1, finalizers: [FINALIZER] },
    spec: { image: IMAGE, module: "/app/flow.js", ...spec },
    ...extra,
  };
}

const contractLabels = {
  "app.kubernetes.io/name": "waxflow",
  "app.kubernetes.io/instance": "wc",
  "app.kubernetes.io/managed-by": "waxflow-controller",
  "waxflow.io/dataflow": "wc",
};

test("StatefulSet follows the contract: names, labels, ports, env, security, recovery volume", () => {
  const df = dataflow({
    processes: 3,
    workersPerProcess: 2,
    recovery: { enabled: true, snapshotInterval: "5s", backupInterval: "1m", retention: { whenDeleted: "Delete" } },
    env: [{ name: "LOG", value: "debug" }],
  });
  const sts = desiredStatefulSet(df, 3);
  expect(sts.metadata?.name).toBe("wc");
  expect(sts.metadata?.labels).toEqual(contractLabels);
  expect(sts.metadata?.ownerReferences?.[0]).toMatchObject({
    kind: "Dataflow",
    name: "wc",
    uid: "uid-1",
    controller: true,
  });
  expect(sts.spec?.podManagementPolicy).toBe("Parallel");
  expect(sts.spec?.updateStrategy?.type).toBe("OnDelete");
  expect(sts.spec?.serviceName).toBe("wc");
  expect(sts.spec?.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: "Delete", whenScaled: "Retain" });
  expect(sts.spec?.volumeClaimTemplates?.[0]?.metadata?.name).toBe("recovery");
  const c = sts.spec?.template.spec?.containers[0];
  expect(c?.ports?.map((p) => [p.name, p.containerPort])).toEqual([
    ["cluster", 2101],
    ["api", 3030],
  ]);
  expect(c?.volumeMounts).toContainEqual({ name: "recovery", mountPath: "/var/lib/waxflow/recovery" });
  expect(c?.securityContext).toEqual({
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
  });
  const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
  expect(env).toMatchObject({
    WAXFLOW_WORKERS_PER_PROCESS: "2",
    WAXFLOW_REPLICAS: "3",
    WAXFLOW_STATEFULSET_NAME: "wc",
    WAXFLOW_SERVICE_NAME: "wc",
    WAXFLOW_NAMESPACE: "metadata.namespace",
    WAXFLOW_POD_NAME: "metadata.name",
    WAXFLOW_RECOVERY_DIRECTORY: "/var/lib/waxflow/recovery",
    WAXFLOW_SNAPSHOT_INTERVAL: "5",
    WAXFLOW_BACKUP_INTERVAL: "60",
    LOG: "debug",
  });
});

test("no recovery volume when recovery is disabled", () => {
  const sts = desiredStatefulSet(dataflow(), 1);
  expect(sts.spec?.volumeClaimTemplates).toBeUndefined();
  expect(sts.spec?.template.spec?.containers[0]?.volumeMounts?.map((m) => m.name)).toEqual(["tmp"]);
});

test("services: headless publishes not-ready addresses on 2101; the api service on 3030", () => {
  const headless = desiredHeadlessService(dataflow());
  expect(headless.metadata?.name).toBe("wc");
  expect(headless.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true });
  expect(headless.spec?.ports).toEqual([{ name: "cluster", port: 2101, targetPort: 2101, protocol: "TCP" }]);
  const api = desiredApiService(dataflow());
  expect(api.metadata?.name).toBe("wc-api");
  expect(api.metadata?.labels).toEqual(contractLabels);
  expect(api.spec?.ports?.[0]?.port).toBe(3030);
});

test("the pod template overlay adds sidecars and fields but cannot override the contract", () => {
  const t = podTemplate(
    dataflow({
      podTemplate: {
        metadata: { labels: { team: "a", "waxflow.io/dataflow": "other" } },
        spec: {
          nodeSelector: { disk: "ssd" },
          containers: [
            { name: "waxflow", image: "evil", env: [{ name: "X", value: "1" }] },
            { name: "sidecar", image: "s" },
          ],
        },
      },
    }),
  );
  expect(t.metadata?.labels).toMatchObject({ team: "a", "waxflow.io/dataflow": "wc" });
  expect(t.spec?.nodeSelector).toEqual({ disk: "ssd" });
  expect(t.spec?.containers.map((c) => c.name)).toEqual(["waxflow", "sidecar"]);
  expect(t.spec?.containers[0]?.image).toBe(IMAGE);
  expect(t.spec?.containers[0]?.env?.at(-1)).toEqual({ name: "X", value: "1" });
});

test("the template hash changes with what the pods see and not with the replica count", () => {
  const h = (df: Dataflow, r: number) =>
    desiredStatefulSet(df, r).spec?.template.metadata?.annotations?.[TEMPLATE_HASH];
  expect(h(dataflow(), 1)).toBe(h(dataflow(), 0));
  expect(h(dataflow({ restartNonce: 1 }), 1)).not.toBe(h(dataflow(), 1));
  expect(h(dataflow({ processes: 2 }), 1)).not.toBe(h(dataflow(), 1));
  expect(h(dataflow({ state: "suspended" }), 1)).toBe(h(dataflow(), 1));
});

test("durations", () => {
  expect(durationSeconds("1m30s")).toBe(90);
  expect(durationSeconds("500ms")).toBe(0.5);
  expect(() => durationSeconds("5x")).toThrow(/not a duration/);
});

test("spec diff classes: the largest class wins", () => {
  const base = withDefaults(dataflow().spec);
  expect(classifySpecDiff(base, base).class).toBe("none");
  expect(classifySpecDiff(base, { ...base, state: "suspended" }).class).toBe("ignore");
  const retained = {
    ...base,
    recovery: { ...base.recovery, retention: { whenDeleted: "Delete", whenScaled: "Retain" } },
  };
  expect(classifySpecDiff(base, retained as typeof base)).toEqual({
    class: "ignore",
    fields: ["recovery.retention"],
  });
  expect(classifySpecDiff(base, { ...base, processes: 4 })).toEqual({ class: "scale", fields: ["processes"] });
  expect(classifySpecDiff(base, { ...base, processes: 4, image: "x" })).toEqual({
    class: "upgrade",
    fields: ["image", "processes"],
  });
  expect(classifySpecDiff(undefined, base).class).toBe("upgrade");
});

// --- reconcile: the pure state machine

function podOf(df: Dataflow, i: number, ready: boolean, extra: Partial<V1Pod["status"]> = {}): V1Pod {
  const t = desiredStatefulSet(df, 1).spec?.template;
  return {
    metadata: { name: `wc-${i}`, annotations: t?.metadata?.annotations },
    spec: { containers: t?.spec?.containers ?? [] },
    status: { phase: "Running", conditions: [{ type: "Ready", status: ready ? "True" : "False" }], ...extra },
  };
}

function observed(df: Dataflow, replicas: number, pods: V1Pod[], stsOf: Dataflow = df): Observed {
  return { dataflow: df, statefulSet: desiredStatefulSet(stsOf, replicas), pods, claims: [] };
}

test("an unchanged object is not applied again", () => {
  const df = dataflow({ processes: 2 });
  const services = [desiredHeadlessService(df), desiredApiService(df)];
  const plan = reconcile({ ...observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true)]), services }, now);
  expect(plan.actions).toEqual([]);
  const scaled = reconcile({ ...observed(df, 1, []), services }, now);
  expect(scaled.actions.map((a) => (a.type === "apply" ? a.object.kind : a.type))).toEqual(["StatefulSet"]);
});

test("reconcile adds the finalizer before anything else", () => {
  const df = dataflow();
  df.metadata = { ...df.metadata, finalizers: [] };
  expect(reconcile({ dataflow: df, statefulSet: undefined, pods: [], claims: [] }, now).actions).toEqual([
    { type: "addFinalizer" },
  ]);
});

test("a new Dataflow gets its StatefulSet and Services and is Pending until the StatefulSet exists", () => {
  const plan = reconcile({ dataflow: dataflow({ processes: 2 }), statefulSet: undefined, pods: [], claims: [] }, now);
  expect(
    plan.actions.map((a) => (a.type === "apply" ? `${a.object.kind}/${a.object.metadata?.name}` : a.type)),
  ).toEqual(["StatefulSet/wc", "Service/wc", "Service/wc-api"]);
  expect(plan.status.phase).toBe("Pending");
  expect(plan.status.ready).toBe("0/2");
  expect(plan.requeueAfterMs).toBeGreaterThan(0);
});

test("all processes ready: Running and Ready", () => {
  const df = dataflow({ processes: 2 });
  const plan = reconcile(observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true)]), now);
  expect(plan.status.phase).toBe("Running");
  expect(plan.status.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True" });
  expect(plan.status.image).toBe(IMAGE);
});

test("an upgrade stops every old process before any new one starts (status written first)", () => {
  const old = dataflow({ processes: 2 });
  const next = dataflow({ processes: 3 });
  next.status = { lastReconciledSpec: JSON.stringify(withDefaults(old.spec)) };
  const pods = [podOf(old, 0, true), podOf(old, 1, true)];
  const stop = reconcile(observed(next, 2, pods, old), now);
  expect(stop.status.rollout).toMatchObject({ kind: "scale", stage: "Stopping" });
  expect(stop.status.phase).toBe("Deploying");
  const applied = stop.actions.find((a) => a.type === "apply" && a.object.kind === "StatefulSet");
  expect(applied?.type === "apply" && (applied.object as { spec: { replicas: number } }).spec.replicas).toBe(0);
  expect(stop.events.map((e) => e.reason)).toContain("Scaling");

  // StatefulSet at 0 with the new template, old pods still terminating: keep waiting.
  next.status = stop.status;
  const waiting = reconcile(observed(next, 0, pods), now);
  expect(waiting.status.rollout?.stage).toBe("Stopping");
  expect(
    waiting.actions.every(
      (a) => a.type !== "apply" || (a.object as { spec?: { replicas?: number } }).spec?.replicas !== 3,
    ),
  ).toBe(true);

  // Pods gone from the list, but the StatefulSet controller has not caught up with the scale to 0 yet.
  const lagging = { ...observed(next, 0, []).statefulSet, status: { observedGeneration: 1, replicas: 1 } };
  lagging.metadata = { ...lagging.metadata, generation: 2 };
  expect(reconcile({ ...observed(next, 0, []), statefulSet: lagging }, now).status.rollout?.stage).toBe("Stopping");

  // Pods gone: start all three together.
  const start = reconcile(observed(next, 0, []), now);
  expect(start.status.rollout?.stage).toBe("Starting");
  const sts = start.actions.find((a) => a.type === "apply" && a.object.kind === "StatefulSet");
  expect(sts?.type === "apply" && (sts.object as { spec: { replicas: number } }).spec.replicas).toBe(3);

  next.status = start.status;
  const done = reconcile(observed(next, 3, []), now);
  expect(done.status.rollout).toBeUndefined();
  expect(done.events.map((e) => e.reason)).toContain("RollComplete");
});

test("a restarted controller resumes a roll from the status record", () => {
  const next = dataflow({ image: `r/x@sha256:${"b".repeat(64)}` });
  next.status = { rollout: { kind: "upgrade", stage: "Stopping", generation: 1 } };
  // The StatefulSet already carries the new template at 0 replicas, one old pod remains.
  const plan = reconcile(observed(next, 0, [podOf(dataflow(), 0, false)]), now);
  expect(plan.status.rollout?.stage).toBe("Stopping");
  // Already applied at 0 replicas before the crash: nothing to send again, nothing started.
  expect(plan.actions.filter((a) => a.type === "apply" && a.object.kind === "StatefulSet")).toEqual([]);
  expect(plan.requeueAfterMs).toBeGreaterThan(0);
});

test("suspend scales to zero without a roll; resume starts again", () => {
  const df = dataflow({ processes: 2, state: "suspended" });
  const plan = reconcile(observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true)]), now);
  expect(plan.status.rollout).toBeUndefined();
  expect(plan.status.phase).toBe("Suspended");
  expect(plan.status.conditions?.find((c) => c.type === "Progressing")?.reason).toBe("Suspending");
  const sts = plan.actions.find((a) => a.type === "apply" && a.object.kind === "StatefulSet");
  expect(sts?.type === "apply" && (sts.object as { spec: { replicas: number } }).spec.replicas).toBe(0);
});

test("crash-looping processes show as Degraded with the cause from pod status", () => {
  const df = dataflow();
  const pod = podOf(df, 0, false, {
    containerStatuses: [
      {
        name: "waxflow",
        image: IMAGE,
        imageID: "",
        ready: false,
        restartCount: 4,
        state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 40s restarting failed container" } },
        lastState: { terminated: { exitCode: 1, message: "StepError: step wc.parse failed on item 'x'\n" } },
      },
    ],
  });
  const plan = reconcile(observed(df, 1, [pod]), now);
  const degraded = plan.status.conditions?.find((c) => c.type === "Degraded");
  expect(degraded).toMatchObject({ status: "True", reason: "CrashLoopBackOff" });
  expect(degraded?.message).toContain("last exit code 1: StepError: step wc.parse failed");
  expect(plan.events.find((e) => e.type === "Warning")?.reason).toBe("CrashLoopBackOff");
});

test("delete: volumes removed only when the spec says so, then the finalizer goes", () => {
  const claims = [{ metadata: { name: "recovery-wc-0" } }];
  const keep = dataflow({ recovery: { enabled: true } });
  keep.metadata = { ...keep.metadata, deletionTimestamp: now };
  const kept = reconcile({ dataflow: keep, statefulSet: undefined, pods: [], claims }, now);
  expect(kept.actions.some((a) => a.type === "delete" && a.target.kind === "PersistentVolumeClaim")).toBe(false);
  expect(kept.actions.at(-1)).toEqual({ type: "removeFinalizer" });
  expect(kept.status.phase).toBe("Deleting");

  const drop = dataflow({ recovery: { enabled: true, retention: { whenDeleted: "Delete" } } });
  drop.metadata = { ...drop.metadata, deletionTimestamp: now };
  const dropped = reconcile({ dataflow: drop, statefulSet: undefined, pods: [], claims }, now);
  expect(dropped.actions).toContainEqual({
    type: "delete",
    target: { apiVersion: "v1", kind: "PersistentVolumeClaim", name: "recovery-wc-0", namespace: "ns1" },
    propagation: "Background",
  });
});

test("scale-down deletes claims of removed ordinals only when whenScaled is Delete", () => {
  const df = dataflow({ processes: 1, recovery: { enabled: true, retention: { whenScaled: "Delete" } } });
  const claims = [{ metadata: { name: "recovery-wc-0" } }, { metadata: { name: "recovery-wc-1" } }];
  const plan = reconcile({ ...observed(df, 1, [podOf(df, 0, true)]), claims }, now);
  const deleted = plan.actions.flatMap((a) => (a.type === "delete" ? [a.target.name] : []));
  expect(deleted).toEqual(["recovery-wc-1"]);
});
