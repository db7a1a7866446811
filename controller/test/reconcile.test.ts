// reconcile(): the pure state machine, fed what the watches would show.
import type { V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import { type Dataflow, withDefaults } from "@waxflow/crds";
import { expect, test } from "vitest";
import { DEFAULT_API_CLIENTS, desiredNetworkPolicy } from "../src/desired/network-policy.ts";
import { desiredApiService, desiredDisruptionBudget, desiredHeadlessService } from "../src/desired/objects.ts";
import {
  DEFAULT_SETTINGS,
  type Observed,
  type Plan,
  reconcile,
  rejected,
  statusFirst,
} from "../src/reconcile/reconcile.ts";
import { STATUS_REFRESH_MS } from "../src/reconcile/status.ts";
import { crashLooping, dataflow, IMAGE, now, podOf, statefulSetOf } from "./fixtures.ts";

function observed(df: Dataflow, replicas: number, pods: V1Pod[], stsOf: Dataflow = df): Observed {
  return { dataflow: df, statefulSet: statefulSetOf(stsOf, replicas), pods, claims: [] };
}

test("an unchanged object is not applied again", () => {
  const df = dataflow({ processes: 2 });
  const services = [desiredHeadlessService(df), desiredApiService(df)];
  const networkPolicy = desiredNetworkPolicy(df, DEFAULT_API_CLIENTS);
  const disruptionBudget = desiredDisruptionBudget(df);
  const running = observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true)]);
  const plan = reconcile({ ...running, services, networkPolicy, disruptionBudget }, now);
  expect(plan.actions).toEqual([]);
  // Without its PodDisruptionBudget (one made before there were any, or deleted): it is applied.
  const unbudgeted = reconcile({ ...running, services, networkPolicy }, now);
  expect(unbudgeted.actions.map((a) => (a.type === "apply" ? a.object.kind : a.type))).toEqual(["PodDisruptionBudget"]);
  const scaled = reconcile({ ...observed(df, 1, []), services, networkPolicy, disruptionBudget }, now);
  expect(scaled.actions.map((a) => (a.type === "apply" ? a.object.kind : a.type))).toEqual([
    "ensureClusterSecret",
    "StatefulSet",
  ]);
  // Other API clients for the operator: the policy changes, and only it is applied again.
  const apiClients = { ...DEFAULT_API_CLIENTS, podLabels: { app: "prometheus" } };
  const moved = reconcile({ ...running, services, networkPolicy, disruptionBudget }, now, {
    ...DEFAULT_SETTINGS,
    apiClients,
  });
  expect(moved.actions.map((a) => (a.type === "apply" ? a.object.kind : a.type))).toEqual(["NetworkPolicy"]);
});

test("a new Dataflow: its StatefulSet alone first, then the finalizer (with recovery), Services and status", () => {
  const df = dataflow({ processes: 2, recovery: { enabled: true } });
  df.metadata = { ...df.metadata, finalizers: [] };
  const first = reconcile({ dataflow: df, statefulSet: undefined, pods: [], claims: [] }, now);
  // The NetworkPolicy comes with it (concurrently), so no pod runs unfenced for long.
  expect(
    first.actions.map((a) => (a.type === "apply" ? `${a.object.kind}/${a.object.metadata?.name}` : a.type)),
  ).toEqual(["ensureClusterSecret", "StatefulSet/wc", "NetworkPolicy/wc"]);
  expect(first.status).toEqual({});
  expect(first.requeueAfterMs).toBe(0);

  const next = reconcile({ dataflow: df, statefulSet: statefulSetOf(df, 2), pods: [], claims: [] }, now);
  expect(
    next.actions.map((a) => (a.type === "apply" ? `${a.object.kind}/${a.object.metadata?.name}` : a.type)),
  ).toEqual(["addFinalizer", "NetworkPolicy/wc", "Service/wc", "Service/wc-api", "PodDisruptionBudget/wc"]);
  // No write-ahead record: the status is written after the actions.
  expect(statusFirst(df.status, next)).toBe(false);
  expect(next.status.phase).toBe("Pending");
  expect(next.status.ready).toBe("0/2");
  expect(next.requeueAfterMs).toBeGreaterThan(0);

  // Without recovery there are no volumes to guard: owner references clean up.
  const plain = dataflow();
  plain.metadata = { ...plain.metadata, finalizers: [] };
  const actions = reconcile(
    { dataflow: plain, statefulSet: statefulSetOf(plain, 1), pods: [], claims: [] },
    now,
  ).actions;
  expect(actions.map((a) => a.type)).not.toContain("addFinalizer");
});

