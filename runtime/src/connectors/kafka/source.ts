/**
 * KafkaSource: a fixed-partitioned source with one partition per Kafka (topic,
 * partition), named `"<partition>-<topic>"` as in Bytewax. Each partition reads by offset
 * without a consumer group; its snapshot is the next offset, so a resume continues
 * exactly where the last durable epoch ended, whatever `startingOffset` says.
 */
import { inspect } from "node:util";
import { currentWorker } from "../../engine/worker-scope.ts";
import {
  checkBatchSize,
  DEFAULT_BATCH_SIZE,
  type FixedPartitionedSource,
  type StatefulSourcePartition,
} from "../../inputs.ts";
import { type FetchedRecord, KafkaAdmin, type KafkaClientConfig, KafkaConnection, PartitionReader } from "./client.ts";
import type { KafkaSourceMessage } from "./messages.ts";
import { kafkaMetrics } from "./metrics.ts";
import { type KafkaSecurityOptions, resolveKafkaSecurity } from "./security.ts";

export type StartingOffset = "beginning" | "end" | number;

export interface KafkaSourceOptions extends KafkaSecurityOptions {
  /** Keep reading new messages (default); false ends each partition at the end it had at start. */
  readonly tail?: boolean;
  /** Where a partition without a snapshot starts (default "beginning"). */
  readonly startingOffset?: StartingOffset;
  /** Messages per batch at most (default 1000). */
  readonly batchSize?: number;
  /** Fail the dataflow on a read error (default); false emits the error as a message with `error` set. */
  readonly raiseOnErrors?: boolean;
  /** Read only committed transactions (default), so one dataflow reads only what another committed. */
  readonly readCommitted?: boolean;
  /** Client options passed to `@platformatic/kafka`; `sasl` and `tls` above take precedence. */
  readonly config?: KafkaClientConfig;
}

/** How long a fetch waits at the broker for new messages: short, since an epoch close waits for it. */
const FETCH_WAIT_MS = 50;
/** Bytes per fetch; a batch of 1000 small messages fits many times over. */
const FETCH_BYTES = 4 << 20;

function checkBrokers(what: string, brokers: readonly string[]): readonly string[] {
  if (!Array.isArray(brokers) || brokers.length === 0 || brokers.some((b) => typeof b !== "string" || b === "")) {
    throw new RangeError(`${what} brokers must list at least one "host:port", got ${JSON.stringify(brokers)}`);
  }
  return brokers;
}

export { checkBrokers };

function checkStartingOffset(value: unknown): StartingOffset {
  if (value === "beginning" || value === "end") return value;
  if (typeof value === "number" && Number.isInteger(value) && value >= 0) return value;
  throw new RangeError(
    `KafkaSource startingOffset must be "beginning", "end" or an offset >= 0, got ${JSON.stringify(value)}`,
  );
}

function partitionName(topic: string, partition: number): string {
  return `${partition}-${topic}`;
}

function parsePartitionName(name: string): { topic: string; partition: number } {
  const m = /^(\d+)-(.+)$/.exec(name);
  if (m === null) throw new Error(`${JSON.stringify(name)} is not a Kafka partition name ("<partition>-<topic>")`);
  return { partition: Number(m[1]), topic: m[2] as string };
}

export class KafkaSource implements FixedPartitionedSource<KafkaSourceMessage, number> {
  readonly brokers: readonly string[];
  readonly topics: readonly string[];
  readonly tail: boolean;
  readonly startingOffset: StartingOffset;
  readonly batchSize: number;
  readonly raiseOnErrors: boolean;
  readonly readCommitted: boolean;
  readonly config: KafkaClientConfig;
  readonly #connection: KafkaConnection;

  constructor(brokers: readonly string[], topics: readonly string[], options: KafkaSourceOptions = {}) {
    this.brokers = checkBrokers("KafkaSource", brokers);
    if (!Array.isArray(topics) || topics.length === 0 || topics.some((t) => typeof t !== "string" || t === "")) {
      throw new RangeError(`KafkaSource topics must list at least one topic, got ${JSON.stringify(topics)}`);
    }
    this.topics = topics;
    this.tail = options.tail ?? true;
    this.startingOffset = checkStartingOffset(options.startingOffset ?? "beginning");
    this.batchSize = checkBatchSize("KafkaSource", options.batchSize ?? DEFAULT_BATCH_SIZE);
    this.raiseOnErrors = options.raiseOnErrors ?? true;
    this.readCommitted = options.readCommitted ?? true;
    this.config = options.config ?? {};
    this.#connection = new KafkaConnection(this.config, resolveKafkaSecurity("KafkaSource", options));
  }

  /** SASL and TLS as they may be shown: mechanism, user and CA file, never a secret. */
  get security(): string {
    return this.#connection.describe();
  }

  [inspect.custom](): string {
    return `KafkaSource { brokers: ${this.brokers.join(",")}, topics: ${this.topics.join(",")}, ${this.security} }`;
  }

