// The CRD against a real kube-apiserver: it installs, defaults, and rejects bad
// Dataflows with the message a user sees.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CustomObjectsApi } from "@kubernetes/client-node";
import { type Dataflow, GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { loadAll } from "js-yaml";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { Kube } from "../src/kube/client.ts";
import { installCrd } from "../src/kube/crd.ts";
import { errorText } from "../src/log.ts";
import { managedDataflows, uninstallCheck } from "../src/uninstall-check.ts";
import { createDataflow, startCluster, type TestCluster } from "./harness/apiserver.ts";

// Real API server round trips on a shared 2-core machine: generous, the waits inside are bounded.
vi.setConfig({ testTimeout: 60_000 });

const IMAGE = `registry.local/flow@sha256:${"a".repeat(64)}`;
let cluster: TestCluster;
let custom: CustomObjectsApi;

beforeAll(async () => {
  cluster = await startCluster();
  const kc = cluster.kubeConfig();
  await installCrd(new Kube(kc));
  custom = kc.makeApiClient(CustomObjectsApi);
}, 3_600_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

function create(name: string, spec: Record<string, unknown>): Promise<Dataflow> {
  return createDataflow(cluster.kubeConfig(), "default", name, spec);
}

async function rejection(name: string, spec: Record<string, unknown>): Promise<string> {
  try {
    await create(name, spec);
  } catch (err) {
    return errorText(err);
  }
  throw new Error("the API server accepted an invalid Dataflow");
}

test("a minimal Dataflow is stored with every default", async () => {
  const df = await create("minimal", { image: IMAGE, module: "/app/flow.js" });
  expect(df.spec).toMatchObject({
    processes: 1,
    workersPerProcess: 1,
    state: "running",
    recovery: {
      enabled: false,
      snapshotInterval: "10s",
      backupInterval: "30s",
      storage: { size: "1Gi" },
      retention: { whenDeleted: "Retain", whenScaled: "Retain" },
    },
  });
});

test("processes 0 is rejected", async () => {
  expect(await rejection("zero", { image: IMAGE, module: "m", processes: 0 })).toMatch(
    /spec.processes: Invalid value: 0: spec.processes in body should be greater than or equal to 1/,
  );
});

test("a missing image is rejected", async () => {
  expect(await rejection("noimage", { module: "m" })).toMatch(/spec.image: Required value/);
});

test("an image by tag is rejected with the fix", async () => {
  expect(await rejection("tagged", { image: "registry.local/flow:latest", module: "m" })).toMatch(
    /spec.image: Invalid value: "string": image must be referenced by digest \(REGISTRY\/NAME@sha256:<64 hex digits>\), got "registry.local\/flow:latest": `waxctl image build FILE` prints the reference by digest/,
  );
});

test("a backup interval below the snapshot interval is rejected", async () => {
  const msg = await rejection("intervals", {
    image: IMAGE,
    module: "m",
    recovery: { enabled: true, snapshotInterval: "1m", backupInterval: "10s" },
  });
  expect(msg).toMatch(
    /recovery.backupInterval \(10s\) must be greater than or equal to recovery.snapshotInterval \(1m\)/,
  );
});

test("restoreFrom without a backup bucket is rejected with what it needs; with one it is stored", async () => {
  expect(await rejection("restore", { image: IMAGE, module: "m", restoreFrom: { savepoint: "sp-1" } })).toMatch(
    /spec.restoreFrom needs spec.recovery.enabled: true and spec.recovery.backup \(a bucket\): the savepoint is read from the bucket/,
  );
  expect(
    await rejection("restore-id", {
      image: IMAGE,
      module: "m",
      recovery: { enabled: true, backup: { bucket: "backups" } },
      restoreFrom: { savepoint: "Not_An_Id" },
    }),
  ).toMatch(/spec.restoreFrom.savepoint: Invalid value: "Not_An_Id"/);
  const df = await create("restore-ok", {
    image: IMAGE,
    module: "m",
    recovery: { enabled: true, backup: { bucket: "backups" } },
    restoreFrom: { savepoint: "sp-1", prefix: "ns/source" },
  });
  expect(df.spec.restoreFrom).toEqual({ savepoint: "sp-1", prefix: "ns/source" });
});

test("an interval that is not a duration is rejected", async () => {
  expect(await rejection("baddur", { image: IMAGE, module: "m", recovery: { snapshotInterval: "often" } })).toMatch(
    /spec.recovery.snapshotInterval: Invalid value: "often"/,
  );
});

test("WAXFLOW_ variables belong to the controller", async () => {
  expect(
    await rejection("env", { image: IMAGE, module: "m", env: [{ name: "WAXFLOW_PROCESS_ID", value: "1" }] }),
  ).toMatch(/env WAXFLOW_PROCESS_ID: WAXFLOW_\* variables are set by the controller/);
});

test("a name too long for a StatefulSet is rejected", async () => {
  expect(await rejection("x".repeat(53), { image: IMAGE, module: "m" })).toMatch(/at most 52 characters/);
});

test("the scale subresource drives spec.processes", async () => {
  await create("scaled", { image: IMAGE, module: "m" });
  await custom.replaceNamespacedCustomObjectScale({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: "default",
    name: "scaled",
    body: {
      apiVersion: "autoscaling/v1",
      kind: "Scale",
      metadata: { name: "scaled", namespace: "default" },
      spec: { replicas: 4 },
    },
  });
  const df = (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: "default",
    name: "scaled",
  })) as Dataflow;
  expect(df.spec.processes).toBe(4);
});

