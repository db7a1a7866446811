// Upgrade modes and rollback against a real kube-apiserver and kube-controller-manager. No
// kubelet: the tests mark pods Ready. Savepoints come from a fake at the Savepoints seam
// (process 0's API is the runtime's); the seam's real implementation is checked on its own
// below, through the API server's real pod proxy to a stand-in for process 0's HTTP API.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import { type Dataflow, type DataflowSpec, GROUP, PLURAL, stateQueryToken, VERSION } from "@waxflow/crds";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { Controller } from "../src/controller.ts";
import { installCrd } from "../src/kube/crd.ts";
import { MAX_ANSWER_CHARS, PodProxySavepoints, type SavepointRecord, type Savepoints } from "../src/kube/savepoints.ts";
import { setQuiet } from "../src/log.ts";
import { IMAGE } from "./fixtures.ts";
import {
  createDataflow,
  markProcessesReady,
  processPods,
  startCluster,
  type TestCluster,
  waitFor,
} from "./harness/apiserver.ts";

vi.setConfig({ testTimeout: 90_000 });

const NS = "upgrades";
let cluster: TestCluster;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let custom: CustomObjectsApi;
let controller: Controller;

/** Process 0's savepoints as the test decides them: requested ones stay pending until told. */
class FakeSavepoints implements Savepoints {
  readonly requested: string[] = [];
  readonly #records = new Map<string, SavepointRecord>();

  async trigger(dataflow: Dataflow, id: string): Promise<string> {
    const key = `${dataflow.metadata?.name}/${id}`;
    if (!this.#records.has(key)) {
      this.requested.push(key);
      this.#records.set(key, { id, state: "pending", requestedAt: new Date().toISOString() });
    }
    return id;
  }

  async get(dataflow: Dataflow, id: string): Promise<SavepointRecord | undefined> {
    return this.#records.get(`${dataflow.metadata?.name}/${id}`);
  }

  settle(key: string, record: Partial<SavepointRecord>): void {
    const before = this.#records.get(key);
    if (before === undefined) throw new Error(`no savepoint ${key} was requested`);
    this.#records.set(key, { ...before, ...record });
  }
}

const savepoints = new FakeSavepoints();

beforeAll(async () => {
  setQuiet(true);
  cluster = await startCluster({ controllers: ["statefulset-controller", "garbage-collector-controller"] });
  kc = cluster.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  controller = new Controller(kc, {
    namespaces: [NS],
    savepoints,
    watch: { resyncMs: 10_000, stallMs: 20_000, maxBackoffMs: 2_000 },
  });
  controller.start();
  await installCrd(controller.kube);
}, 3_600_000);

afterAll(async () => {
  await controller?.stop();
  await cluster?.stop();
}, 60_000);

const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: NS };
const BACKUP = { enabled: true, backup: { bucket: "bkt", endpoint: "http://s3.example:8333" } };

async function get(name: string): Promise<Dataflow> {
  return (await custom.getNamespacedCustomObject({ ...ref, name })) as Dataflow;
}

