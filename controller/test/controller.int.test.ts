// The controller against a real kube-apiserver and kube-controller-manager (StatefulSet,
// garbage collector, PVC protection). There are no nodes: pods stay unscheduled, so the
// tests play the kubelet's part by marking pods Ready.
import { execFileSync } from "node:child_process";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ContainerState,
  type V1EnvVar,
  type V1Pod,
  type V1PodSpec,
} from "@kubernetes/client-node";
import { type Dataflow, type DataflowSpec, GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { Controller } from "../src/controller.ts";
import { templateHashOf } from "../src/desired/objects.ts";
import { installCrd } from "../src/kube/crd.ts";
import { LeaderElector } from "../src/kube/leader.ts";
import { setQuiet } from "../src/log.ts";
import { serveProbes } from "../src/metrics.ts";
import { IMAGE } from "./fixtures.ts";
import {
  createDataflow,
  markProcessesReady,
  processPods,
  startCluster,
  type TestCluster,
  waitFor,
} from "./harness/apiserver.ts";

// Real API server round trips on a shared 2-core machine: generous, the waits inside are bounded.
vi.setConfig({ testTimeout: 60_000 });

const IMAGE2 = `registry.local/flow@sha256:${"b".repeat(64)}`;
const NS = "flows";
let cluster: TestCluster;
let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let controller: Controller;

function startController(): Controller {
  const c = new Controller(kc, { namespaces: [NS], watch: { resyncMs: 10_000, stallMs: 20_000, maxBackoffMs: 2_000 } });
  c.start();
  return c;
}

beforeAll(async () => {
  setQuiet(true);
  cluster = await startCluster({
    controllers: [
      "statefulset-controller",
      "garbage-collector-controller",
      "persistentvolumeclaim-protection-controller",
    ],
  });
  kc = cluster.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  controller = startController();
  await installCrd(controller.kube);
}, 3_600_000);

afterAll(async () => {
  await controller?.stop();
  await cluster?.stop();
}, 60_000);

const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: NS };

async function create(name: string, spec: Partial<DataflowSpec>): Promise<void> {
  await createDataflow(kc, NS, name, { image: IMAGE, module: "/app/flow.js", ...spec });
}

async function get(name: string): Promise<Dataflow | undefined> {
  try {
    return (await custom.getNamespacedCustomObject({ ...ref, name })) as Dataflow;
  } catch {
    return undefined;
  }
}