test("Pending until a process runs, then Deploying until every one is ready", () => {
  const df = dataflow({ processes: 2 });
  const created = (i: number): V1Pod => ({ ...podOf(df, i, false), status: { phase: "Pending" } });
  expect(reconcile(observed(df, 2, [created(0), created(1)]), now).status.phase).toBe("Pending");
  expect(reconcile(observed(df, 2, [podOf(df, 0, true), created(1)]), now).status.phase).toBe("Deploying");
});

test("every pod terminating: not ready, and Progressing says it is stopping them", () => {
  const df = dataflow({ processes: 2 });
  const going = [0, 1].map((i) => {
    const pod = podOf(df, i, true);
    return { ...pod, metadata: { ...pod.metadata, deletionTimestamp: now } };
  });
  const plan = reconcile(observed(df, 2, going), now);
  expect(plan.status.ready).toBe("0/2");
  expect(plan.status.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "False" });
  expect(plan.status.conditions?.find((c) => c.type === "Progressing")?.message).toBe(
    "0/2 processes ready: stopping 2 process(es) (wc-0, wc-1); 2 not created yet",
  );
});

test("all processes ready: Running and Ready", () => {
  const df = dataflow({ processes: 2 });
  const plan = reconcile(observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true)]), now);
  expect(plan.status.phase).toBe("Running");
  expect(plan.status.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True" });
  expect(plan.status.image).toBe(IMAGE);
});

test("a settled Dataflow's status carries its generation and is stamped again within the refresh period", () => {
  const df = dataflow({ processes: 2 });
  df.metadata = { ...df.metadata, generation: 7 };
  const running = observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true)]);
  const plan = reconcile(running, now);
  expect(plan.status.observedGeneration).toBe(7);
  expect(plan.status.lastReconcileTime).toBe(now.toISOString());
  expect(plan.status.conditions?.every((c) => c.observedGeneration === 7 && c.lastTransitionTime)).toBe(true);
  // Settled, yet it looks again in time to refresh the stamp.
  expect(plan.requeueAfterMs).toBe(STATUS_REFRESH_MS);
  const soon = new Date(now.getTime() + 1_000);
  const again = reconcile({ ...running, dataflow: { ...df, status: plan.status } }, soon);
  expect(again.status).toEqual(plan.status);
  const due = new Date(now.getTime() + STATUS_REFRESH_MS);
  expect(reconcile({ ...running, dataflow: { ...df, status: plan.status } }, due).status.lastReconcileTime).toBe(
    due.toISOString(),
  );
});

test("deleting and refused statuses name the generation and their time too", () => {
  const df = dataflow({ processes: 1 });
  df.metadata = { ...df.metadata, generation: 5, deletionTimestamp: now };
  const deleting = reconcile({ dataflow: df, statefulSet: statefulSetOf(df, 1), pods: [], claims: [] }, now).status;
  expect(deleting).toMatchObject({ phase: "Deleting", observedGeneration: 5, lastReconcileTime: now.toISOString() });
  const refused = rejected(dataflow(), "apply StatefulSet/wc: bad", now);
  expect(refused).toMatchObject({ phase: "Failed", observedGeneration: 1, lastReconcileTime: now.toISOString() });
  expect(refused.conditions?.find((c) => c.type === "Degraded")).toMatchObject({
    status: "True",
    observedGeneration: 1,
    lastTransitionTime: now.toISOString(),
  });
});