async function patchSpec(name: string, spec: Partial<DataflowSpec>): Promise<void> {
  await custom.patchNamespacedCustomObject(
    { ...ref, name, body: { spec } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

async function pods(name: string): Promise<V1Pod[]> {
  return (await processPods(core, NS, name)).filter((p) => p.metadata?.deletionTimestamp === undefined);
}

/** The kubelet's part: every live pod of the Dataflow Running and Ready. */
const markReady = (name: string): Promise<void> => markProcessesReady(core, NS, name);

const condition = (df: Dataflow, type: string) => df.status?.conditions?.find((c) => c.type === type);

const envOf = (sts: V1StatefulSet, name: string) =>
  sts.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === name)?.value;

const statefulSet = (name: string) => apps.readNamespacedStatefulSet({ namespace: NS, name });

async function eventReasons(name: string): Promise<string[]> {
  const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => e.reason ?? "");
}

/** `kubectl wait --for=condition=Ready df/NAME`: whether it succeeds within `timeout`. */
function kubectlWaitReady(name: string, timeout: string): boolean {
  try {
    execFileSync(
      "kubectl",
      [
        "wait",
        "--for=condition=Ready",
        `df/${name}`,
        "-n",
        NS,
        `--timeout=${timeout}`,
        "--kubeconfig",
        cluster.kubeconfigPath,
      ],
      { stdio: "pipe" },
    );
    return true;
  } catch {
    return false;
  }
}

/** A Dataflow created and Running with `processes` ready pods; their uids. */
async function running(name: string, spec: Partial<DataflowSpec>): Promise<string[]> {
  await createDataflow(kc, NS, name, { image: IMAGE, module: "/app/flow.js", ...spec });
  const n = spec.processes ?? 1;
  await waitFor(`${n} pods of ${name}`, async () => (await pods(name)).length === n);
  await markReady(name);
  await waitFor(`${name} Running`, async () => (await get(name)).status?.phase === "Running");
  return (await pods(name)).map((p) => p.metadata?.uid ?? "");
}

test("the API server refuses upgradeMode savepoint without a backup bucket, saying what to set", async () => {
  const refused = await createDataflow(kc, NS, "nobackup", {
    image: IMAGE,
    module: "/app/flow.js",
    upgradeMode: "savepoint",
    recovery: { enabled: true },
  }).catch((err: unknown) => String((err as { body?: unknown }).body ?? err));
  expect(refused).toContain("spec.upgradeMode savepoint needs spec.recovery.enabled and spec.recovery.backup");
  // Defaults as stored: last-state, rollback off with 5m.
  await createDataflow(kc, NS, "defaults", { image: IMAGE, module: "/app/flow.js" });
  expect((await get("defaults")).spec).toMatchObject({
    upgradeMode: "last-state",
    rollback: { enabled: false, readyTimeout: "5m" },
  });
  await custom.deleteNamespacedCustomObject({ ...ref, name: "defaults" });
});

describe("upgradeMode savepoint", () => {
  test("a savepoint is taken before the old processes stop; the new ones start from it; Ready as always", async () => {
    const uids = await running("sp", { processes: 2, upgradeMode: "savepoint", recovery: BACKUP });
    expect((await get("sp")).status?.lastStableGeneration).toBe(1);
    await patchSpec("sp", { workersPerProcess: 2 });
    const key = await waitFor("the savepoint request", async () =>
      savepoints.requested.find((k) => k.startsWith("sp/")),
    );
    const id = key.slice("sp/".length);
    const waiting = await waitFor("Savepointing", async () => {
      const df = await get("sp");
      return df.status?.rollout?.stage === "Savepointing" ? df : undefined;
    });
    expect(waiting.status?.rollout?.savepoint?.id).toBe(id);
    expect(condition(waiting, "Progressing")).toMatchObject({ status: "True", reason: "SavepointInProgress" });
    // Pending: the old processes run on, the StatefulSet is left as it is.
    await sleep(1500);
    expect((await pods("sp")).map((p) => p.metadata?.uid)).toEqual(uids);
    const before = await statefulSet("sp");
    expect(before.spec?.replicas).toBe(2);
    expect(envOf(before, "WAXFLOW_WORKERS_PER_PROCESS")).toBe("1");

    savepoints.settle(key, { state: "complete", createdAt: new Date().toISOString(), epoch: 7 });
    const fresh = await waitFor("2 new pods", async () => {
      const ps = await pods("sp");
      return ps.length === 2 && ps.every((p) => !uids.includes(p.metadata?.uid ?? "")) ? ps : undefined;
    });
    const env = fresh[0]?.spec?.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === "WAXFLOW_START_FROM")?.value).toBe(`savepoint:${id}`);
    expect(env.find((e) => e.name === "WAXFLOW_WORKERS_PER_PROCESS")?.value).toBe("2");
    await markReady("sp");
    const done = await waitFor("Running again", async () => {
      const df = await get("sp");
      return df.status?.phase === "Running" ? df : undefined;
    });
    expect(done.status?.lastSavepoint).toMatchObject({ id, epoch: 7 });
    expect(done.status?.startFrom).toBe(`savepoint:${id}`);
    expect(done.status?.lastStableGeneration).toBe(2);
    expect(kubectlWaitReady("sp", "20s")).toBe(true);
    expect(await eventReasons("sp")).toEqual(expect.arrayContaining(["Upgrading", "SavepointTaken", "RollComplete"]));
    // Only one savepoint for the roll, and none once it is done.
    await sleep(1000);
    expect(savepoints.requested.filter((k) => k.startsWith("sp/"))).toEqual([key]);
  });

  test("a failed savepoint holds the roll: SavepointFailed with its line, the processes untouched; an edit asks again", async () => {
    const uids = await running("spf", { processes: 1, upgradeMode: "savepoint", recovery: BACKUP });
    await patchSpec("spf", { workersPerProcess: 2 });
    const key = await waitFor("the savepoint request", async () =>
      savepoints.requested.find((k) => k.startsWith("spf/")),
    );
    savepoints.settle(key, { state: "failed", error: "bucket bkt: AccessDenied" });
    const failed = await waitFor("SavepointFailed", async () => {
      const df = await get("spf");
      return condition(df, "Degraded")?.reason === "SavepointFailed" ? df : undefined;
    });
    expect(condition(failed, "Degraded")?.message).toContain("bucket bkt: AccessDenied");
    expect(condition(failed, "Progressing")).toMatchObject({ status: "False", reason: "SavepointFailed" });
    await sleep(1500);
    expect((await pods("spf")).map((p) => p.metadata?.uid)).toEqual(uids);
    const sts = await statefulSet("spf");
    expect(sts.spec?.replicas).toBe(1);
    expect(envOf(sts, "WAXFLOW_WORKERS_PER_PROCESS")).toBe("1");
    expect(envOf(sts, "WAXFLOW_START_FROM")).toBeUndefined();
    expect(savepoints.requested.filter((k) => k.startsWith("spf/"))).toHaveLength(1);
    expect(await eventReasons("spf")).toContain("SavepointFailed");

    // The newest spec wins: an edit asks for a new savepoint.
    await patchSpec("spf", { workersPerProcess: 3 });
    await waitFor(
      "a second savepoint request",
      async () => savepoints.requested.filter((k) => k.startsWith("spf/")).length === 2,
    );
    expect((await pods("spf")).map((p) => p.metadata?.uid)).toEqual(uids);
  });
});

