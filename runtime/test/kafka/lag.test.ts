// Kafka metrics of every worker thread on a real `waxflow run -w 2`: each partition's lag on
// /metrics and /steps once (labelled with the worker reading it), messages counted once,
// the lag back to 0 when all is read, and the process's CPU covering its worker threads.
// In one thread too: each series names its worker, and goes when its partition is closed.
import { resolve } from "node:path";
import { register } from "prom-client";
import { expect, test } from "vitest";
import type { StepsReport } from "../../src/api/steps.ts";
import { KafkaSource } from "../../src/connectors/kafka/index.ts";
import { CONSUMER_LAG, partitionLags } from "../../src/connectors/kafka/metrics.ts";
import { Dataflow } from "../../src/dataflow.ts";
import * as op from "../../src/operators/index.ts";
import { clusterMain } from "../../src/testing.ts";
import { freePort } from "../support/ports.ts";
import { childProcesses } from "../support/processes.ts";
import { TEST_SECRET } from "../support/secret.ts";
import { brokerForFile, createTopic, produce } from "./kafka.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const broker = brokerForFile();
const processes = childProcesses();

const PARTITIONS = 4;
const MESSAGES = 2000;
const ITEM_MS = 2;

/** The value of each series of `name` in Prometheus text, by its label set as written. */
function series(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m !== null) found.set(m[1] ?? "", Number(m[2]));
  }
  return found;
}

test("-w 2 over 4 partitions: every partition's lag from both threads, once, down to 0", async () => {
  const topic = await createTopic(broker(), "lag", PARTITIONS);
  await produce(
    broker(),
    Array.from({ length: MESSAGES }, (_, i) => ({ topic, partition: i % PARTITIONS, value: Buffer.from(String(i)) })),
  );
  const api = await freePort();
  processes.start([resolve(ROOT, "runtime/src/cli.ts"), "run", "runtime/test/kafka/lag-flow.ts", "-w", "2"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      WAXFLOW_API_PORT: String(api),
      WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
      WAXFLOW_QUIET: "true",
      KL_BROKERS: broker().address,
      KL_TOPIC: topic,
      KL_ITEM_MS: String(ITEM_MS),
    },
    stdio: "ignore",
  });
  const get = async (path: string): Promise<string> => {
    const response = await fetch(`http://127.0.0.1:${api}${path}`);
    if (response.status !== 200) throw new Error(`${path}: ${response.status}`);
    return response.text();
  };
  // The largest lag each partition showed while it was read, and the last /steps answer.
  const most = new Map<number, number>();
  let report: StepsReport | undefined;
  await expect
    .poll(
      async () => {
        report = JSON.parse(await get("/steps").catch(() => "null")) as StepsReport | undefined;
        for (const p of report?.kafka ?? []) most.set(p.partition, Math.max(most.get(p.partition) ?? 0, p.lag));
        return (report?.kafka ?? []).map((p) => [p.partition, p.lag]);
      },
      { timeout: 60_000, interval: 100 },
    )
    .toEqual(Array.from({ length: PARTITIONS }, (_, p) => [p, 0]));
  // Read while the workers were behind: every partition lagged at some point.
  expect([...most.keys()].sort()).toEqual([0, 1, 2, 3]);
  for (const lag of most.values()) expect(lag).toBeGreaterThan(0);
  // Partitions are dealt round-robin: each thread reports its own two.
  expect(
    report?.kafka.map((p) => ({ step: p.step, topic: p.topic, partition: p.partition, worker: p.worker })),
  ).toEqual([0, 1, 2, 3].map((p) => ({ step: "kafka_lag.in", topic, partition: p, worker: p % 2 })));

  const metrics = await get("/metrics");
  const lag = series(metrics, "waxflow_kafka_consumer_lag");
  expect([...lag.entries()].sort()).toEqual(
    [0, 1, 2, 3].map((p) => [`{step_id="kafka_lag.in",topic="${topic}",partition="${p}",worker="${p % 2}"}`, 0]),
  );
  // Each thread counts what it read; merged, every message once.
  expect([...series(metrics, "waxflow_kafka_messages_in_total").values()]).toEqual([MESSAGES]);
  // The CPU the threads spent on the messages is the serving process's: the supervisor's child.
  const cpu = series(metrics, "process_cpu_seconds_total").get("") ?? 0;
  expect(cpu).toBeGreaterThan((MESSAGES * ITEM_MS) / 1000);
  expect(series(metrics, "process_resident_memory_bytes").get("")).toBeGreaterThan(20 * 2 ** 20);
}, 120_000);

test("workers taking turns in one thread: each partition's series names its worker and goes with the partition", async () => {
  const topic = await createTopic(broker(), "lag-closed", 3);
  await produce(
    broker(),
    Array.from({ length: 600 }, (_, i) => ({ topic, partition: i % 3, value: Buffer.from(String(i)) })),
  );
  const flow = new Dataflow("kafka_lag_closed");
  const messages = op.input("in", flow, new KafkaSource([broker().address], [topic], { tail: false, batchSize: 10 }));
  op.inspect("work", messages, () => {
    const until = performance.now() + 1;
    while (performance.now() < until);
  });
  const ours = async () =>
    partitionLags(await register.getMetricsAsJSON()).filter(
      (p) => p.topic === topic && p.step === "kafka_lag_closed.in",
    );
  const readers = new Map<number, number | null>();
  const sampler = setInterval(() => {
    void ours().then((lags) => {
      for (const p of lags) readers.set(p.partition, p.worker);
    });
  }, 20);
  try {
    await clusterMain(flow, { workersPerProcess: 2, epochIntervalMs: 100 });
  } finally {
    clearInterval(sampler);
  }
  // Dealt round-robin over the sorted partition names.
  expect([...readers].sort()).toEqual([
    [0, 0],
    [1, 1],
    [2, 0],
  ]);
  // Read to their ends and closed: no series left to show a last value for partitions no one reads.
  expect(await ours()).toEqual([]);
  expect((await register.getSingleMetric(CONSUMER_LAG)?.get())?.values.some((v) => v.labels.topic === topic)).toBe(
    false,
  );
}, 60_000);
