// The controller binary as it runs in a pod: two replicas against a real API server,
// one leads (Lease), both answer /healthz; killing the leader hands over to the other.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  AppsV1Api,
  CoordinationV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createDataflow, freePort, startCluster, type TestCluster, waitFor } from "./harness/apiserver.ts";

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const IMAGE = `registry.local/flow@sha256:${"c".repeat(64)}`;
let cluster: TestCluster;
const children: ChildProcess[] = [];

async function replica(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number; log: () => string }> {
  const port = await freePort();
  let out = "";
  const child = spawn(process.execPath, [main, ...args], {
    env: {
      ...process.env,
      KUBECONFIG: cluster.kubeconfigPath,
      PROBE_PORT: String(port),
      POD_NAMESPACE: "default",
      LEASE_DURATION_SECONDS: "4",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  children.push(child);
  return { child, port, log: () => out };
}

const healthz = async (port: number) => (await fetch(`http://127.0.0.1:${port}/healthz`)).status;

beforeAll(async () => {
  cluster = await startCluster();
}, 3_600_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await cluster?.stop();
}, 60_000);

test("each reconcile decision is one log line: text with --log-format text, json by default", async () => {
  const text = await replica(["--log-format", "text"], { LEADER_ELECT: "false", LOG_LEVEL: "debug" });
  await waitFor("the controller to install the CRD and sync", async () => (await healthz(text.port)) === 200);
  await createDataflow(cluster.kubeConfig(), "default", "logged", { image: IMAGE, module: "m" });
  // The first reconcile creates the worker cluster alone; the next applies the rest and writes status.
  const created = await waitFor("the decision line that creates the StatefulSet", async () =>
    text
      .log()
      .split("\n")
      .find((l) =>
        / INFO {2}reconciled dataflow=default\/logged generation=1 action="[^"]*apply StatefulSet\/logged/.test(l),
      ),
  );
  expect(created).toMatch(/ durationMs=\d+$/);
  const status = await waitFor("the decision line that writes status", async () =>
    text
      .log()
      .split("\n")
      .find((l) => l.includes("reconciled dataflow=default/logged") && l.includes("write status")),
  );
  expect(status).toMatch(/ phase=Pending .*reason=Starting durationMs=\d+$/);
  text.child.kill("SIGTERM");
  await new Promise((resolve) => text.child.once("exit", resolve));
  expect(text.log()).not.toContain('{"time"');
}, 60_000);

test("two replicas: one leads and reconciles; the other takes over when the leader dies", async () => {
  const kc = cluster.kubeConfig();
  const a = await replica();
  await waitFor("replica a healthy", async () => (await healthz(a.port)) === 200);
  const coordination = kc.makeApiClient(CoordinationV1Api);
  const lease = await waitFor("the Lease", () =>
    coordination.readNamespacedLease({ namespace: "default", name: "waxflow-controller" }),
  );
  const first = lease.spec?.holderIdentity;
  expect(first).toMatch(new RegExp(`-${a.child.pid}$`));

  const b = await replica();
  await waitFor("replica b healthy (standing by)", async () => (await healthz(b.port)) === 200);
  await waitFor("replica b to say whom it waits for", async () =>
    b
      .log()
      .includes(`"msg":"standing by: waiting for the lease","lease":"default/waxflow-controller","holder":"${first}"`),
  );

  const custom = kc.makeApiClient(CustomObjectsApi);
  const apps = kc.makeApiClient(AppsV1Api);
  await createDataflow(kc, "default", "ha", { image: IMAGE, module: "m" });
  await waitFor("StatefulSet ha", () => apps.readNamespacedStatefulSet({ namespace: "default", name: "ha" }));
  const metrics = await (await fetch(`http://127.0.0.1:${a.port}/metrics`)).text();
  expect(metrics).toMatch(/waxflow_controller_leader 1/);

  a.child.kill("SIGKILL");
  const taken = await waitFor(
    "replica b to lead",
    async () => {
      const l = await coordination.readNamespacedLease({ namespace: "default", name: "waxflow-controller" });
      return l.spec?.holderIdentity?.endsWith(`-${b.child.pid}`) ? l : undefined;
    },
    40_000,
  );
  expect(taken.spec?.leaseTransitions).toBeGreaterThanOrEqual(1);
  await custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace: "default",
      name: "ha",
      body: { spec: { processes: 2 } },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  await waitFor(
    "the new leader to scale ha",
    async () => (await apps.readNamespacedStatefulSet({ namespace: "default", name: "ha" })).spec?.replicas === 2,
  );
  expect(b.log()).toContain("became leader");
  expect(b.log()).toMatch(
    /"msg":"reconciled","dataflow":"default\/ha","generation":2,"phase":"[A-Za-z]+","action":"[^"]*"/,
  );
}, 90_000);
