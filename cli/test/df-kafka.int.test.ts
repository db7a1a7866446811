// Kafka lag in `df describe` and `df top`, end to end on a real kube-apiserver: a real
// `waxflow run -w 2` reads a real broker's topic, and the CLI reads the process through the
// API server's pod proxy (the pod is made by the test: see process-pod.ts).
import { resolve } from "node:path";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { Kube } from "../../controller/src/kube/client.ts";
import { installCrd } from "../../controller/src/kube/crd.ts";
import { createDataflow, startCluster, type TestCluster, waitFor } from "../../controller/test/harness/apiserver.ts";
import { type Broker, startBroker } from "../../runtime/test/kafka/broker.ts";
import { createTopic, produce } from "../../runtime/test/kafka/topics.ts";
import { freePort } from "../../runtime/test/support/ports.ts";
import { childProcesses } from "../../runtime/test/support/processes.ts";
import { TEST_SECRET } from "../../runtime/test/support/secret.ts";
import type { Description } from "../src/commands/df/describe.ts";
import type { TopNumbers } from "../src/commands/df/top.ts";
import { createProcessPod } from "./process-pod.ts";
import { type Outcome, waxctl } from "./waxctl.ts";

vi.setConfig({ testTimeout: 90_000 });

const ROOT = resolve(import.meta.dirname, "../..");
const PARTITIONS = 3;
const MESSAGES = 600;
const processes = childProcesses();
let cluster: TestCluster;
let broker: Broker;

const run = (...args: string[]): Promise<Outcome> => waxctl([...args, "--kubeconfig", cluster.kubeconfigPath]);

beforeAll(async () => {
  [cluster, broker] = await Promise.all([startCluster(), startBroker()]);
  await installCrd(new Kube(cluster.kubeConfig()));
}, 3_600_000);

afterAll(async () => {
  await Promise.all([cluster?.stop(), broker?.stop()]);
}, 60_000);

test("describe lists each partition's lag with its pod and worker; top sums it per topic", async () => {
  const topic = await createTopic(broker, "described", PARTITIONS);
  await produce(
    broker,
    Array.from({ length: MESSAGES }, (_, i) => ({ topic, partition: i % PARTITIONS, value: Buffer.from(String(i)) })),
  );
  await createDataflow(cluster.kubeConfig(), "default", "lagging", {
    image: `registry.example/lagging@sha256:${"b".repeat(64)}`,
    module: "/app/flow.js",
  });
  const apiPort = await freePort();
  processes.start([resolve(ROOT, "runtime/src/cli.ts"), "run", "runtime/test/kafka/lag-flow.ts", "-w", "2"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      WAXFLOW_API_PORT: String(apiPort),
      WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
      WAXFLOW_QUIET: "true",
      KL_BROKERS: broker.address,
      KL_TOPIC: topic,
      KL_ITEM_MS: "1",
    },
    stdio: "ignore",
  });
  await createProcessPod(cluster.kubeConfig(), { name: "lagging-0", dataflow: "lagging", apiPort });

  // Once every message is read, each partition shows lag 0, read by worker partition mod 2.
  const described = await waitFor(
    "every partition read in df describe --json",
    async () => {
      const outcome = await run("df", "describe", "lagging", "--json");
      const parsed = JSON.parse(outcome.stdout) as Description;
      const { partitions } = parsed.steps.kafka;
      return partitions.length === PARTITIONS && partitions.every((p) => p.lag === 0) && parsed;
    },
    60_000,
  );
  expect(described.steps.kafka.partitions).toEqual(
    [0, 1, 2].map((p) => ({ step: "in", topic, partition: p, lag: 0, pod: "lagging-0", worker: p % 2 })),
  );
  const text = await run("df", "describe", "lagging");
  expect(text.error).toBeUndefined();
  expect(text.stdout).toContain(
    [
      "Kafka lag:",
      `  STEP   ${"TOPIC".padEnd(topic.length + 3)}PARTITION   LAG   POD         WORKER`,
      ...[0, 1, 2].map((p) => `  in     ${topic}   ${p}           0     lagging-0   ${p % 2}`),
    ].join("\n"),
  );

  // Read: no lag. Then more than the process reads in seconds on one partition: that one lags.
  const top = JSON.parse((await run("df", "top", "lagging", "--once", "--json")).stdout) as TopNumbers;
  expect(top.kafka.topics).toEqual([
    { step: "in", topic, partitions: PARTITIONS, totalLag: 0, maxLag: 0, maxLagPartition: 0 },
  ]);
  expect(top.pods[0]).toMatchObject({ pod: "lagging-0", resourcesFrom: "process" });
  expect(top.pods[0]?.cpuCores).toBeGreaterThanOrEqual(0);
  expect(top.pods[0]?.memoryMiB).toBeGreaterThan(20);
  await produce(
    broker,
    Array.from({ length: 6000 }, (_, i) => ({ topic, partition: 2, value: Buffer.from(String(i)) })),
  );
  const lagging = await waitFor(
    "partition 2's lag in df top --json",
    async () => {
      const numbers = JSON.parse((await run("df", "top", "lagging", "--once", "--json")).stdout) as TopNumbers;
      return (numbers.kafka.topics[0]?.totalLag ?? 0) > 0 && numbers;
    },
    30_000,
  );
  expect(lagging.kafka.topics[0]).toMatchObject({ partitions: PARTITIONS, maxLagPartition: 2 });
  expect(lagging.kafka.topics[0]?.maxLag).toBe(lagging.kafka.topics[0]?.totalLag);
  const frame = await run("df", "top", "lagging", "--once");
  expect(frame.stdout).toMatch(
    new RegExp(
      `^KAFKA TOPIC +STEP +PARTITIONS +LAG +MAX PARTITION LAG\\n${topic} +in +3 +[\\d.k]+ +[\\d.k]+ \\(partition \\d\\)$`,
      "m",
    ),
  );
});