test("an upgrade stops every old process before any new one starts (status written first)", () => {
  const old = dataflow({ processes: 2 });
  const next = dataflow({ processes: 3 });
  next.status = { lastReconciledSpec: JSON.stringify(withDefaults(old.spec)) };
  const pods = [podOf(old, 0, true), podOf(old, 1, true)];
  const stop = reconcile(observed(next, 2, pods, old), now);
  expect(stop.status.rollout).toMatchObject({ kind: "scale", stage: "Stopping", from: 2, to: 3 });
  expect(statusFirst(next.status, stop)).toBe(true);
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
  next.status = { rollout: { kind: "upgrade", stage: "Stopping", generation: 1, from: 1, to: 1 } };
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
      crashLooping(4, "back-off 40s restarting failed container", {
        exitCode: 1,
        message: "StepError: step wc.parse failed on item 'x'\n",
      }),
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

// --- scale-down with recovery: the holder phase

const replicasOf = (plan: Plan): number | undefined => {
  const sts = plan.actions.find((a) => a.type === "apply" && a.object.kind === "StatefulSet");
  return sts?.type === "apply" ? (sts.object as V1StatefulSet).spec?.replicas : undefined;
};
const envOf = (plan: Plan, name: string): string | undefined => {
  const sts = plan.actions.find((a) => a.type === "apply" && a.object.kind === "StatefulSet");
  const env = sts?.type === "apply" ? (sts.object as V1StatefulSet).spec?.template.spec?.containers[0]?.env : [];
  return env?.find((e) => e.name === name)?.value;
};
const claimsUpTo = (n: number) => Array.from({ length: n }, (_, i) => ({ metadata: { name: `recovery-wc-${i}` } }));
const deletedClaims = (plan: Plan) =>
  plan.actions.flatMap((a) =>
    a.type === "delete" && a.target.kind === "PersistentVolumeClaim" ? [a.target.name] : [],
  );

test("a scale-down with recovery stops all, runs the removed ordinals as holders until Ready, then scales down", () => {
  const recovery = { enabled: true, retention: { whenScaled: "Delete" as const } };
  const old = dataflow({ processes: 3, recovery });
  const next = dataflow({ processes: 1, recovery });
  next.status = { lastReconciledSpec: JSON.stringify(withDefaults(old.spec)) };
  const claims = claimsUpTo(3);
  const oldPods = [0, 1, 2].map((i) => podOf(old, i, true));

  const stop = reconcile({ ...observed(next, 3, oldPods, old), claims }, now);
  expect(stop.status.rollout).toMatchObject({ kind: "scale", stage: "Stopping", from: 3, to: 1 });
  expect(replicasOf(stop)).toBe(0);
  expect(stop.events.find((e) => e.reason === "Scaling")?.message).toContain("2 holder(s)");

  // Every old pod gone: the StatefulSet comes back at the old size with the new template.
  next.status = stop.status;
  const handOff = reconcile({ ...observed(next, 0, []), claims }, now);
  expect(handOff.status.rollout).toMatchObject({ stage: "HandingOff", from: 3, to: 1 });
  expect(statusFirst(next.status, handOff)).toBe(true);
  expect(replicasOf(handOff)).toBe(3);
  expect(envOf(handOff, "WAXFLOW_REPLICAS")).toBe("1");
  expect(envOf(handOff, "WAXFLOW_RECOVERY_INIT")).toBe("true");
  expect(handOff.events.map((e) => e.reason)).toContain("HandingOffRecovery");
  expect(handOff.status.conditions?.find((c) => c.type === "Progressing")?.reason).toBe("HandingOffRecovery");
  expect(deletedClaims(handOff)).toEqual([]);

  // A restarted controller with one holder not yet Ready: wait; the StatefulSet is not sent again.
  next.status = handOff.status;
  const pods = (readyHolders: number) => [0, 1, 2].map((i) => podOf(next, i, i < 1 + readyHolders));
  const waiting = reconcile({ ...observed(next, 3, pods(1)), claims }, now);
  expect(waiting.status.rollout?.stage).toBe("HandingOff");
  expect(replicasOf(waiting)).toBeUndefined();
  expect(waiting.status.ready).toBe("1/1");
  // Holders are not processes of the cluster: the process count ignores them, ready or not.
  const withoutProcess = reconcile({ ...observed(next, 3, [podOf(next, 0, false), ...pods(2).slice(1)]), claims }, now);
  expect(withoutProcess.status.conditions?.find((c) => c.type === "Ready")?.message).toBe(
    "scale in progress: 0/1 processes ready: 1 running, waiting for every peer to connect (wc-0)",
  );
  expect(waiting.status.lastReconciledSpec).toBe(next.status.lastReconciledSpec);
  expect(waiting.requeueAfterMs).toBeGreaterThan(0);

  // All three Ready: the data is handed over; scale to the new size.
  const handed = reconcile({ ...observed(next, 3, pods(2)), claims }, now);
  expect(handed.status.rollout?.stage).toBe("Starting");
  expect(handed.events.map((e) => e.reason)).toContain("RecoveryHandedOff");
  expect(replicasOf(handed)).toBe(1);
  expect(JSON.parse(handed.status.lastReconciledSpec ?? "{}").processes).toBe(1);

  next.status = handed.status;
  const done = reconcile({ ...observed(next, 1, pods(2)), claims }, now);
  expect(done.status.rollout).toBeUndefined();
  expect(done.events.map((e) => e.reason)).toContain("RollComplete");

  // Then whenScaled: Delete removes each holder's claim once its pod is gone.
  next.status = done.status;
  const terminating = {
    ...podOf(next, 1, false),
    metadata: { ...podOf(next, 1, false).metadata, deletionTimestamp: now },
  };
  const steady = reconcile({ ...observed(next, 1, [podOf(next, 0, true), terminating]), claims }, now);
  expect(deletedClaims(steady)).toEqual(["recovery-wc-2"]);
  expect(steady.status.phase).toBe("Running");
});

test("a scale-down without recovery, or a scale-up, has no holders", () => {
  const old = dataflow({ processes: 3 });
  const next = dataflow({ processes: 1 });
  next.status = {
    lastReconciledSpec: JSON.stringify(withDefaults(old.spec)),
    rollout: { kind: "scale", stage: "Stopping", generation: 1, from: 3, to: 1 },
  };
  expect(reconcile(observed(next, 0, []), now).status.rollout?.stage).toBe("Starting");
  const up = dataflow({ processes: 5, recovery: { enabled: true } });
  up.status = {
    lastReconciledSpec: JSON.stringify(withDefaults(dataflow({ processes: 3, recovery: { enabled: true } }).spec)),
    rollout: { kind: "scale", stage: "Stopping", generation: 1, from: 3, to: 5 },
  };
  const start = reconcile(observed(up, 0, []), now);
  expect(start.status.rollout?.stage).toBe("Starting");
  expect(replicasOf(start)).toBe(5);
});

test("a scale-down while suspended keeps every volume and hands the data over on resume", () => {
  const recovery = { enabled: true, retention: { whenScaled: "Delete" as const } };
  const ran = JSON.stringify(withDefaults(dataflow({ processes: 3, recovery }).spec));
  const suspended = dataflow({ processes: 1, recovery, state: "suspended" });
  suspended.status = { lastReconciledSpec: ran };
  const claims = claimsUpTo(3);
  const idle = reconcile({ ...observed(suspended, 0, []), claims }, now);
  expect(deletedClaims(idle)).toEqual([]);
  expect(idle.status.lastReconciledSpec).toBe(ran);
  expect(idle.status.rollout).toBeUndefined();

  const resumed = dataflow({ processes: 1, recovery });
  resumed.status = idle.status;
  // The StatefulSet already has the new template (applied while suspended) at 0 replicas.
  const plan = reconcile({ ...observed(resumed, 0, []), claims }, now);
  expect(plan.status.rollout).toMatchObject({ stage: "HandingOff", from: 3, to: 1 });
  expect(replicasOf(plan)).toBe(3);
});

test("suspending during a hand-off stops it; the last started size is kept for the resume", () => {
  const recovery = { enabled: true };
  const ran = JSON.stringify(withDefaults(dataflow({ processes: 3, recovery }).spec));
  const df = dataflow({ processes: 1, recovery, state: "suspended" });
  df.status = {
    lastReconciledSpec: ran,
    rollout: { kind: "scale", stage: "HandingOff", generation: 1, from: 3, to: 1 },
  };
  const plan = reconcile(
    observed(
      df,
      3,
      [0, 1, 2].map((i) => podOf(df, i, false)),
    ),
    now,
  );
  expect(plan.status.rollout?.stage).toBe("Starting");
  expect(replicasOf(plan)).toBe(0);
  expect(plan.status.lastReconciledSpec).toBe(ran);
});

test("a privileged pod template runs only with spec.allowPrivileged and an operator that allows it", () => {
  const podTemplate = {
    spec: {
      hostNetwork: true,
      containers: [
        { name: "side", image: "s", securityContext: { privileged: true } },
        { name: "waxflow", securityContext: { allowPrivilegeEscalation: true, capabilities: { add: ["NET_ADMIN"] } } },
      ],
      volumes: [{ name: "root", hostPath: { path: "/" } }],
    },
  };
  const df = dataflow({ podTemplate, allowPrivileged: true });
  const refused = reconcile({ dataflow: df, statefulSet: undefined, pods: [], claims: [] }, now);
  expect(refused.actions).toEqual([]);
  expect(refused.status.phase).toBe("Failed");
  const degraded = refused.status.conditions?.find((c) => c.type === "Degraded");
  expect(degraded).toMatchObject({ status: "True", reason: "InvalidSpec" });
  expect(degraded?.message).toBe(
    "invalid spec: spec.podTemplate.spec.hostNetwork: host namespaces are refused; " +
      "spec.podTemplate.spec.containers[name=side].securityContext.privileged: privileged containers are refused; " +
      "spec.podTemplate.spec.containers[name=waxflow].securityContext.allowPrivilegeEscalation: privilege escalation is refused; " +
      "spec.podTemplate.spec.containers[name=waxflow].securityContext.capabilities.add: added capabilities are refused; " +
      "spec.podTemplate.spec.volumes[name=root].hostPath: hostPath volumes are refused; " +
      "this operator does not allow privileged Dataflows (chart value allowPrivilegedDataflows, waxctl install --allow-privileged-dataflows)",
  );
  // Without spec.allowPrivileged the CRD refuses it; a CRD without its rules meets the same check here.
  const unmarked = reconcile(
    { dataflow: dataflow({ podTemplate }), statefulSet: undefined, pods: [], claims: [] },
    now,
  );
  expect(unmarked.status.conditions?.find((c) => c.type === "Degraded")?.message).toMatch(
    /hostNetwork: host namespaces are refused; .*; set spec.allowPrivileged if the operator allows privileged Dataflows$/,
  );
  const allowed = reconcile({ dataflow: df, statefulSet: undefined, pods: [], claims: [] }, now, {
    ...DEFAULT_SETTINGS,
    allowPrivilegedDataflows: true,
  });
  const sts = allowed.actions.find((a) => a.type === "apply" && a.object.kind === "StatefulSet");
  const pod = sts?.type === "apply" ? (sts.object as V1StatefulSet).spec?.template.spec : undefined;
  expect(pod?.hostNetwork).toBe(true);
  // What it asked for wins over the waxflow container's hardening, which otherwise stays.
  expect(pod?.containers[0]?.securityContext).toMatchObject({
    allowPrivilegeEscalation: true,
    capabilities: { add: ["NET_ADMIN"] },
    readOnlyRootFilesystem: true,
  });
});

test("replicas changed behind the operator's back (kubectl scale sts) are set back, with an event naming the change", () => {
  const df = dataflow({ processes: 3 });
  const services = [desiredHeadlessService(df), desiredApiService(df)];
  const rest = {
    services,
    networkPolicy: desiredNetworkPolicy(df, DEFAULT_API_CLIENTS),
    disruptionBudget: desiredDisruptionBudget(df),
  };
  for (const scaledTo of [5, 1]) {
    // kubectl scale changes spec.replicas and nothing else: the applied hash still matches.
    const sts = statefulSetOf(df, 3);
    const drifted: V1StatefulSet = {
      ...sts,
      spec: { ...(sts.spec as NonNullable<V1StatefulSet["spec"]>), replicas: scaledTo },
    };
    const pods = Array.from({ length: scaledTo }, (_, i) => podOf(df, i, true));
    const plan = reconcile({ dataflow: df, statefulSet: drifted, pods, claims: [], ...rest }, now);
    const applied = plan.actions.flatMap((a) =>
      a.type === "apply" && a.object.kind === "StatefulSet" ? [a.object] : [],
    );
    expect(applied).toHaveLength(1);
    expect((applied[0] as V1StatefulSet).spec?.replicas).toBe(3);
    expect(plan.events).toContainEqual({
      type: "Warning",
      reason: "DriftReverted",
      message: `StatefulSet wc was scaled to ${scaledTo} replica(s) outside the operator; set back to 3 (to change the number of processes, use waxctl df scale or spec.processes)`,
    });
  }
  // Undrifted: nothing to do, nothing said.
  const steady = reconcile(
    {
      dataflow: df,
      statefulSet: statefulSetOf(df, 3),
      pods: [0, 1, 2].map((i) => podOf(df, i, true)),
      claims: [],
      ...rest,
    },
    now,
  );
  expect(steady.actions).toEqual([]);
  expect(steady.events.map((e) => e.reason)).not.toContain("DriftReverted");
});

test("ClusterNotFormed counts from when a process last went unready, not from its pod's start", () => {
  const df = dataflow({ processes: 2 });
  const longAgo = new Date(now.getTime() - 3_600_000);
  const unreadySince = (ms: number) =>
    podOf(df, 1, false, {
      startTime: longAgo,
      conditions: [{ type: "Ready", status: "False", lastTransitionTime: new Date(now.getTime() - ms) }],
    });
  const degraded = (pod: V1Pod) =>
    reconcile({ ...observed(df, 2, [podOf(df, 0, true), pod]) }, now).status.conditions?.find(
      (c) => c.type === "Degraded",
    );
  // Re-forming its cluster for 5 s in a pod that has run for an hour: not stuck.
  expect(degraded(unreadySince(5_000))?.reason).not.toBe("ClusterNotFormed");
  expect(degraded(unreadySince(130_000))).toMatchObject({ status: "True", reason: "ClusterNotFormed" });
});

test("ClusterNotFormed counts from the container's (re)start, not from the pod's", () => {
  const df = dataflow({ processes: 2 });
  const longAgo = new Date(now.getTime() - 3_600_000);
  // Unready for an hour (it never formed, or the kubelet restarted it); its container last started `ms` ago.
  const restartedAgo = (ms: number) =>
    podOf(df, 1, false, {
      startTime: longAgo,
      conditions: [{ type: "Ready", status: "False", lastTransitionTime: longAgo }],
      containerStatuses: [
        {
          name: "waxflow",
          image: IMAGE,
          imageID: "",
          ready: false,
          restartCount: 1,
          state: { running: { startedAt: new Date(now.getTime() - ms) } },
        },
      ],
    });
  const degraded = (pod: V1Pod) =>
    reconcile({ ...observed(df, 2, [podOf(df, 0, true), pod]) }, now).status.conditions?.find(
      (c) => c.type === "Degraded",
    );
  expect(degraded(restartedAgo(5_000))?.reason).not.toBe("ClusterNotFormed");
  expect(degraded(restartedAgo(130_000))).toMatchObject({ status: "True", reason: "ClusterNotFormed" });
});

test("status counts every pod: one beyond spec.processes outside a hand-off is no holder, and not Running", () => {
  const df = dataflow({ processes: 2 });
  const plan = reconcile(observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true), podOf(df, 2, true)]), now);
  expect(plan.status).toMatchObject({ phase: "Deploying", processes: 3, readyProcesses: 3, ready: "3/2" });
  expect(plan.status.conditions?.find((c) => c.type === "Ready")).toMatchObject({
    status: "False",
    message: "2/2 processes ready: 1 pod(s) more than the 2 the spec asks for",
  });
});