async function patchSpec(name: string, spec: Partial<DataflowSpec>): Promise<void> {
  await custom.patchNamespacedCustomObject(
    { ...ref, name, body: { spec } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

/** The Dataflow's processes: the pods its StatefulSet selects (not the pre-flight pod). */
const pods = (name: string): Promise<V1Pod[]> => processPods(core, NS, name);

/** The kubelet's part for the pre-flight pod of an image change: its container `state`, once the pod exists. */
async function preflight(name: string, state: V1ContainerState, phase = "Pending"): Promise<V1Pod> {
  const pod = await waitFor(`pod ${name}-preflight`, () =>
    core.readNamespacedPod({ namespace: NS, name: `${name}-preflight` }).catch(() => undefined),
  );
  await core.patchNamespacedPodStatus(
    {
      namespace: NS,
      name: `${name}-preflight`,
      body: {
        status: {
          phase,
          containerStatuses: [
            {
              name: "waxflow",
              image: pod.spec?.containers[0]?.image ?? "",
              imageID: "",
              ready: false,
              restartCount: 0,
              state,
            },
          ],
        },
      },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  return pod;
}

/** The kubelet's part: report every live pod of the Dataflow Running and Ready. */
const markReady = (name: string): Promise<void> => markProcessesReady(core, NS, name);

async function phaseOf(name: string) {
  return (await get(name))?.status?.phase;
}

test("reconcile creates the owned objects with the contract's names, labels and owner", async () => {
  await create("wc", { processes: 2 });
  const sts = await waitFor("StatefulSet wc", () => controller.kube.readStatefulSet(NS, "wc"));
  const labels = {
    "app.kubernetes.io/name": "waxflow",
    "app.kubernetes.io/instance": "wc",
    "app.kubernetes.io/managed-by": "waxflow-controller",
    "waxflow.io/dataflow": "wc",
  };
  expect(sts.metadata?.labels).toEqual(labels);
  expect(sts.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "wc", controller: true });
  expect(sts.metadata?.managedFields?.some((f) => f.manager === "waxflow-controller" && f.operation === "Apply")).toBe(
    true,
  );
  expect(sts.spec?.replicas).toBe(2);
  const headless = await waitFor("Service wc", () => core.readNamespacedService({ namespace: NS, name: "wc" }));
  expect(headless.spec?.clusterIP).toBe("None");
  expect(headless.spec?.publishNotReadyAddresses).toBe(true);
  expect(headless.metadata?.labels).toEqual(labels);
  const api = await waitFor("Service wc-api", () => core.readNamespacedService({ namespace: NS, name: "wc-api" }));
  expect(api.spec?.ports?.[0]?.port).toBe(3030);
  // The NetworkPolicy, as the API server stored it (so `from` made it through client-node's models).
  const policy = await waitFor("NetworkPolicy wc", () => controller.kube.readNetworkPolicy(NS, "wc"));
  expect(policy.metadata?.labels).toEqual(labels);
  expect(policy.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "wc", controller: true });
  expect(policy.spec?.ingress?.map((r) => [r.ports?.[0]?.port, r._from])).toEqual([
    [2101, [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": "wc" } } }]],
    [3030, [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "waxflow-system" } } }]],
  ]);
  expect(sts.spec?.template.spec?.automountServiceAccountToken).toBe(false);
  // The PodDisruptionBudget: one process at a time, over exactly this Dataflow's pods.
  const budget = await waitFor("PodDisruptionBudget wc", () => controller.kube.readDisruptionBudget(NS, "wc"));
  expect(budget.metadata?.labels).toEqual(labels);
  expect(budget.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "wc", controller: true });
  expect(budget.spec).toEqual({
    maxUnavailable: 1,
    selector: { matchLabels: { "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": "wc" } },
    unhealthyPodEvictionPolicy: "IfHealthyBudget",
  });
  expect(budget.spec?.selector?.matchLabels).toEqual(sts.spec?.selector.matchLabels);

  // The StatefulSet controller creates the pods; once they are Ready the Dataflow is Running.
  await waitFor("2 pods", async () => (await pods("wc")).length === 2);
  // Created but not running (no kubelet yet): Pending.
  expect((await get("wc"))?.status).toMatchObject({ phase: "Pending", ready: "0/2" });
  await markReady("wc");
  await waitFor("Running", async () => (await phaseOf("wc")) === "Running");
  const df = await get("wc");
  expect(df?.status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({
    status: "True",
    reason: "ProcessesReady",
  });
  expect(df?.status?.image).toBe(IMAGE);
  // No recovery volumes, nothing for a finalizer to guard: owner references clean up.
  expect(df?.metadata?.finalizers ?? []).not.toContain("waxflow.io/volumes");
  const events = await core.listNamespacedEvent({ namespace: NS, fieldSelector: "involvedObject.name=wc" });
  expect(events.items.map((e) => e.reason)).toContain("Running");
});

test("kubectl scale sts, up or down, is set back within seconds, with an event naming the change", async () => {
  await create("drift", { processes: 2 });
  await waitFor("2 pods", async () => (await pods("drift")).length === 2);
  await markReady("drift");
  await waitFor("Running", async () => (await phaseOf("drift")) === "Running");
  const apps = kc.makeApiClient(AppsV1Api);
  for (const scaledTo of [5, 1]) {
    const at = Date.now();
    // What `kubectl scale sts drift --replicas=N` sends: a patch of the scale subresource.
    const scale = await apps.patchNamespacedStatefulSetScale(
      { namespace: NS, name: "drift", body: { spec: { replicas: scaledTo } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    expect(scale.spec?.replicas).toBe(scaledTo);
    await waitFor(`replicas set back to 2 after a scale to ${scaledTo}`, async () => {
      const sts = await apps.readNamespacedStatefulSet({ namespace: NS, name: "drift" });
      return sts.spec?.replicas === 2;
    });
    expect(Date.now() - at).toBeLessThan(10_000);
    const messages = await waitFor("the DriftReverted event", async () => {
      const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: "involvedObject.name=drift" });
      const found = list.items.filter((e) => e.reason === "DriftReverted").map((e) => e.message ?? "");
      return found.some((m) => m.includes(`scaled to ${scaledTo} replica(s)`)) ? found : undefined;
    });
    expect(messages).toContain(
      `StatefulSet drift was scaled to ${scaledTo} replica(s) outside the operator; set back to 2 (to change the number of processes, use waxctl df scale or spec.processes)`,
    );
  }
  await waitFor(
    "2 pods again",
    async () => (await pods("drift")).filter((p) => !p.metadata?.deletionTimestamp).length === 2,
  );
  await custom.deleteNamespacedCustomObject({ ...ref, name: "drift" });
});

test("a hand-edited pod template or label is set back within seconds, naming the change; the processes keep running", async () => {
  // cpu 0.5 is stored as 500m: canonicalised by the API server, not a change to revert.
  await create("tmpl", { processes: 1, resources: { requests: { cpu: "0.5", memory: "100Mi" } } });
  await waitFor("1 pod", async () => (await pods("tmpl")).length === 1);
  await markReady("tmpl");
  await waitFor("Running", async () => (await phaseOf("tmpl")) === "Running");
  const uid = (await pods("tmpl"))[0]?.metadata?.uid;
  const apps = kc.makeApiClient(AppsV1Api);
  const drifts = async () =>
    (await core.listNamespacedEvent({ namespace: NS, fieldSelector: "involvedObject.name=tmpl" })).items
      .filter((e) => e.reason === "DriftReverted")
      .map((e) => e.message ?? "");
  await sleep(1500);
  expect(await drifts()).toEqual([]);
  const strategic = setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch);
  const edits = [
    // `kubectl set env sts/tmpl FOO=1`
    {
      body: { spec: { template: { spec: { containers: [{ name: "waxflow", env: [{ name: "FOO", value: "1" }] }] } } } },
      named: "spec.template.spec.containers[waxflow].env[FOO] added",
    },
    // `kubectl set image sts/tmpl waxflow=...`
    {
      body: { spec: { template: { spec: { containers: [{ name: "waxflow", image: IMAGE2 }] } } } },
      named: "spec.template.spec.containers[waxflow].image",
    },
    // `kubectl label sts/tmpl app.kubernetes.io/instance=other --overwrite`
    { body: { metadata: { labels: { "app.kubernetes.io/instance": "other" } } }, named: "metadata.labels" },
  ];
  for (const edit of edits) {
    const at = Date.now();
    await apps.patchNamespacedStatefulSet({ namespace: NS, name: "tmpl", body: edit.body }, strategic);
    await waitFor(`set back after ${edit.named}`, async () => {
      const sts = await apps.readNamespacedStatefulSet({ namespace: NS, name: "tmpl" });
      const container = sts.spec?.template.spec?.containers[0];
      return (
        container?.image === IMAGE &&
        !container.env?.some((e) => e.name === "FOO") &&
        sts.metadata?.labels?.["app.kubernetes.io/instance"] === "tmpl"
      );
    });
    expect(Date.now() - at).toBeLessThan(10_000);
    expect(
      await waitFor(`the event naming ${edit.named}`, async () => (await drifts()).find((m) => m.includes(edit.named))),
    ).toMatch(/^StatefulSet tmpl was changed outside the operator \(.*\); set back/);
  }
  // Set back, nothing more: the same process runs, and no further revert follows.
  const count = (await drifts()).length;
  await sleep(2000);
  expect((await drifts()).length).toBe(count);
  expect((await pods("tmpl")).map((p) => p.metadata?.uid)).toEqual([uid]);
  expect(await phaseOf("tmpl")).toBe("Running");
  await custom.deleteNamespacedCustomObject({ ...ref, name: "tmpl" });
});

test("an image change replaces every process together: old and new pods never coexist", async () => {
  const before = templateHashOf((await pods("wc"))[0]);
  const mixed: string[] = [];
  let watching = true;
  const monitor = (async () => {
    while (watching) {
      const hashes = new Set((await pods("wc")).map((p) => templateHashOf(p)));
      if (hashes.size > 1) mixed.push([...hashes].join(","));
      await sleep(50);
    }
  })();
  await patchSpec("wc", { image: IMAGE2, processes: 3 });
  await preflight("wc", { running: { startedAt: new Date() } }, "Running");
  await waitFor(
    "a roll in the status",
    async () => (await get("wc"))?.status?.rollout !== undefined || (await pods("wc")).length === 3,
  );
  const three = await waitFor("3 new pods", async () => {
    const ps = await pods("wc");
    return ps.length === 3 && ps.every((p) => templateHashOf(p) !== before) ? ps : undefined;
  });
  await markReady("wc");
  await waitFor("Running again", async () => (await phaseOf("wc")) === "Running");
  watching = false;
  await monitor;
  expect(mixed).toEqual([]);
  expect(three.every((p) => p.spec?.containers[0]?.image === IMAGE2)).toBe(true);
  const df = await get("wc");
  expect(df?.status?.image).toBe(IMAGE2);
  expect(df?.status?.rollout).toBeUndefined();
  const reasons = (
    await core.listNamespacedEvent({ namespace: NS, fieldSelector: "involvedObject.name=wc" })
  ).items.map((e) => e.reason);
  expect(reasons).toEqual(expect.arrayContaining(["Upgrading", "ProcessesStopped", "RollComplete"]));
});

test("an image that cannot be pulled stops nothing: the pre-flight pod says why; once it runs, the roll goes on", async () => {
  await create("pull", { processes: 2 });
  await waitFor("2 pods", async () => (await pods("pull")).length === 2);
  await markReady("pull");
  await waitFor("Running", async () => (await phaseOf("pull")) === "Running");
  const uids = (await pods("pull")).map((p) => p.metadata?.uid).sort();
  await patchSpec("pull", { image: IMAGE2 });
  const error = `failed to pull and unpack image "${IMAGE2}": not found`;
  const checked = await preflight("pull", { waiting: { reason: "ErrImagePull", message: error } });
  expect(checked.spec?.containers.map((c) => [c.image, c.args])).toEqual([[IMAGE2, ["--help"]]]);
  expect(checked.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "pull" });
  const degraded = await waitFor("Degraded ErrImagePull", async () => {
    const c = (await get("pull"))?.status?.conditions?.find((c) => c.type === "Degraded");
    return c?.reason === "ErrImagePull" ? c : undefined;
  });
  expect(degraded.message).toBe(
    `upgrade to image ${IMAGE2} held back: pre-flight pod pull-preflight cannot pull image ${IMAGE2}: ErrImagePull: ${error}; the 2 running process(es) keep image ${IMAGE}`,
  );
  await sleep(1500);
  const still = await pods("pull");
  expect(still.map((p) => p.metadata?.uid).sort()).toEqual(uids);
  expect(still.every((p) => p.metadata?.deletionTimestamp === undefined)).toBe(true);
  const sts = await controller.kube.readStatefulSet(NS, "pull");
  expect([sts?.spec?.replicas, sts?.spec?.template.spec?.containers[0]?.image]).toEqual([2, IMAGE]);
  expect((await get("pull"))?.status?.rollout).toBeUndefined();

  // The image is there now: the pre-flight pod runs, goes, and the processes are replaced together.
  await preflight("pull", { running: { startedAt: new Date() } }, "Running");
  const rolled = await waitFor("2 pods of the new image", async () => {
    const ps = await pods("pull");
    return ps.length === 2 && ps.every((p) => p.spec?.containers[0]?.image === IMAGE2) ? ps : undefined;
  });
  expect(rolled.map((p) => p.metadata?.uid)).not.toContain(uids[0]);
  await waitFor("the pre-flight pod gone", () =>
    core.readNamespacedPod({ namespace: NS, name: "pull-preflight" }).then(
      () => false,
      () => true,
    ),
  );
  await markReady("pull");
  await waitFor("Running", async () => (await phaseOf("pull")) === "Running");
  await custom.deleteNamespacedCustomObject({ ...ref, name: "pull" });
});

test("each Dataflow gets its own cluster secret, owned by it, mounted into every pod, and never replaced", async () => {
  const secretOf = (name: string) => core.readNamespacedSecret({ namespace: NS, name: `${name}-cluster-secret` });
  await create("mesh", { processes: 2 });
  const secret = await waitFor("Secret mesh-cluster-secret", () => secretOf("mesh"));
  expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "mesh", controller: true });
  expect(secret.immutable).toBe(true);
  const key = Buffer.from(secret.data?.secret ?? "", "base64");
  expect(key).toHaveLength(32);

  const expectMounted = (ps: V1Pod[]): void => {
    for (const pod of ps) {
      const container = pod.spec?.containers[0];
      expect(container?.env).toEqual(
        expect.arrayContaining([
          { name: "WAXFLOW_CLUSTER_SECRET_FILE", value: "/var/run/waxflow/cluster/secret" },
          { name: "WAXFLOW_LISTEN", valueFrom: { fieldRef: { apiVersion: "v1", fieldPath: "status.podIP" } } },
        ]),
      );
      expect(container?.volumeMounts).toContainEqual({
        name: "cluster-secret",
        mountPath: "/var/run/waxflow/cluster",
        readOnly: true,
      });
      expect(pod.spec?.volumes?.find((v) => v.name === "cluster-secret")?.secret).toMatchObject({
        secretName: "mesh-cluster-secret",
        defaultMode: 0o440,
      });
    }
  };
  expectMounted(await waitFor("2 pods", async () => ((await pods("mesh")).length === 2 ? pods("mesh") : undefined)));

  // A roll replaces every pod; the new ones get the same secret, not a new one.
  const before = templateHashOf((await pods("mesh"))[0]);
  await patchSpec("mesh", { image: IMAGE2 });
  const rolled = await waitFor("2 new pods", async () => {
    const ps = await pods("mesh");
    return ps.length === 2 && ps.every((p) => templateHashOf(p) !== before) ? ps : undefined;
  });
  expectMounted(rolled);
  expect(Buffer.from((await secretOf("mesh")).data?.secret ?? "", "base64")).toEqual(key);

  // Another Dataflow's processes cannot join this mesh: their secret is their own.
  await create("mesh-other", { processes: 1 });
  const other = await waitFor("Secret mesh-other-cluster-secret", () => secretOf("mesh-other"));
  expect(Buffer.from(other.data?.secret ?? "", "base64")).not.toEqual(key);

  // It goes with its Dataflow.
  await custom.deleteNamespacedCustomObject({ ...ref, name: "mesh" });
  await waitFor(
    "Secret mesh-cluster-secret gone",
    async () =>
      await secretOf("mesh").then(
        () => false,
        () => true,
      ),
  );
});

