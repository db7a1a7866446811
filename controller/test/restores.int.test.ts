// A process's restore told as events on its Dataflow, against a real kube-apiserver and
// kube-controller-manager (StatefulSet pods; no kubelet: the test marks the pod Ready and
// gives it this machine's address). The controller reads /status through the API server's
// real pod proxy from a stand-in HTTP server: the runtime's /status with a restore that
// fell back over a damaged backup set.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from "@kubernetes/client-node";
import { type Dataflow, GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { Controller } from "../src/controller.ts";
import { installCrd } from "../src/kube/crd.ts";
import { PodProxyProcessStatuses } from "../src/kube/process-status.ts";
import { setQuiet } from "../src/log.ts";
import { IMAGE } from "./fixtures.ts";
import { createDataflow, startCluster, type TestCluster, waitFor } from "./harness/apiserver.ts";

vi.setConfig({ testTimeout: 90_000 });

const NS = "restores";
const FELL_BACK =
  "backup set 20261205T101500Z is unusable: rs/sets/20261205T101500Z/process-1/part-0.sqlite3 is truncated or " +
  "padded (100 bytes, the manifest says 4096); falling back to set 20261205T101000Z";
/** An address of this machine that the API server will proxy to (it refuses loopback). */
const address = Object.values(networkInterfaces())
  .flat()
  .find((a) => a !== undefined && a.family === "IPv4" && !a.internal)?.address;

let cluster: TestCluster;
let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let controller: Controller;
let server: Server;
/** GET /status requests the stand-in answered; the first is refused (a pod not answering yet). */
const asked: string[] = [];

beforeAll(async () => {
  if (address === undefined) throw new Error("no non-loopback IPv4 address to stand in for a pod's");
  setQuiet(true);
  server = createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    if (req.url !== "/status") {
      res.writeHead(404).end();
      return;
    }
    if (asked.length === 1) {
      res.writeHead(503).end("not yet\n");
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        process: 0,
        processes: 1,
        role: "process",
        ready: true,
        restore: { from: "backup set 20261205T101000Z", epoch: 41, fellBack: [FELL_BACK] },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as AddressInfo).port;
  cluster = await startCluster({ controllers: ["statefulset-controller"] });
  kc = cluster.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  controller = new Controller(kc, {
    namespaces: [NS],
    processStatuses: new PodProxyProcessStatuses(kc, port),
    watch: { resyncMs: 10_000, stallMs: 20_000, maxBackoffMs: 2_000 },
  });
  controller.start();
  await installCrd(controller.kube);
}, 3_600_000);

afterAll(async () => {
  await controller?.stop();
  await cluster?.stop();
  await new Promise((resolve) => server?.close(resolve));
}, 60_000);

async function events(name: string): Promise<{ type: string; reason: string; message: string }[]> {
  const list = await core.listNamespacedEvent({ namespace: NS, fieldSelector: `involvedObject.name=${name}` });
  return list.items.map((e) => ({ type: e.type ?? "", reason: e.reason ?? "", message: e.message ?? "" }));
}

const dataflow = async (name: string) =>
  (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace: NS,
    name,
  })) as Dataflow;

test("a process that fell back over a damaged backup set: a RestoreFellBack Warning with the line, Restored, and the pod asked once", async () => {
  await createDataflow(kc, NS, "rs", {
    image: IMAGE,
    module: "/app/flow.js",
    processes: 1,
    recovery: { enabled: true, backup: { bucket: "bkt", endpoint: "http://s3.example:8333" } },
  });
  const pod = await waitFor("pod rs-0", async () =>
    core.readNamespacedPod({ namespace: NS, name: "rs-0" }).catch(() => undefined as V1Pod | undefined),
  );
  // The kubelet's part: Running and Ready, at the stand-in's address.
  await core.patchNamespacedPodStatus(
    {
      namespace: NS,
      name: "rs-0",
      body: {
        status: {
          phase: "Running",
          startTime: new Date(),
          podIP: address,
          podIPs: [{ ip: address }],
          conditions: [
            { type: "PodScheduled", status: "True" },
            { type: "Ready", status: "True" },
          ],
        },
      },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  const uid = pod.metadata?.uid ?? "";
  // The first request is refused: nothing is recorded, and it is asked again (within 10 s).
  // The executor creates a plan's events concurrently: in any order.
  const told = await waitFor(
    "the RestoreFellBack and Restored events",
    async () => {
      const list = (await events("rs")).filter((e) => e.reason === "RestoreFellBack" || e.reason === "Restored");
      return list.length >= 2 ? list : undefined;
    },
    45_000,
  );
  expect(asked.filter((r) => r === "GET /status").length).toBeGreaterThanOrEqual(2);
  expect(told).toHaveLength(2);
  expect(told).toContainEqual({ type: "Warning", reason: "RestoreFellBack", message: `process 0: ${FELL_BACK}` });
  expect(told).toContainEqual({
    type: "Normal",
    reason: "Restored",
    message: "process 0 restored its recovery store from backup set 20261205T101000Z (epoch 41)",
  });
  expect((await dataflow("rs")).status?.restoresReported).toEqual([uid]);
  // Asked once: further reconciles ask no more and tell nothing again.
  const before = asked.length;
  await controller.reconcileKey(`${NS}/rs`);
  await controller.reconcileKey(`${NS}/rs`);
  expect(asked.length).toBe(before);
  expect((await events("rs")).filter((e) => e.reason === "Restored")).toHaveLength(1);
});