test("a roll is checked by a dry run before its record; a record whose target already runs is dropped", () => {
  const old = dataflow({ processes: 2 });
  const next = dataflow({ processes: 2, restartNonce: 1 });
  next.status = { lastReconciledSpec: JSON.stringify(withDefaults(old.spec)) };
  const pods = [podOf(old, 0, true), podOf(old, 1, true)];
  const stop = reconcile(observed(next, 2, pods, old), now);
  expect(stop.status.rollout?.stage).toBe("Stopping");
  // First the dry run of the target at full size: the executor carries it out before the record.
  expect(stop.actions[0]).toEqual({ type: "check", object: statefulSetOf(next, 2) });

  // The spec went back to what runs before a process was stopped (or the edit was refused).
  old.status = { ...stop.status, lastReconciledSpec: JSON.stringify(withDefaults(old.spec)) };
  const back = reconcile(observed(old, 2, pods), now);
  expect(back.status.rollout).toBeUndefined();
  expect(back.actions.filter((a) => a.type !== "apply" || a.object.kind === "StatefulSet")).toEqual([]);
  expect(back.events.map((e) => e.reason)).toContain("RollCancelled");
  expect(back.status.phase).toBe("Running");
});

test("a refused edit records no roll and says the running processes are untouched", () => {
  const df = dataflow({ processes: 2 });
  df.status = {
    processes: 2,
    phase: "Deploying",
    rollout: { kind: "upgrade", stage: "Stopping", generation: 2, from: 2, to: 2 },
  };
  const status = rejected(df, "check StatefulSet/wc: Invalid value", now);
  expect(status.rollout).toBeUndefined();
  expect(status.conditions?.find((c) => c.type === "Ready")?.message).toBe(
    "2 process(es) keep running the previous spec, untouched: check StatefulSet/wc: Invalid value",
  );
  expect(status.conditions?.find((c) => c.type === "Degraded")?.message).toBe("check StatefulSet/wc: Invalid value");
});

