// `df top` and `df describe` against a real kube-apiserver: no kubelet runs here, so the
// pod is created by the test and its status says it runs at this machine's own address,
// where a real `waxflow run` process serves its API. The API server's pod proxy then
// reaches that process exactly as it reaches a pod's, so the CLI reads real /steps answers.
import { resolve } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { Kube } from "../../controller/src/kube/client.ts";
import { installCrd } from "../../controller/src/kube/crd.ts";
import { createDataflow, startCluster, type TestCluster, waitFor } from "../../controller/test/harness/apiserver.ts";
import { freePorts } from "../../runtime/test/support/ports.ts";
import { childProcesses } from "../../runtime/test/support/processes.ts";
import type { TopNumbers } from "../src/commands/df/top.ts";
import { createProcessPod } from "./process-pod.ts";
import { type Outcome, waxctl } from "./waxctl.ts";

vi.setConfig({ testTimeout: 60_000 });

const ROOT = resolve(import.meta.dirname, "../..");
const processes = childProcesses();
let cluster: TestCluster;
let apiPort: number;

const run = (...args: string[]): Promise<Outcome> => waxctl([...args, "--kubeconfig", cluster.kubeconfigPath]);

beforeAll(async () => {
  cluster = await startCluster();
  await installCrd(new Kube(cluster.kubeConfig()));
  await createDataflow(cluster.kubeConfig(), "default", "live", {
    image: `registry.example/live@sha256:${"a".repeat(64)}`,
    module: "/app/flow.js",
  });
  [apiPort] = (await freePorts(1)) as [number];
  await createProcessPod(cluster.kubeConfig(), { name: "live-0", dataflow: "live", apiPort, restarts: 1 });
}, 3_600_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

test("df top --once --json: every step of a running process has throughput, read through the pod proxy", async () => {
  // Two workers in threads, a snapshot every 200 ms: every number of the frame is under way.
  processes.start(
    [
      "--conditions=waxflow-source",
      resolve(ROOT, "runtime/src/cli.ts"),
      "run",
      "runtime/test/cli-fixtures/endless.ts",
      "-w",
      "2",
      "-s",
      "0.2",
      "-r",
      processes.tempDir("waxflow-top-"),
      "--recovery-init",
    ],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: String(apiPort), WAXFLOW_QUIET: "true" },
      stdio: "ignore",
    },
  );
  // The rates need a sample a second old, and the threads report every 500 ms.
  const numbers = await waitFor(
    "every step to show throughput in df top --json",
    async () => {
      const outcome = await run("df", "top", "live", "--once", "--json");
      const parsed = JSON.parse(outcome.stdout) as TopNumbers;
      return parsed.steps.length > 0 && parsed.steps.every((s) => s.throughput > 0) && parsed;
    },
    30_000,
  );
  expect(numbers).toMatchObject({ dataflow: "live", namespace: "default", flow: "endless" });
  expect(numbers.steps.map((s) => [s.step, s.kind, s.operator])).toEqual([
    ["inp", "input", { step: "inp", kind: "input" }],
    ["tick.inspect_debug", "inspectDebug", { step: "tick", kind: "inspect" }],
  ]);
  for (const s of numbers.steps) expect(s.itemsIn + s.itemsOut).toBeGreaterThan(0);
  expect(numbers.pods).toHaveLength(1);
  expect(numbers.pods[0]).toMatchObject({ pod: "live-0", process: 0, ready: true, restarts: 1, error: null });
  expect(numbers.pods[0]?.epoch).toBeGreaterThan(1);
  expect(numbers.pods[0]?.committedEpoch).toBeGreaterThanOrEqual(1);
  // No metrics-server here: the process's own figures, its CPU rated over two readings a second apart.
  expect(numbers.pods[0]).toMatchObject({ resourcesFrom: "process" });
  expect(numbers.pods[0]?.cpuCores).toBeGreaterThan(0);
  expect(numbers.pods[0]?.memoryMiB).toBeGreaterThan(20);
  expect(numbers.kafka).toEqual({ partitions: [], topics: [] });

  const frame = await run("df", "top", "live", "--once");
  expect(frame.error).toBeUndefined();
  expect(frame.stdout).toMatch(/^waxctl df top live -n default {3}1 pod\(s\)/);
  expect(frame.stdout).toMatch(/^ {2}tick\.inspect_debug +inspectDebug +\d/m);
  expect(frame.stdout).toMatch(/^live-0 +0 +yes +\d+ +\d+ +\d+\.\ds +\d+\.\d\d +\d+Mi +1$/m);
  expect(frame.stdout).not.toContain("KAFKA TOPIC");

  const described = await run("df", "describe", "live");
  expect(described.error).toBeUndefined();
  expect(described.stdout).toMatch(
    /^Steps:\n {2}STEP +KIND +STATE +ITEMS IN +ITEMS OUT +KEYS\n {2}inp +input +no +0 +\d/m,
  );
  expect(described.stdout).toMatch(/^ {2}tick\.inspect_debug +inspectDebug in tick \(inspect\) +no +\d/m);
  // Not a Kafka dataflow: nothing about Kafka.
  expect(described.stdout).not.toContain("Kafka");
});

test("a process that does not answer is a pod row with why, not a failed command", async () => {
  const core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespacedPod({
    namespace: "default",
    body: {
      metadata: { name: "live-1", labels: { "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": "live" } },
      spec: { containers: [{ name: "waxflow", image: "runtime" }] },
    },
  });
  const outcome = await run("df", "top", "live", "--once", "--json");
  expect(outcome.error).toBeUndefined();
  const numbers = JSON.parse(outcome.stdout) as TopNumbers;
  expect(numbers.pods.find((p) => p.pod === "live-1")).toMatchObject({ error: "not running", process: null });
  const live = await run("df", "top", "live");
  expect(live.stderr).toBe(
    "error: df top needs a terminal for its live view; use --once for one frame or --json for the numbers\n",
  );
  expect(live.error?.oclif?.exit).toBe(2);
});