test("suspend scales to zero and keeps volumes; resume starts the same volumes again", async () => {
  await create("sus", { processes: 2, recovery: { enabled: true } });
  await waitFor("2 pods", async () => (await pods("sus")).length === 2);
  const claims = await waitFor("2 claims", async () => {
    const list = (
      await core.listNamespacedPersistentVolumeClaim({ namespace: NS, labelSelector: "waxflow.io/dataflow=sus" })
    ).items;
    return list.length === 2 ? list : undefined;
  });
  expect(claims.map((c) => c.metadata?.name).sort()).toEqual(["recovery-sus-0", "recovery-sus-1"]);
  expect((await get("sus"))?.metadata?.finalizers).toContain("waxflow.io/volumes");

  await patchSpec("sus", { state: "suspended" });
  await waitFor("no pods", async () => (await pods("sus")).length === 0);
  await waitFor("Suspended", async () => (await phaseOf("sus")) === "Suspended");
  expect((await controller.kube.readStatefulSet(NS, "sus"))?.spec?.replicas).toBe(0);
  const kept = (
    await core.listNamespacedPersistentVolumeClaim({ namespace: NS, labelSelector: "waxflow.io/dataflow=sus" })
  ).items;
  expect(kept.map((c) => c.metadata?.uid).sort()).toEqual(claims.map((c) => c.metadata?.uid).sort());

  await patchSpec("sus", { state: "running" });
  await waitFor("2 pods again", async () => (await pods("sus")).length === 2);
  const resumed = await pods("sus");
  expect(
    resumed
      .flatMap((p) => p.spec?.volumes ?? [])
      .filter((v) => v.name === "recovery")
      .map((v) => v.persistentVolumeClaim?.claimName)
      .sort(),
  ).toEqual(["recovery-sus-0", "recovery-sus-1"]);
});

