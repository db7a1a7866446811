/**
 * Kafka -> map -> Kafka, 1M messages of about 100 bytes, 1 worker, against a real
 * broker (runtime/test/kafka/broker.ts): the bare client consuming and producing the
 * same messages without a dataflow, the dataflow at-least-once, and exactly-once with
 * 1 s snapshots, once each in the same run. Targets, as time ratios (lower is better):
 * at-least-once takes at most 1/0.7 of the bare client's time, exactly-once at most
 * 1/0.7 of at-least-once's.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Dataflow } from "waxflow";
import { type DeliveryGuarantee, KafkaSink, type KafkaSinkMessage, KafkaSource } from "waxflow/connectors/kafka";
import * as op from "waxflow/operators";
import { runMain } from "waxflow/testing";
import {
  IdempotentProducer,
  KafkaAdmin,
  PartitionReader,
  type RecordToProduce,
} from "../../runtime/src/connectors/kafka/client.ts";
import { type Broker, KAFKA_VERSION, startBroker } from "../../runtime/test/kafka/broker.ts";
import { type BenchCase, expectEqual, type Figure } from "../harness.ts";

const N = 1_000_000;
const PARTITIONS = 1;
const MIN_RATIO = 0.7;

/** About 100 bytes: a JSON event like the anonymize example's. */
const event = (i: number): Buffer =>
  Buffer.from(JSON.stringify({ id: i, email: `user${i % 1000}@example.com`, action: "login", at: 1_700_000_000 + i }));

const upper = (value: Buffer | null): Buffer => Buffer.from((value ?? Buffer.alloc(0)).toString().toUpperCase());

async function fill(broker: Broker, topic: string): Promise<void> {
  const producer = new IdempotentProducer([broker.address], "bench-fill", {});
  try {
    for (let i = 0; i < N; i += 10_000) {
      await producer.send(Array.from({ length: 10_000 }, (_, j) => ({ topic, value: event(i + j) })));
    }
  } finally {
    await producer.close();
  }
}

/** Messages a read_committed consumer sees in `topic` (offsets would count transaction markers too). */
async function committedCount(broker: Broker, topic: string): Promise<number> {
  const admin = new KafkaAdmin([broker.address]);
  const [end = 0n] = await admin.offsets(topic, "end", true).finally(() => admin.close());
  const reader = new PartitionReader([broker.address], topic, 0, { committed: true, maxBytes: 8 << 20, config: {} });
  try {
    let count = 0;
    for (let offset = 0n; offset < end; ) {
      const fetched = await reader.fetch(offset, 100);
      count += fetched.records.filter((r) => r.offset < end).length;
      offset = fetched.next;
    }
    return count;
  } finally {
    await reader.close();
  }
}

/** The bare client: read every message by offset, map it, write it with an idempotent producer. */
async function bare(broker: Broker, from: string, to: string): Promise<void> {
  const reader = new PartitionReader([broker.address], from, 0, { committed: true, maxBytes: 4 << 20, config: {} });
  const producer = new IdempotentProducer([broker.address], "bench-bare", {});
  try {
    let offset = 0n;
    while (offset < BigInt(N)) {
      const fetched = await reader.fetch(offset, 100);
      const out: RecordToProduce[] = fetched.records.map((r) => ({ topic: to, value: upper(r.value) }));
      for (let i = 0; i < out.length; i += 1000) await producer.send(out.slice(i, i + 1000));
      offset = fetched.next;
    }
  } finally {
    await Promise.all([reader.close(), producer.close()]);
  }
}

async function dataflow(broker: Broker, from: string, to: string, guarantee: DeliveryGuarantee): Promise<void> {
  const flow = new Dataflow("bench_kafka");
  const messages = op.input("in", flow, new KafkaSource([broker.address], [from], { tail: false }));
  const mapped = op.map("upper", messages, (m): KafkaSinkMessage => ({ value: upper(m.value) }));
  op.output("out", mapped, new KafkaSink([broker.address], to, { deliveryGuarantee: guarantee }));
  const dir = guarantee === "exactly-once" ? mkdtempSync(join(tmpdir(), "waxflow-bench-kafka-")) : undefined;
  try {
    await runMain(flow, {
      epochIntervalMs: 1000,
      recovery: dir === undefined ? undefined : { dbDir: dir, init: true },
    });
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

export const kafka: BenchCase = {
  title: `Kafka -> map -> Kafka, 1M messages of ~100 B, 1 worker (Kafka ${KAFKA_VERSION}, one run each)`,
  targets: {},
  async prepare() {
    return {
      async measure(): Promise<readonly Figure[]> {
        const broker = await startBroker();
        try {
          const admin = new KafkaAdmin([broker.address]);
          const topics = ["in", "bare", "alo", "eo"];
          for (const t of topics) await admin.createTopic(t, PARTITIONS);
          await admin.close();
          await fill(broker, "in");
          const timed = async (to: string, run: () => Promise<void>): Promise<number> => {
            const t0 = performance.now();
            await run();
            const seconds = (performance.now() - t0) / 1000;
            expectEqual(`kafka ${to} messages written`, await committedCount(broker, to), N);
            return seconds;
          };
          const bareS = await timed("bare", () => bare(broker, "in", "bare"));
          const aloS = await timed("alo", () => dataflow(broker, "in", "alo", "at-least-once"));
          const eoS = await timed("eo", () => dataflow(broker, "in", "eo", "exactly-once"));
          const rate = (s: number): number => Math.round(N / s);
          return [
            { name: "bare client", value: rate(bareS), unit: "msg/s" },
            { name: "at-least-once", value: rate(aloS), unit: "msg/s" },
            { name: "exactly-once (1 s snapshots)", value: rate(eoS), unit: "msg/s" },
            { name: "at-least-once time / bare client time", value: aloS / bareS, unit: "x", below: 1 / MIN_RATIO },
            { name: "exactly-once time / at-least-once time", value: eoS / aloS, unit: "x", below: 1 / MIN_RATIO },
          ];
        } finally {
          await broker.stop();
        }
      },
    };
  },
};
