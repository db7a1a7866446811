// KafkaSource against a real broker: bounded reads over 1, 2 and 4 workers, resume from
// snapshot offsets, each startingOffset, and a missing topic.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { KafkaSource, type KafkaSourceMessage } from "../../src/connectors/kafka/index.ts";
import { Dataflow } from "../../src/dataflow.ts";
import * as op from "../../src/operators/index.ts";
import { clusterMain, runMain, TestingSink } from "../../src/testing.ts";
import { brokerForFile, createTopic, produce } from "./kafka.ts";

const broker = brokerForFile();
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function filledTopic(n: number, partitions = 3): Promise<string> {
  const topic = await createTopic(broker(), "src", partitions);
  await produce(
    broker(),
    Array.from({ length: n }, (_, i) => ({
      topic,
      partition: i % partitions,
      key: Buffer.from(`k${i}`),
      value: Buffer.from(String(i)),
    })),
  );
  return topic;
}

function readFlow(source: KafkaSource): { flow: Dataflow; items: KafkaSourceMessage[] } {
  const flow = new Dataflow("kafka_read");
  const items: KafkaSourceMessage[] = [];
  op.output("out", op.input("in", flow, source), new TestingSink(items));
  return { flow, items };
}

const values = (items: readonly KafkaSourceMessage[]): number[] =>
  items.map((m) => Number(m.value?.toString())).sort((a, b) => a - b);
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

test.each([1, 2, 4])(
  "a bounded read of 3 partitions with %i workers reads every message once",
  async (workers) => {
    const topic = await filledTopic(3000);
    const { flow, items } = readFlow(new KafkaSource([broker().address], [topic], { tail: false, batchSize: 100 }));
    await clusterMain(flow, { workersPerProcess: workers, epochIntervalMs: 100 });
    expect(values(items)).toEqual(range(0, 3000));
    const first = items.find((m) => m.value?.toString() === "4");
    expect(first).toMatchObject({ topic, partition: 1, offset: 1, key: Buffer.from("k4") });
    expect(first?.timestamp).toBeInstanceOf(Date);
  },
  60_000,
);

test("a resumed run starts at the snapshot's offsets, whatever startingOffset says", async () => {
  const topic = await filledTopic(300);
  const dir = mkdtempSync(join(tmpdir(), "waxflow-kafka-resume-"));
  dirs.push(dir);
  const recovery = { dbDir: dir, init: true };
  const first = readFlow(new KafkaSource([broker().address], [topic], { tail: false }));
  await runMain(first.flow, { recovery, epochIntervalMs: 100 });
  expect(values(first.items)).toEqual(range(0, 300));

  await produce(
    broker(),
    range(300, 600).map((i) => ({ topic, partition: i % 3, value: Buffer.from(String(i)) })),
  );
  const second = readFlow(new KafkaSource([broker().address], [topic], { tail: false, startingOffset: "beginning" }));
  await runMain(second.flow, { recovery, epochIntervalMs: 100 });
  expect(values(second.items)).toEqual(range(300, 600));
}, 60_000);

test("startingOffset: beginning, end, or an offset in every partition", async () => {
  const topic = await filledTopic(30);
  const read = async (startingOffset: "beginning" | "end" | number): Promise<number[]> => {
    const { flow, items } = readFlow(new KafkaSource([broker().address], [topic], { tail: false, startingOffset }));
    await runMain(flow, { epochIntervalMs: 100 });
    return values(items);
  };
  expect(await read("beginning")).toEqual(range(0, 30));
  expect(await read("end")).toEqual([]);
  // Offset 8 of each partition p holds 8 * 3 + p.
  expect(await read(8)).toEqual([24, 25, 26, 27, 28, 29]);
}, 60_000);

test("tail: a partition keeps reading what arrives after the start", async () => {
  const topic = await filledTopic(3);
  const flow = new Dataflow("kafka_tail");
  const seen: number[] = [];
  const abort = new AbortController();
  const messages = op.input("in", flow, new KafkaSource([broker().address], [topic]));
  op.output("out", messages, {
    build: () => ({
      writeBatch: (batch: KafkaSourceMessage[]) => {
        for (const m of batch) seen.push(Number(m.value?.toString()));
        if (seen.length === 6) abort.abort(new Error("seen all"));
      },
    }),
  });
  const run = runMain(flow, { epochIntervalMs: 100, signal: abort.signal });
  await expect.poll(() => seen.length, { timeout: 10_000 }).toBe(3);
  await produce(
    broker(),
    [3, 4, 5].map((i) => ({ topic, partition: i % 3, value: Buffer.from(String(i)) })),
  );
  await expect(run).rejects.toThrow("seen all");
  expect(seen.sort()).toEqual([0, 1, 2, 3, 4, 5]);
}, 60_000);

test("a topic that does not exist fails with one line naming the topic and the brokers", async () => {
  const { flow } = readFlow(new KafkaSource([broker().address], ["no-such-topic"], { tail: false }));
  await expect(runMain(flow)).rejects.toThrow(
    `step "kafka_read.in" failed: Error: Kafka topic "no-such-topic" does not exist on brokers ${broker().address}; create it first`,
  );
});

test("bad options name the option", () => {
  expect(() => new KafkaSource([broker().address], [])).toThrow(
    "KafkaSource topics must list at least one topic, got []",
  );
  expect(() => new KafkaSource([], ["t"])).toThrow('KafkaSource brokers must list at least one "host:port"');
  expect(() => new KafkaSource(["b:1"], ["t"], { startingOffset: "latest" as "end" })).toThrow(
    'KafkaSource startingOffset must be "beginning", "end" or an offset >= 0, got "latest"',
  );
});