async function claimNames(name: string): Promise<string[]> {
  const list = await core.listNamespacedPersistentVolumeClaim({
    namespace: NS,
    labelSelector: `waxflow.io/dataflow=${name}`,
  });
  return list.items.map((c) => c.metadata?.name ?? "").sort();
}

test("delete keeps the recovery volumes by default", async () => {
  await create("keep", { recovery: { enabled: true } });
  await waitFor("claim", async () => (await claimNames("keep")).length === 1);
  await custom.deleteNamespacedCustomObject({ ...ref, name: "keep" });
  await waitFor("Dataflow gone", async () => (await get("keep")) === undefined);
  await waitFor("StatefulSet gone", async () => (await controller.kube.readStatefulSet(NS, "keep")) === undefined);
  await sleep(1000);
  expect(await claimNames("keep")).toEqual(["recovery-keep-0"]);
});

test("delete removes the recovery volumes when whenDeleted is Delete", async () => {
  await create("drop", { recovery: { enabled: true, retention: { whenDeleted: "Delete" } } });
  await waitFor("claim", async () => (await claimNames("drop")).length === 1);
  await custom.deleteNamespacedCustomObject({ ...ref, name: "drop" });
  await waitFor("Dataflow gone", async () => (await get("drop")) === undefined);
  await waitFor("claims gone", async () => (await claimNames("drop")).length === 0);
});