test("an image change first runs one pre-flight pod; pull errors keep the old processes running", () => {
  const old = dataflow({ processes: 2 });
  const image = `r/x@sha256:${"b".repeat(64)}`;
  const next = dataflow({ processes: 2, image });
  next.status = { lastReconciledSpec: JSON.stringify(withDefaults(old.spec)) };
  const pods = [podOf(old, 0, true), podOf(old, 1, true)];
  const planWith = (preflight?: V1Pod) =>
    reconcile({ ...observed(next, 2, preflight ? [...pods, preflight] : pods, old) }, now);
  const kinds = (plan: Plan) =>
    plan.actions.map((a) => (a.type === "apply" || a.type === "check" ? `${a.type} ${a.object.kind}` : a.type));

  const first = planWith();
  expect(first.status.rollout).toBeUndefined();
  expect(kinds(first)).toEqual([
    "check StatefulSet",
    "apply Pod",
    "apply NetworkPolicy",
    "apply Service",
    "apply Service",
    "apply PodDisruptionBudget",
  ]);
  const pod = first.actions.find((a) => a.type === "apply" && a.object.kind === "Pod");
  const preflight = (pod?.type === "apply" ? pod.object : {}) as V1Pod;
  expect(preflight.metadata?.name).toBe("wc-preflight");
  expect(preflight.metadata?.labels).toMatchObject({
    "waxflow.io/preflight": "true",
    "app.kubernetes.io/name": "waxflow-preflight",
  });
  expect(preflight.spec?.restartPolicy).toBe("Never");
  expect(preflight.spec?.containers.map((c) => [c.image, c.args, c.readinessProbe])).toEqual([
    [image, ["--help"], undefined],
  ]);
  expect(first.status.conditions?.find((c) => c.type === "Progressing")).toMatchObject({
    status: "True",
    reason: "CheckingImage",
  });
  expect(first.status.processes).toBe(2);

  const pulling = {
    ...preflight,
    status: {
      phase: "Pending",
      containerStatuses: [
        {
          name: "waxflow",
          image,
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { waiting: { reason: "ImagePullBackOff", message: 'Back-off pulling image "r/x"' } },
        },
      ],
    },
  };
  const held = planWith(pulling);
  expect(held.status.rollout).toBeUndefined();
  expect(kinds(held)).not.toContain("apply Pod");
  expect(kinds(held)).not.toContain("apply StatefulSet");
  expect(held.status.conditions?.find((c) => c.type === "Degraded")).toMatchObject({
    status: "True",
    reason: "ImagePullBackOff",
    message: `upgrade to image ${image} held back: pre-flight pod wc-preflight cannot pull image ${image}: ImagePullBackOff: Back-off pulling image "r/x"; the 2 running process(es) keep image ${IMAGE}`,
  });

  const started = planWith({ ...preflight, status: { phase: "Running" } });
  expect(started.status.rollout).toMatchObject({ stage: "Stopping", kind: "upgrade" });
  expect(started.actions).toContainEqual({
    type: "delete",
    target: { apiVersion: "v1", kind: "Pod", name: "wc-preflight", namespace: "ns1" },
    propagation: "Background",
  });

  // The spec went back: the pre-flight pod goes, nothing else happens.
  old.status = next.status;
  const back = reconcile(observed(old, 2, [...pods, pulling], old), now);
  expect(back.status.rollout).toBeUndefined();
  expect(back.actions.filter((a) => a.type !== "apply" || a.object.kind === "StatefulSet").map((a) => a.type)).toEqual([
    "delete",
  ]);
});