test("rollback: a generation not Ready within readyTimeout is rolled back to the last stable spec; an edit rolls forward", async () => {
  const rollback = { enabled: true, readyTimeout: "4s" };
  await running("rb", { processes: 1, rollback });
  await patchSpec("rb", { workersPerProcess: 2 });
  // The new pod starts and never becomes Ready (no kubelet marks it).
  await waitFor("the new pod", async () => {
    const sts = await statefulSet("rb");
    return envOf(sts, "WAXFLOW_WORKERS_PER_PROCESS") === "2" && (await pods("rb")).length === 1;
  });
  const rolledBack = await waitFor(
    "the rollback",
    async () => {
      const df = await get("rb");
      return df.status?.rolledBack !== undefined ? df : undefined;
    },
    30_000,
  );
  expect(rolledBack.status?.rolledBack).toMatchObject({ generation: 2, toGeneration: 1 });
  expect(rolledBack.status?.rolledBack?.message).toContain("not Ready 4s after its roll started");
  expect(condition(rolledBack, "Ready")).toMatchObject({ status: "False", reason: "RolledBack" });
  // The spec stays as written; the pods are the stable spec's again.
  expect(rolledBack.spec.workersPerProcess).toBe(2);
  await waitFor("the stable template", async () => {
    const sts = await statefulSet("rb");
    const ps = await pods("rb");
    return (
      envOf(sts, "WAXFLOW_WORKERS_PER_PROCESS") === "1" &&
      ps.length === 1 &&
      ps[0]?.spec?.containers[0]?.env?.find((e) => e.name === "WAXFLOW_WORKERS_PER_PROCESS")?.value === "1"
    );
  });
  await markReady("rb");
  const serving = await waitFor("the stable spec's process Running", async () => {
    const df = await get("rb");
    return df.status?.phase === "Running" ? df : undefined;
  });
  expect(condition(serving, "Ready")).toMatchObject({ status: "False", reason: "RolledBack" });
  expect(condition(serving, "Degraded")).toMatchObject({ status: "True", reason: "RolledBack" });
  expect(serving.status?.lastStableGeneration).toBe(1);
  expect(await eventReasons("rb")).toContain("RolledBack");
  // Ready means the spec as written runs: a rolled back Dataflow is not Ready.
  expect(kubectlWaitReady("rb", "2s")).toBe(false);

  // The newest spec wins: an edit ends the rollback and rolls forward.
  await patchSpec("rb", { workersPerProcess: 3 });
  await waitFor("the edit's pod", async () => {
    const ps = await pods("rb");
    return (
      ps.length === 1 &&
      ps[0]?.spec?.containers[0]?.env?.find((e) => e.name === "WAXFLOW_WORKERS_PER_PROCESS")?.value === "3"
    );
  });
  await markReady("rb");
  const forward = await waitFor("Ready with generation 3", async () => {
    const df = await get("rb");
    return condition(df, "Ready")?.status === "True" ? df : undefined;
  });
  expect(forward.status?.rolledBack).toBeUndefined();
  expect(forward.status?.lastStableGeneration).toBe(3);
  expect(kubectlWaitReady("rb", "10s")).toBe(true);
});