test("a controller stopped mid-roll is resumed by a fresh one from the status record", async () => {
  await create("mid", { processes: 2 });
  await waitFor("2 pods", async () => (await pods("mid")).length === 2);
  await markReady("mid");
  await waitFor("Running", async () => (await phaseOf("mid")) === "Running");
  await controller.stop();

  await patchSpec("mid", { restartNonce: 7 });
  // One reconcile step by a controller that then dies: it records the roll and starts stopping pods.
  const crashed = new Controller(kc, { namespaces: [NS] });
  await crashed.reconcileKey(`${NS}/mid`);
  expect((await get("mid"))?.status?.rollout).toMatchObject({ stage: "Stopping", kind: "upgrade" });

  controller = startController();
  const fresh = await waitFor("2 restarted pods", async () => {
    const ps = await pods("mid");
    return ps.length === 2 && ps.every((p) => p.metadata?.annotations?.["waxflow.io/restart-nonce"] === "7")
      ? ps
      : undefined;
  });
  expect(fresh).toHaveLength(2);
  await markReady("mid");
  await waitFor("Running", async () => (await phaseOf("mid")) === "Running");
  expect((await get("mid"))?.status?.rollout).toBeUndefined();
});

test("a scale-down with recovery hands the removed pods' data over through holders, across a controller restart", async () => {
  await create("shrink", { processes: 3, recovery: { enabled: true, retention: { whenScaled: "Delete" } } });
  await waitFor("3 pods", async () => (await pods("shrink")).length === 3);
  await markReady("shrink");
  await waitFor("Running", async () => (await phaseOf("shrink")) === "Running");
  const before = templateHashOf((await pods("shrink"))[0]);

  await patchSpec("shrink", { processes: 1 });
  const holders = await waitFor("3 pods of the new template", async () => {
    const ps = await pods("shrink");
    return ps.length === 3 && ps.every((p) => templateHashOf(p) !== before) ? ps : undefined;
  });
  const env = holders[0]?.spec?.containers[0]?.env ?? [];
  expect(env.find((e) => e.name === "WAXFLOW_REPLICAS")?.value).toBe("1");
  expect(env.find((e) => e.name === "WAXFLOW_RECOVERY_INIT")?.value).toBe("true");
  const handingOff = await waitFor("the HandingOff record", async () => {
    const st = (await get("shrink"))?.status;
    return st?.rollout?.stage === "HandingOff" ? st : undefined;
  });
  expect(handingOff.rollout).toMatchObject({ kind: "scale", from: 3, to: 1 });
  expect(handingOff.conditions?.find((c) => c.type === "Progressing")?.reason).toBe("HandingOffRecovery");

  // Until the holders are Ready the StatefulSet stays at 3, even for a fresh controller.
  await controller.stop();
  controller = startController();
  await sleep(2000);
  expect((await controller.kube.readStatefulSet(NS, "shrink"))?.spec?.replicas).toBe(3);
  expect((await get("shrink"))?.status?.rollout?.stage).toBe("HandingOff");

  await markReady("shrink");
  await waitFor("1 pod left", async () => (await pods("shrink")).length === 1);
  await waitFor("Running", async () => (await phaseOf("shrink")) === "Running");
  expect((await get("shrink"))?.status?.rollout).toBeUndefined();
  await waitFor("the holders' claims deleted", async () => (await claimNames("shrink")).join() === "recovery-shrink-0");
  const reasons = (
    await core.listNamespacedEvent({ namespace: NS, fieldSelector: "involvedObject.name=shrink" })
  ).items.map((e) => e.reason);
  expect(reasons).toEqual(
    expect.arrayContaining(["Scaling", "HandingOffRecovery", "RecoveryHandedOff", "RollComplete", "VolumeDeleted"]),
  );
});

