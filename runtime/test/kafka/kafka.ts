/**
 * What the Kafka tests do to a broker directly, with the client the connector uses:
 * create topics, produce, and read a topic back as a read_committed consumer sees it.
 */
import { afterAll, beforeAll } from "vitest";
import {
  IdempotentProducer,
  KafkaAdmin,
  PartitionReader,
  type RecordToProduce,
} from "../../src/connectors/kafka/client.ts";
import { type Broker, startBroker } from "./broker.ts";

/** One broker for the tests of a file: started before them, stopped after. */
export function brokerForFile(): () => Broker {
  let broker: Broker | undefined;
  beforeAll(async () => {
    broker = await startBroker();
  }, 180_000);
  afterAll(async () => {
    await broker?.stop();
  });
  return () => {
    if (broker === undefined) throw new Error("the broker did not start");
    return broker;
  };
}

let topics = 0;

/** A new topic with `partitions` partitions and a name unique in this test run. */
export async function createTopic(broker: Broker, prefix: string, partitions: number): Promise<string> {
  const topic = `${prefix}-${process.pid}-${++topics}`;
  const admin = new KafkaAdmin([broker.address]);
  try {
    await admin.createTopic(topic, partitions);
  } finally {
    await admin.close();
  }
  return topic;
}

export async function produce(broker: Broker, records: readonly RecordToProduce[]): Promise<void> {
  const producer = new IdempotentProducer([broker.address], "test-producer", {});
  try {
    for (let i = 0; i < records.length; i += 1000) await producer.send(records.slice(i, i + 1000));
  } finally {
    await producer.close();
  }
}

export interface ReadRecord {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: string | null;
}

/** Every record of `topic` a read_committed consumer sees now, partition by partition. */
export async function readTopic(broker: Broker, topic: string, partitions: number): Promise<ReadRecord[]> {
  const admin = new KafkaAdmin([broker.address]);
  const ends = await admin.offsets(topic, "end", true).finally(() => admin.close());
  const out: ReadRecord[] = [];
  for (let p = 0; p < partitions; p++) {
    const reader = new PartitionReader([broker.address], topic, p, { committed: true, maxBytes: 4 << 20, config: {} });
    try {
      let offset = 0n;
      const end = ends[p] ?? 0n;
      while (offset < end) {
        const fetched = await reader.fetch(offset, 100);
        for (const r of fetched.records) {
          if (r.offset >= end) break;
          out.push({
            partition: p,
            offset: Number(r.offset),
            key: r.key?.toString() ?? null,
            value: r.value?.toString() ?? null,
          });
        }
        offset = fetched.next;
      }
    } finally {
      await reader.close();
    }
  }
  return out;
}