test("pods waiting for a Secret or ConfigMap that does not exist make the Dataflow Degraded, naming it", () => {
  const df = dataflow({ processes: 2 });
  const waiting = (i: number): V1Pod => ({ ...podOf(df, i, false), status: { phase: "Pending" } });
  const missing = [
    { kind: "Secret" as const, name: "db", where: "env DB_PASSWORD of container waxflow" },
    { kind: "ConfigMap" as const, name: "settings", where: "volume settings" },
  ];
  const plan = reconcile({ ...observed(df, 2, [waiting(0), waiting(1)]), missing }, now);
  expect(plan.status.conditions?.find((c) => c.type === "Degraded")).toMatchObject({
    status: "True",
    reason: "MissingSecret",
    message:
      '2 pod(s) (wc-0, wc-1) cannot start: Secret "db" (env DB_PASSWORD of container waxflow), ConfigMap "settings" (volume settings) do not exist in namespace ns1; create them, or change the Dataflow\'s env, envFrom or podTemplate',
  });
  expect(plan.events.map((e) => e.reason)).toContain("MissingSecret");
  // Every pod started: nothing waits for them (any more).
  const started = reconcile({ ...observed(df, 2, [podOf(df, 0, true), podOf(df, 1, true)]), missing }, now);
  expect(started.status.conditions?.find((c) => c.type === "Degraded")?.status).toBe("False");
});

test("a new Dataflow over the volumes an earlier one of its name left hands their data over through holders", () => {
  const df = dataflow({ processes: 1, recovery: { enabled: true } });
  const first = reconcile({ dataflow: df, statefulSet: undefined, pods: [], claims: claimsUpTo(3) }, now);
  expect(first.status.rollout).toMatchObject({ stage: "HandingOff", from: 3, to: 1 });
  expect(statusFirst(df.status, first)).toBe(true);
  expect(replicasOf(first)).toBe(3);
  expect(envOf(first, "WAXFLOW_REPLICAS")).toBe("1");
  expect(first.events.find((e) => e.reason === "Upgrading")?.message).toContain(
    "2 holder(s) first handing over the recovery data that an earlier Dataflow wc left on volumes recovery-wc-0..2",
  );
  // Its own volumes (no more than its size) are no earlier Dataflow's.
  const own = reconcile({ dataflow: df, statefulSet: undefined, pods: [], claims: claimsUpTo(1) }, now);
  expect(own.status.rollout).toBeUndefined();
});