test("a Dataflow deployed again smaller over the volumes its earlier self left takes their data over through holders", async () => {
  await create("again", { processes: 3, recovery: { enabled: true } });
  await waitFor("3 claims", async () => (await claimNames("again")).length === 3);
  await custom.deleteNamespacedCustomObject({ ...ref, name: "again" });
  await waitFor("Dataflow gone", async () => (await get("again")) === undefined);
  await waitFor("pods gone", async () => (await pods("again")).length === 0);
  expect(await claimNames("again")).toEqual(["recovery-again-0", "recovery-again-1", "recovery-again-2"]);

  await create("again", { processes: 1, recovery: { enabled: true } });
  const handingOff = await waitFor("the HandingOff record", async () => {
    const st = (await get("again"))?.status;
    return st?.rollout?.stage === "HandingOff" ? st : undefined;
  });
  expect(handingOff.rollout).toMatchObject({ from: 3, to: 1 });
  const holders = await waitFor("3 pods", async () => {
    const ps = await pods("again");
    return ps.length === 3 ? ps : undefined;
  });
  expect(holders[0]?.spec?.containers[0]?.env?.find((e) => e.name === "WAXFLOW_REPLICAS")?.value).toBe("1");
  await markReady("again");
  await waitFor("1 pod left", async () => (await pods("again")).length === 1);
  await waitFor("Running", async () => (await phaseOf("again")) === "Running");
  expect((await get("again"))?.status?.rollout).toBeUndefined();
});