describe("the Savepoints seam through the API server's pod proxy", () => {
  /** An address of this machine that the API server will proxy to (it refuses loopback). */
  const address = Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === "IPv4" && !a.internal)?.address;
  const secret = randomBytes(32);
  const seen: { method: string; url: string; token: string | undefined; body: string }[] = [];
  let server: Server;
  let port = 0;

  beforeAll(async () => {
    if (address === undefined) throw new Error("no non-loopback IPv4 address to stand in for a pod's");
    // Process 0's savepoint API as the contract has it, holding one complete savepoint.
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString();
      });
      req.on("end", () => {
        const token = req.headers["x-waxflow-state-token"] as string | undefined;
        seen.push({ method: req.method ?? "", url: req.url ?? "", token, body });
        const send = (status: number, value: unknown) => {
          res.writeHead(status, { "content-type": "application/json" });
          res.end(JSON.stringify(value));
        };
        if (token !== stateQueryToken(secret)) return send(401, { error: "missing or wrong x-waxflow-state-token" });
        if (req.method === "POST" && req.url === "/savepoints") {
          const { id } = JSON.parse(body) as { id: string };
          if (id === "sp-taken") return send(409, { error: `savepoint ${id} exists` });
          if (id === "sp-nobackup") return send(409, { error: "savepoints need spec.recovery.backup (a bucket)" });
          return send(202, { id, state: "pending", requestedAt: "2026-12-05T10:35:00Z" });
        }
        if (req.method === "GET" && req.url === "/savepoints/sp-huge") {
          // A hostile process: an answer without end.
          res.writeHead(200, { "content-type": "application/json" });
          const chunk = "x".repeat(64 * 1024);
          const more = (): void => {
            while (!res.destroyed && res.write(chunk));
            if (!res.destroyed) res.once("drain", more);
          };
          return more();
        }
        if (req.method === "GET" && req.url === "/savepoints/sp-taken") {
          return send(200, { id: "sp-taken", state: "complete", requestedAt: "2026-12-05T10:35:00Z", epoch: 9 });
        }
        return send(404, { error: "no such savepoint" });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    port = (server.address() as AddressInfo).port;
    // Pod px-0 with that address, and the Dataflow's cluster Secret.
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: "px-cluster-secret" }, data: { secret: secret.toString("base64") } },
    });
    await core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: "px-0" }, spec: { containers: [{ name: "waxflow", image: IMAGE }] } },
    });
    await core.patchNamespacedPodStatus(
      {
        namespace: NS,
        name: "px-0",
        body: { status: { phase: "Running", podIP: address, podIPs: [{ ip: address }] } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  test("trigger and get reach process 0 with the token derived from the cluster Secret", async () => {
    const real = new PodProxySavepoints(kc, controller.kube, port);
    const px = { metadata: { name: "px", namespace: NS, uid: "uid-px" } } as Dataflow;
    expect(await real.trigger(px, "sp-20261205-103500-g2")).toBe("sp-20261205-103500-g2");
    expect(seen.at(-1)).toMatchObject({
      method: "POST",
      url: "/savepoints",
      token: stateQueryToken(secret),
      body: JSON.stringify({ id: "sp-20261205-103500-g2" }),
    });
    expect(await real.get(px, "sp-taken")).toMatchObject({ id: "sp-taken", state: "complete", epoch: 9 });
    // Process 0 knows none of that id: undefined, not an error.
    expect(await real.get(px, "sp-unknown")).toBeUndefined();
    // Requested before (a restarted operator): the existing one is taken.
    expect(await real.trigger(px, "sp-taken")).toBe("sp-taken");
    // Refused: the process's line, naming the savepoint and the pod.
    await expect(real.trigger(px, "sp-nobackup")).rejects.toThrow(
      "savepoint sp-nobackup: POST /savepoints on pod px-0 answered 409: savepoints need spec.recovery.backup (a bucket)",
    );
    // An answer past the bound is cut off with one line, not held in memory.
    await expect(real.get(px, "sp-huge")).rejects.toThrow(
      `pod px-0 answered GET /savepoints/sp-huge with more than ${MAX_ANSWER_CHARS} characters`,
    );
    // No pod of that name: the API server's own 404 is an error, not "no such savepoint".
    const gone = { metadata: { name: "gone", namespace: NS, uid: "uid-gone" } } as Dataflow;
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: "gone-cluster-secret" }, data: { secret: secret.toString("base64") } },
    });
    await expect(real.get(gone, "sp-taken")).rejects.toThrow(/the API server answered 404/);
  });
});