  async listParts(): Promise<string[]> {
    const admin = new KafkaAdmin(this.brokers, this.#connection.client());
    try {
      let counts: Map<string, number>;
      try {
        counts = await admin.partitionCounts(this.topics);
      } catch (err) {
        throw new Error(`cannot reach Kafka brokers ${this.brokers.join(",")}: ${this.#connection.describeError(err)}`);
      }
      const missing = this.topics.filter((t) => !counts.has(t));
      if (missing.length > 0) {
        throw new Error(
          `Kafka topic ${missing.map((t) => JSON.stringify(t)).join(", ")} does not exist on brokers ${this.brokers.join(",")}; create it first`,
        );
      }
      return this.topics.flatMap((topic) =>
        Array.from({ length: counts.get(topic) ?? 0 }, (_, p) => partitionName(topic, p)),
      );
    } finally {
      await admin.close();
    }
  }

  async buildPart(stepId: string, forPart: string, resumeState: number | undefined): Promise<KafkaPartition> {
    const { topic, partition } = parsePartitionName(forPart);
    let start = resumeState;
    let end: number | undefined;
    if (start === undefined || !this.tail) {
      const admin = new KafkaAdmin(this.brokers, this.#connection.client());
      try {
        if (start === undefined) {
          if (typeof this.startingOffset === "number") start = this.startingOffset;
          else {
            const which = this.startingOffset === "beginning" ? "earliest" : "end";
            start = Number((await admin.offsets(topic, which, this.readCommitted))[partition] ?? 0n);
          }
        }
        if (!this.tail) end = Number((await admin.offsets(topic, "end", this.readCommitted))[partition] ?? 0n);
      } finally {
        await admin.close();
      }
    }
    const reader = new PartitionReader(this.brokers, topic, partition, {
      committed: this.readCommitted,
      maxBytes: FETCH_BYTES,
      config: this.#connection.client(),
    });
    return new KafkaPartition(stepId, reader, start, end, this, (err) => this.#connection.describeError(err));
  }
}

class KafkaPartition implements StatefulSourcePartition<KafkaSourceMessage, number> {
  readonly #reader: PartitionReader;
  readonly #end: number | undefined;
  readonly #source: KafkaSource;
  readonly #lag: (lag: number) => void;
  readonly #unlisted: () => void;
  readonly #counted: (n: number) => void;
  #offset: number;
  /** The partition's end (its last stable offset when reading committed) at the last fetch. */
  #brokerEnd: number | undefined;
  /** Records fetched beyond the batch size, handed out next. */
  #ahead: FetchedRecord[] = [];

  readonly #describe: (err: unknown) => string;

  constructor(
    stepId: string,
    reader: PartitionReader,
    start: number,
    end: number | undefined,
    source: KafkaSource,
    describe: (err: unknown) => string,
  ) {
    this.#describe = describe;
    this.#reader = reader;
    this.#offset = start;
    this.#end = end;
    this.#source = source;
    const worker = currentWorker();
    const labels = {
      step_id: stepId,
      topic: reader.topic,
      partition: String(reader.partition),
      ...(worker === undefined ? {} : { worker: String(worker) }),
    };
    this.#lag = (lag) => kafkaMetrics().consumerLag.set(labels, lag);
    // A partition this worker no longer reads has no lag here: its series must not stay at its last value.
    this.#unlisted = () => kafkaMetrics().consumerLag.remove(labels);
    this.#counted = (n) => kafkaMetrics().messagesIn.inc({ step_id: stepId, topic: reader.topic }, n);
  }

  nextBatch(): KafkaSourceMessage[] | null | Promise<KafkaSourceMessage[] | null> {
    if (this.#end !== undefined && this.#offset >= this.#end) return null;
    if (this.#ahead.length > 0) return this.#take();
    return this.#fetch();
  }

  snapshot(): number {
    return this.#offset;
  }

  async close(): Promise<void> {
    this.#unlisted();
    await this.#reader.close();
  }

  async #fetch(): Promise<KafkaSourceMessage[] | null> {
    let fetched: Awaited<ReturnType<PartitionReader["fetch"]>>;
    try {
      fetched = await this.#reader.fetch(BigInt(this.#offset), FETCH_WAIT_MS);
    } catch (err) {
      const error = `reading ${this.#reader.topic} partition ${this.#reader.partition} at offset ${this.#offset} from ${this.#source.brokers.join(",")}: ${this.#describe(err)}`;
      if (this.#source.raiseOnErrors) throw new Error(error);
      return [this.#failed(error)];
    }
    this.#brokerEnd = Number(fetched.end);
    this.#ahead = fetched.records;
    // Past control records and aborted transactions, even when nothing is handed out.
    if (fetched.records.length === 0) this.#offset = Math.max(this.#offset, Number(fetched.next));
    return this.#take();
  }

  #take(): KafkaSourceMessage[] {
    const { topic, partition } = this.#reader;
    const batch: KafkaSourceMessage[] = [];
    let taken = 0;
    for (const record of this.#ahead) {
      if (batch.length >= this.#source.batchSize) break;
      const offset = Number(record.offset);
      if (this.#end !== undefined && offset >= this.#end) break;
      taken++;
      batch.push({
        key: record.key,
        value: record.value,
        topic,
        partition,
        offset,
        timestamp: new Date(Number(record.timestamp)),
        headers: record.headers.map(([k, v]) => [k === null ? "" : k.toString(), v] as const),
      });
      this.#offset = offset + 1;
    }
    this.#ahead = taken === this.#ahead.length ? [] : this.#ahead.slice(taken);
    if (this.#end !== undefined && this.#ahead.length > 0 && Number(this.#ahead[0]?.offset) >= this.#end)
      this.#ahead = [];
    this.#counted(batch.length);
    // Fetched but not yet handed out is still lag: the dataflow has not read it.
    if (this.#brokerEnd !== undefined) this.#lag(Math.max(0, this.#brokerEnd - this.#offset));
    return batch;
  }

  #failed(error: string): KafkaSourceMessage {
    const { topic, partition } = this.#reader;
    return {
      key: null,
      value: null,
      topic,
      partition,
      offset: this.#offset,
      timestamp: new Date(),
      headers: [],
      error,
    };
  }
}