test("a process that fails twice the same way: Degraded at once, Failed with its error line, shown by kubectl get df", async () => {
  await create("crash", {});
  const [pod] = await waitFor("a pod", async () => {
    const ps = await pods("crash");
    return ps.length === 1 ? ps : undefined;
  });
  const name = pod?.metadata?.name ?? "";
  const line = "error: step crash.parse: bad item 'x'";
  const run = (n: number) => ({
    containerID: `containerd://run-${n}`,
    exitCode: 1,
    reason: "Error",
    message: `waxflow: 1 process x 1 worker\n${line}\n`,
    finishedAt: new Date(),
  });
  // The kubelet's part: the container's runs as pod status shows them.
  const report = (restartCount: number, state: V1ContainerState, previous?: ReturnType<typeof run>) =>
    core.patchNamespacedPodStatus(
      {
        namespace: NS,
        name,
        body: {
          status: {
            phase: "Running",
            containerStatuses: [
              {
                name: "waxflow",
                image: IMAGE,
                imageID: "",
                ready: false,
                restartCount,
                state,
                ...(previous === undefined ? {} : { lastState: { terminated: previous } }),
              },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  const degraded = async () => (await get("crash"))?.status?.conditions?.find((c) => c.type === "Degraded");

  const first = run(0);
  await report(0, { terminated: first });
  expect(await waitFor("ProcessFailed", async () => (await degraded())?.reason === "ProcessFailed")).toBe(true);
  await report(
    1,
    { waiting: { reason: "CrashLoopBackOff", message: "back-off 10s restarting failed container" } },
    first,
  );
  await report(1, { running: { startedAt: new Date() } }, first);
  await sleep(500);
  expect(await degraded()).toMatchObject({ status: "True", reason: "ProcessFailed" });
  expect((await get("crash"))?.status?.phase).not.toBe("Failed");

  await report(1, { terminated: run(1) }, first);
  const failed = await waitFor("Failed", async () => {
    const df = await get("crash");
    return df?.status?.phase === "Failed" ? df : undefined;
  });
  const message = `process crash-0 failed 2 times in a row with exit code 1: ${line}`;
  expect(failed.status?.conditions?.find((c) => c.type === "Degraded")).toMatchObject({
    status: "True",
    reason: "CrashLoop",
    message,
  });
  const table = execFileSync("kubectl", ["get", "df", "crash", "-n", NS, "--kubeconfig", cluster.kubeconfigPath], {
    encoding: "utf8",
  });
  expect(table.split("\n")[0]?.split(/\s+/)).toEqual([
    "NAME",
    "READY",
    "STATE",
    "PHASE",
    "IMAGE",
    "AGE",
    "RECONCILED",
    "PROBLEM",
  ]);
  // RECONCILED: the status was just written by a running operator, so its age is seconds.
  expect(table.split("\n")[1]).toMatch(
    /^crash\s+0\/1\s+running\s+Failed\s+\S+\s+\S+\s+\d+s\s+process crash-0 failed 2 times/,
  );
  const warnings = await waitFor("the Warning events", async () => {
    const list = await core.listNamespacedEvent({
      namespace: NS,
      fieldSelector: "involvedObject.name=crash,type=Warning",
    });
    const reasons = list.items.map((e) => e.reason);
    return reasons.includes("CrashLoop") ? reasons : undefined;
  });
  expect(warnings).toEqual(expect.arrayContaining(["ProcessFailed", "CrashLoop"]));

  // Ready at last (the cause went away): Running, and the record is dropped.
  await markReady("crash");
  await report(2, { running: { startedAt: new Date() } }, run(1));
  await waitFor("Running", async () => (await phaseOf("crash")) === "Running");
  expect((await get("crash"))?.status?.failures).toBeUndefined();
});

test("an object the API server refuses makes the Dataflow Failed with its message, without a hot loop", async () => {
  await create("bad", { podTemplate: { spec: { containers: [{ name: "sidecar" }] } } });
  const degraded = await waitFor("Failed", async () => {
    const df = await get("bad");
    return df?.status?.phase === "Failed" ? df.status.conditions?.find((c) => c.type === "Degraded") : undefined;
  });
  expect(degraded?.reason).toBe("RejectedByApiServer");
  expect(degraded?.message).toMatch(
    /apply StatefulSet\/bad: .*spec.template.spec.containers\[1\].image: Required value/,
  );
  const count = async () => {
    const m = await controller.metrics.reconciles.get();
    return m.values.reduce((sum, v) => sum + v.value, 0);
  };
  const before = await count();
  await sleep(3000);
  expect((await count()) - before).toBeLessThan(10);
  expect((await get("bad"))?.status?.phase).toBe("Failed");

  await patchSpec("bad", { podTemplate: null } as unknown as Partial<DataflowSpec>);
  await waitFor("StatefulSet bad", () => controller.kube.readStatefulSet(NS, "bad"));
  await waitFor("no longer Failed", async () => (await phaseOf("bad")) === "Pending");
});

test("an edit the API server refuses stops nothing and records no roll; going back restarts nothing", async () => {
  await create("limits", { processes: 2 });
  await waitFor("2 pods", async () => (await pods("limits")).length === 2);
  await markReady("limits");
  await waitFor("Running", async () => (await phaseOf("limits")) === "Running");
  const uids = (await pods("limits")).map((p) => p.metadata?.uid).sort();
  await patchSpec("limits", { resources: { requests: { memory: "2Gi" }, limits: { memory: "1Gi" } } });
  const failed = await waitFor("Failed", async () => {
    const df = await get("limits");
    return df?.status?.phase === "Failed" ? df.status : undefined;
  });
  expect(failed.rollout).toBeUndefined();
  expect(failed.conditions?.find((c) => c.type === "Degraded")?.message).toMatch(
    /^check StatefulSet\/limits: .*must be less than or equal to memory limit.*: fix the Dataflow spec$/,
  );
  expect(failed.conditions?.find((c) => c.type === "Ready")?.message).toMatch(
    /^2 process\(es\) keep running the previous spec, untouched: check StatefulSet\/limits: /,
  );
  const untouched = async () => {
    const now = await pods("limits");
    expect(now.map((p) => p.metadata?.uid).sort()).toEqual(uids);
    expect(now.every((p) => p.metadata?.deletionTimestamp === undefined)).toBe(true);
    expect((await controller.kube.readStatefulSet(NS, "limits"))?.spec?.replicas).toBe(2);
  };
  await sleep(1500);
  await untouched();

  await patchSpec("limits", { resources: null } as unknown as Partial<DataflowSpec>);
  await waitFor("Running again", async () => (await phaseOf("limits")) === "Running");
  await sleep(1500);
  await untouched();
  const reasons = (
    await core.listNamespacedEvent({ namespace: NS, fieldSelector: "involvedObject.name=limits" })
  ).items.map((e) => e.reason);
  expect(reasons).not.toContain("Upgrading");
  await custom.deleteNamespacedCustomObject({ ...ref, name: "limits" });
});

test("pods that wait for a Secret or ConfigMap that does not exist make the Dataflow Degraded, naming it", async () => {
  await create("refs", {
    processes: 1,
    env: [{ name: "DB_PASSWORD", valueFrom: { secretKeyRef: { name: "refs-db", key: "password" } } }],
    podTemplate: { spec: { containers: [], volumes: [{ name: "settings", configMap: { name: "refs-settings" } }] } },
  });
  await waitFor("1 pod", async () => (await pods("refs")).length === 1);
  // The kubelet's part: the pod waits (a missing volume source keeps it ContainerCreating).
  const degraded = await waitFor("Degraded MissingSecret", async () => {
    const c = (await get("refs"))?.status?.conditions?.find((c) => c.type === "Degraded");
    return c?.reason === "MissingSecret" ? c : undefined;
  });
  expect(degraded.message).toBe(
    `1 pod(s) (refs-0) cannot start: Secret "refs-db" (env DB_PASSWORD of container waxflow), ConfigMap "refs-settings" (volume settings) do not exist in namespace ${NS}; create them, or change the Dataflow's env, envFrom or podTemplate`,
  );
  // One of them created: the other is still named.
  await core.createNamespacedSecret({
    namespace: NS,
    body: { metadata: { name: "refs-db" }, stringData: { password: "x" } },
  });
  await patchSpec("refs", { workersPerProcess: 1 }); // any change looks again at once
  await waitFor("only the ConfigMap named", async () => {
    const c = (await get("refs"))?.status?.conditions?.find((c) => c.type === "Degraded");
    return c?.reason === "MissingConfigMap" && !c.message?.includes("refs-db");
  });
  await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: "refs-settings" } } });
  await markReady("refs");
  await waitFor("Running, not Degraded", async () => {
    const df = await get("refs");
    return (
      df?.status?.phase === "Running" && df.status.conditions?.find((c) => c.type === "Degraded")?.status === "False"
    );
  });
  await custom.deleteNamespacedCustomObject({ ...ref, name: "refs" });
});

test("a typo in env or podTemplate makes the Dataflow Failed, naming the field, instead of being dropped", async () => {
  // One typo each: the API server may name only one of several in a single answer.
  await create("typo-env", { env: [{ name: "GREETING", vaule: "hi" } as unknown as V1EnvVar] });
  await create("typo-pod", { podTemplate: { spec: { nodeSelectr: { disk: "ssd" } } as unknown as V1PodSpec } });
  const degraded = (name: string) =>
    waitFor(`${name} Failed`, async () => {
      const df = await get(name);
      return df?.status?.phase === "Failed" ? df.status.conditions?.find((c) => c.type === "Degraded") : undefined;
    });
  expect((await degraded("typo-env"))?.message).toMatch(
    /apply StatefulSet\/typo-env: .*\.env\[name="GREETING"\]\.vaule: field not declared in schema.*: fix the Dataflow spec/s,
  );
  expect((await degraded("typo-pod"))?.message).toMatch(
    /apply StatefulSet\/typo-pod: .*\.spec\.template\.spec\.nodeSelectr: field not declared in schema.*: fix the Dataflow spec/s,
  );
  expect(await controller.kube.readStatefulSet(NS, "typo-env")).toBeUndefined();
  expect(await controller.kube.readStatefulSet(NS, "typo-pod")).toBeUndefined();
});

test("the watches recover from an API server restart within 30 s", async () => {
  await cluster.stopApiServer();
  await sleep(3000);
  await cluster.startApiServer();
  const restarted = Date.now();
  await create("after", {});
  await waitFor("StatefulSet after the restart", () => controller.kube.readStatefulSet(NS, "after"), 30_000);
  expect(Date.now() - restarted).toBeLessThan(30_000);
  const metrics = await controller.metrics.registry.getSingleMetricAsString("waxflow_controller_watch_restarts_total");
  expect(metrics).toMatch(/reason="error"} [1-9]/);
}, 60_000);

test("/healthz and /metrics", async () => {
  const server = await serveProbes(controller.metrics, 0, () => controller.synced);
  const port = (server.address() as AddressInfo).port;
  try {
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/waxflow_controller_reconcile_total\{result="ok"\} [1-9]/);
    expect(text).toContain("waxflow_controller_reconcile_duration_seconds_bucket");
    expect(text).toContain("waxflow_controller_queue_depth");
  } finally {
    server.close();
  }
});

test("leader election: one holder at a time; a released lease passes on", async () => {
  const opts = { namespace: NS, name: "waxflow-controller", leaseDurationMs: 3000, retryPeriodMs: 200 };
  const a = new LeaderElector(kc, { ...opts, identity: "a" });
  const b = new LeaderElector(kc, { ...opts, identity: "b" });
  await a.acquire();
  const bWon = b.acquire();
  await sleep(1000);
  expect(b.leading).toBe(false);
  await a.release();
  await bWon;
  expect(b.leading).toBe(true);
  await b.release();
});
