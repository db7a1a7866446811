/**
 * Topics on a broker, with the client the connector uses: create them, produce, and read
 * one back as a read_committed consumer sees it. No vitest here: console.ts uses it too.
 */
import {
  IdempotentProducer,
  KafkaAdmin,
  PartitionReader,
  type RecordToProduce,
} from "../../src/connectors/kafka/client.ts";

/** A broker as these helpers need it: its `host:port`. */
export interface BrokerAddress {
  readonly address: string;
}

let topics = 0;

/** A new topic with `partitions` partitions and a name unique in this test run. */
export async function createTopic(broker: BrokerAddress, prefix: string, partitions: number): Promise<string> {
  const topic = `${prefix}-${process.pid}-${++topics}`;
  const admin = new KafkaAdmin([broker.address]);
  try {
    await admin.createTopic(topic, partitions);
  } finally {
    await admin.close();
  }
  return topic;
}

export async function produce(broker: BrokerAddress, records: readonly RecordToProduce[]): Promise<void> {
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

/** Every record of `topic` a read_committed consumer sees now; all partitions unless `partitions` says how many. */
export async function readTopic(broker: BrokerAddress, topic: string, partitions?: number): Promise<ReadRecord[]> {
  const admin = new KafkaAdmin([broker.address]);
  const ends = await admin.offsets(topic, "end", true).finally(() => admin.close());
  const out: ReadRecord[] = [];
  for (let p = 0; p < (partitions ?? ends.length); p++) {
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