describe("spec.podTemplate is guarded: kubectl apply refuses a way onto the node, naming the field", () => {
  const pod = (spec: Record<string, unknown>) => ({ image: IMAGE, module: "m", podTemplate: { spec } });
  const sidecar = (securityContext: Record<string, unknown>) => ({ name: "side", image: "s", securityContext });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["hostnet", { hostNetwork: true }, /spec.podTemplate.spec.hostNetwork: host namespaces are refused/],
    ["hostpid", { hostPID: true }, /spec.podTemplate.spec.hostPID: host namespaces are refused/],
    ["hostipc", { hostIPC: true }, /spec.podTemplate.spec.hostIPC: host namespaces are refused/],
    [
      "privileged",
      { containers: [{ name: "waxflow" }, sidecar({ privileged: true })] },
      /spec.podTemplate.spec.containers\[name=side\].securityContext.privileged: privileged containers are refused/,
    ],
    [
      "escalation",
      { initContainers: [sidecar({ allowPrivilegeEscalation: true })] },
      /spec.podTemplate.spec.initContainers\[name=side\].securityContext.allowPrivilegeEscalation: privilege escalation is refused/,
    ],
    [
      "caps",
      { containers: [{ name: "waxflow", securityContext: { capabilities: { add: ["NET_ADMIN"] } } }] },
      /spec.podTemplate.spec.containers\[name=waxflow\].securityContext.capabilities.add: added capabilities are refused/,
    ],
    [
      "ephemeral",
      { ephemeralContainers: [sidecar({ privileged: true })] },
      /spec.podTemplate.spec.ephemeralContainers\[name=side\].securityContext.privileged/,
    ],
    [
      "hostpath",
      {
        volumes: [
          { name: "ok", emptyDir: {} },
          { name: "root", hostPath: { path: "/" } },
        ],
      },
      /spec.podTemplate.spec.volumes\[name=root\].hostPath: hostPath volumes are refused/,
    ],
  ];
  test.each(cases)("%s", async (name, spec, message) => {
    const text = await rejection(name, pod(spec));
    expect(text).toMatch(message);
    expect(text).toMatch(/spec.allowPrivileged, if the operator allows privileged Dataflows/);
  });

  test("what stays inside the container passes, unknown fields kept; allowPrivileged lets the rest through", async () => {
    const safe = await create(
      "safe",
      pod({
        nodeSelector: { disk: "ssd" },
        hostNetwork: false,
        containers: [
          sidecar({ privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"], add: [] } }),
        ],
        volumes: [{ name: "scratch", emptyDir: { medium: "Memory" } }],
      }),
    );
    // Declaring the guarded fields must not prune the rest of the template.
    expect(safe.spec.podTemplate?.spec).toMatchObject({
      nodeSelector: { disk: "ssd" },
      containers: [{ name: "side", image: "s", securityContext: { capabilities: { drop: ["ALL"] } } }],
      volumes: [{ name: "scratch", emptyDir: { medium: "Memory" } }],
    });
    expect(safe.spec.allowPrivileged).toBe(false);
    const all = await create("privileged-ok", {
      ...pod({
        hostNetwork: true,
        containers: [sidecar({ privileged: true, capabilities: { add: ["NET_ADMIN"] } })],
        volumes: [{ name: "root", hostPath: { path: "/" } }],
      }),
      allowPrivileged: true,
    });
    expect(all.spec.podTemplate?.spec?.hostNetwork).toBe(true);
  });
});

test("the chart's uninstall check refuses while Dataflows exist, naming them, and passes where none are", async () => {
  const kc = cluster.kubeConfig();
  const left = await managedDataflows(kc, []);
  expect(left).toContain("default/minimal");
  expect(await managedDataflows(kc, ["default"])).toEqual(left);
  expect(await uninstallCheck(kc, [])).toBe(1);
  expect(await uninstallCheck(kc, ["kube-public"])).toBe(0);
});

test("every Dataflow in examples/k8s is accepted as written", async () => {
  const dir = fileURLToPath(new URL("../../examples/k8s/", import.meta.url));
  const dataflows = readdirSync(dir)
    .filter((f) => f.startsWith("running-count"))
    .flatMap((f) => loadAll(readFileSync(join(dir, f), "utf8")) as Dataflow[])
    .filter((o) => o.kind === "Dataflow");
  expect(dataflows.map((df) => df.metadata?.name).sort()).toEqual(["counts", "counts-recovery", "counts-shared"]);
  for (const df of dataflows) {
    const stored = await create(`example-${df.metadata?.name}`, df.spec as unknown as Record<string, unknown>);
    expect(stored.spec).toMatchObject(df.spec);
  }
});
