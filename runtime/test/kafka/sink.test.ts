// KafkaSink and the Kafka operators against a real broker: at-least-once without
// recovery, exactly-once with it, serde errors to errs, and bad options.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { KafkaAdmin } from "../../src/connectors/kafka/client.ts";
import { KafkaSink, type KafkaSinkMessage, KafkaSource } from "../../src/connectors/kafka/index.ts";
import * as kop from "../../src/connectors/kafka/operators.ts";
import { Dataflow } from "../../src/dataflow.ts";
import * as op from "../../src/operators/index.ts";
import { runMain, TestingSink } from "../../src/testing.ts";
import { freePort } from "../support/ports.ts";
import { brokerForFile, createTopic, produce, readTopic } from "./kafka.ts";

const broker = brokerForFile();
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function recoveryDir(): { dbDir: string; init: boolean } {
  const dir = mkdtempSync(join(tmpdir(), "waxflow-kafka-sink-"));
  dirs.push(dir);
  return { dbDir: dir, init: true };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Kafka in -> value * 10 -> Kafka out. */
function copyFlow(from: string, sink: KafkaSink): Dataflow {
  const flow = new Dataflow("kafka_copy");
  // Small batches, so a run spans several epochs and transactions.
  const messages = op.input("in", flow, new KafkaSource([broker().address], [from], { tail: false, batchSize: 20 }));
  const out = op.map(
    "times10",
    messages,
    (m): KafkaSinkMessage => ({
      key: m.key,
      value: String(Number(m.value?.toString()) * 10),
    }),
  );
  op.output("out", out, sink);
  return flow;
}

async function filled(n: number): Promise<{ from: string; to: string }> {
  const from = await createTopic(broker(), "in", 2);
  const to = await createTopic(broker(), "out", 2);
  await produce(
    broker(),
    range(n).map((i) => ({ topic: from, key: Buffer.from(`k${i % 7}`), value: Buffer.from(String(i)) })),
  );
  return { from, to };
}

const outValues = async (topic: string): Promise<number[]> =>
  (await readTopic(broker(), topic, 2)).map((r) => Number(r.value)).sort((a, b) => a - b);

/**
 * What a read_committed consumer of `topic` sees once no transaction is open on it (the
 * last stable offset reached the high watermark). A commit is durable when EndTxn
 * returns, but its markers reach the partitions just after, and only then do the records
 * become visible.
 */
async function settled(topic: string): Promise<number[]> {
  const admin = new KafkaAdmin([broker().address]);
  try {
    await expect
      .poll(
        async () => {
          const [stable, high] = await Promise.all([
            admin.offsets(topic, "end", true),
            admin.offsets(topic, "end", false),
          ]);
          return stable.every((offset, p) => offset === high[p]);
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true);
  } finally {
    await admin.close();
  }
  return await outValues(topic);
}

test("at-least-once without recovery: every message arrives", async () => {
  const { from, to } = await filled(500);
  await runMain(copyFlow(from, new KafkaSink([broker().address], to)), { epochIntervalMs: 100 });
  expect(await settled(to)).toEqual(range(500).map((i) => i * 10));
}, 60_000);

test("exactly-once with recovery: each epoch's transaction commits, a rerun writes nothing again", async () => {
  const { from, to } = await filled(2000);
  const recovery = recoveryDir();
  const sink = new KafkaSink([broker().address], to);
  await runMain(copyFlow(from, sink), { epochIntervalMs: 10, recovery });
  expect(await settled(to)).toEqual(range(2000).map((i) => i * 10));
  await runMain(copyFlow(from, sink), { epochIntervalMs: 10, recovery });
  expect(await settled(to)).toEqual(range(2000).map((i) => i * 10));
}, 60_000);

test("a message names its topic when the sink has none; without either the step fails naming it", async () => {
  const { from, to } = await filled(10);
  const flow = new Dataflow("kafka_topics");
  const messages = op.input("in", flow, new KafkaSource([broker().address], [from], { tail: false }));
  op.output(
    "out",
    op.map("to", messages, (m): KafkaSinkMessage => ({ topic: to, value: m.value })),
    new KafkaSink([broker().address]),
  );
  await runMain(flow, { epochIntervalMs: 100 });
  expect(await settled(to)).toEqual(range(10));

  const bad = new Dataflow("kafka_no_topic");
  const again = op.input("in", bad, new KafkaSource([broker().address], [from], { tail: false }));
  op.output(
    "out",
    op.map("to", again, (m): KafkaSinkMessage => ({ value: m.value })),
    new KafkaSink([broker().address]),
  );
  await expect(runMain(bad)).rejects.toThrow("message has no topic and the KafkaSink names none");
}, 60_000);

test("a message that is not JSON reaches errs with its offset; raises on errs stops with that message", async () => {
  const from = await createTopic(broker(), "json", 1);
  await produce(
    broker(),
    ['{"a":1}', "not json", '{"a":3}'].map((v) => ({ topic: from, value: Buffer.from(v) })),
  );
  const flow = new Dataflow("kafka_json");
  const { oks, errs } = kop.input("in", flow, { brokers: [broker().address], topics: [from], tail: false });
  const decoded = kop.deserializeValue("json", oks, kop.json.deserialize);
  const good: unknown[] = [];
  const bad: kop.KafkaError<kop.KafkaSourceMessage>[] = [];
  op.output(
    "good",
    op.map("values", decoded.oks, (m) => m.value),
    new TestingSink(good),
  );
  op.output("bad", decoded.errs, new TestingSink(bad));
  op.raises("read_errors", errs);
  await runMain(flow, { epochIntervalMs: 100 });
  expect(good).toEqual([{ a: 1 }, { a: 3 }]);
  expect(bad).toHaveLength(1);
  expect(bad[0]?.msg.offset).toBe(1);
  expect(bad[0]?.msg.value?.toString()).toBe("not json");
  expect(bad[0]?.error).toMatch(/JSON/);

  const stops = new Dataflow("kafka_json_raises");
  const read = kop.input("in", stops, { brokers: [broker().address], topics: [from], tail: false });
  op.raises("bad_json", kop.deserializeValue("json", read.oks, kop.json.deserialize).errs);
  await expect(runMain(stops)).rejects.toThrow(
    /step "kafka_json_raises.bad_json" failed on item .*not json.*offset: 1/s,
  );
}, 60_000);

test("the output operator and string serde write what the input operator reads", async () => {
  const to = await createTopic(broker(), "serde", 1);
  const from = await createTopic(broker(), "serde-in", 1);
  await produce(
    broker(),
    ["a", "b"].map((v) => ({ topic: from, value: Buffer.from(v) })),
  );
  const flow = new Dataflow("kafka_serde");
  const { oks } = kop.input("in", flow, { brokers: [broker().address], topics: [from], tail: false });
  const text = kop.deserializeValue("utf8", oks, kop.utf8.deserialize).oks;
  const upper = op.map("upper", text, (m) => ({ key: "k", value: { v: m.value.toUpperCase() } }));
  kop.output("out", kop.serializeValue("json", upper, kop.json.serialize), { brokers: [broker().address], topic: to });
  await runMain(flow, { epochIntervalMs: 100 });
  expect((await readTopic(broker(), to, 1)).map((r) => [r.key, r.value])).toEqual([
    ["k", '{"v":"A"}'],
    ["k", '{"v":"B"}'],
  ]);
}, 60_000);

test("bad options fail with one line naming the option", async () => {
  const b = [broker().address];
  expect(() => new KafkaSink(b, "t", { deliveryGuarantee: "exactly-twice" as "exactly-once" })).toThrow(
    'KafkaSink deliveryGuarantee must be "exactly-once" or "at-least-once", got "exactly-twice"',
  );
  const { from, to } = await filled(1);
  const short = new KafkaSink(b, to, { transactionTimeoutMs: 5000, restartAllowanceMs: 4000 });
  await expect(runMain(copyFlow(from, short), { epochIntervalMs: 2000, recovery: recoveryDir() })).rejects.toThrow(
    "KafkaSink transactionTimeoutMs (5000 ms) must exceed the snapshot interval (2000 ms) plus restartAllowanceMs (4000 ms)",
  );
  const noRecovery = new KafkaSink(b, to, { deliveryGuarantee: "exactly-once" });
  await expect(runMain(copyFlow(from, noRecovery))).rejects.toThrow(
    'KafkaSink deliveryGuarantee "exactly-once" needs recovery: run with -r DIR',
  );
}, 60_000);

test("brokers that do not answer: one line naming them", async () => {
  const nobody = `127.0.0.1:${await freePort()}`;
  const flow = new Dataflow("kafka_down");
  op.output("out", op.input("in", flow, new KafkaSource([nobody], ["t"])), new TestingSink());
  const started = Date.now();
  await expect(runMain(flow)).rejects.toThrow(`cannot reach Kafka brokers ${nobody}`);
  expect(Date.now() - started).toBeLessThan(10_000);
}, 30_000);
