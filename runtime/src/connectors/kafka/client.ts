/**
 * The Kafka client behind the connector: the only file that knows `@platformatic/kafka`.
 * It offers what the source and sink need in their own terms — partition counts, offsets,
 * a fetch of committed records from one partition, an idempotent or transactional
 * producer, and the raw EndTxn that settles a transaction recorded before a crash — so a
 * change of client stays here.
 */
import {
  Admin,
  type API,
  type Broker,
  Connection,
  type ConnectionOptions,
  Consumer,
  endTxnV4,
  FindCoordinatorKeyTypes,
  type fetchV17,
  findCoordinatorV6,
  type KafkaRecord,
  kGetApi,
  kGetConnection,
  type MessageToProduce,
  Producer,
  type RecordsBatch,
} from "@platformatic/kafka";
import { describeSecurity, type KafkaSecurity } from "./security.ts";

/** Client options passed through to `@platformatic/kafka` (timeouts, SASL, TLS, ...). */
export type KafkaClientConfig = Readonly<Record<string, unknown>>;

/**
 * The client options with our SASL and TLS settings mapped onto the client's `sasl` and
 * `tls` (Node's TLS options); a setting of ours replaces the same one in `config`.
 */
export function clientConfig(config: KafkaClientConfig, security: KafkaSecurity): KafkaClientConfig {
  const { sasl, tls } = security;
  return {
    ...config,
    ...(sasl && { sasl: { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password() } }),
    ...(tls && { tls: { ...tls.pem() } }),
  };
}

/**
 * How a source or sink connects: the user's client options and its SASL and TLS. The
 * security stays private (the password and client key must not show wherever the owner
 * is printed), and the client options with it are made on first use, when the password
 * and certificate files are read.
 */
export class KafkaConnection {
  readonly #config: KafkaClientConfig;
  readonly #security: KafkaSecurity;
  #client: KafkaClientConfig | undefined;

  constructor(config: KafkaClientConfig, security: KafkaSecurity) {
    this.#config = config;
    this.#security = security;
  }

  /** The client options; reads the password and certificate files the first time. */
  client(): KafkaClientConfig {
    this.#client ??= clientConfig(this.#config, this.#security);
    return this.#client;
  }

  /** A client error in one line, saying when authentication or TLS failed. */
  describeError(err: unknown): string {
    return describeClientError(err, this.#security);
  }

  /** SASL and TLS as they may be shown: mechanism, user and CA file, never a secret. */
  describe(): string {
    return describeSecurity(this.#security);
  }
}

const READ_COMMITTED = 1;
const READ_UNCOMMITTED = 0;
/** Batch attribute bits (Kafka's record batch format v2). */
const TRANSACTIONAL = 0x10;
const CONTROL = 0x20;
/** Server error codes the transaction resolution expects. */
const CONCURRENT_TRANSACTIONS = 51;
const INVALID_TXN_STATE = 48;
const INVALID_PRODUCER_EPOCH = 47;
const PRODUCER_FENCED = 90;

export interface FetchedRecord {
  readonly offset: bigint;
  readonly timestamp: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: readonly (readonly [Buffer | null, Buffer | null])[];
}

export interface FetchedPartition {
  readonly records: FetchedRecord[];
  /** The offset to fetch next (past control records and aborted transactions too). */
  readonly next: bigint;
  /** The offset after the last record a read_committed reader may see (the last stable offset). */
  readonly end: bigint;
}

export interface RecordToProduce {
  readonly topic: string;
  readonly key?: Buffer;
  readonly value?: Buffer;
  readonly partition?: number;
  readonly headers?: ReadonlyMap<string, Buffer>;
}

/** Errors of the client, with the broker's error code when there is one. */
function serverCode(err: unknown): number | undefined {
  const errors = (err as { errors?: unknown[] }).errors;
  const first = Array.isArray(errors) ? errors[0] : err;
  const code = (first as { apiCode?: unknown }).apiCode;
  return typeof code === "number" ? code : undefined;
}

/** TLS failures as Node reports them (certificate checks, handshake alerts). */
const TLS_CODES = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|HOSTNAME|ALTNAME/;

/**
 * One line for a client error: the cause under the client's wrappers (MultipleErrors,
 * "Connection to ... failed."), and, for a refused login or a failed TLS handshake,
 * what was tried — the mechanism, user and CA file, never the password.
 */
export function describeClientError(err: unknown, security: KafkaSecurity = {}): string {
  const chain: unknown[] = [];
  for (let e: unknown = err; e !== null && e !== undefined && chain.length < 20; ) {
    chain.push(e);
    const errors = (e as { errors?: unknown[] }).errors;
    e = Array.isArray(errors) && errors.length > 0 ? errors[0] : (e as { cause?: unknown }).cause;
  }
  const code = (e: unknown): string => String((e as { code?: unknown }).code ?? "");
  const message = (e: unknown): string => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ");
  if (chain.some((e) => code(e) === "PLT_KFK_AUTHENTICATION")) {
    const sasl = security.sasl;
    const who = sasl === undefined ? "" : ` for ${sasl.mechanism} user ${JSON.stringify(sasl.username)}`;
    return `authentication failed${who}: check the username and password`;
  }
  const tls = chain.find((e) => TLS_CODES.test(code(e)) || /TLS handshake/.test(message(e)));
  if (tls !== undefined) {
    const ca = security.tls === undefined ? "" : ` (CA: ${security.tls.caFile ?? "the system's"})`;
    return `TLS handshake failed: ${message(tls)}${ca}`;
  }
  return message(chain[chain.length - 1]);
}

function base(clientId: string, brokers: readonly string[], config: KafkaClientConfig) {
  return { retries: 3, retryDelay: 250, ...config, clientId, bootstrapBrokers: [...brokers] };
}

/** Metadata and offsets: what the source needs before it reads. */
export class KafkaAdmin {
  readonly #admin: Admin;
  readonly #consumer: Consumer;
  readonly brokers: readonly string[];

  constructor(brokers: readonly string[], config: KafkaClientConfig = {}) {
    this.brokers = brokers;
    this.#admin = new Admin(base("waxflow-admin", brokers, config));
    this.#consumer = new Consumer({ ...base("waxflow-offsets", brokers, config), groupId: "waxflow-offsets" });
  }

  /** Partition count of each topic; a topic that does not exist is missing from the map. */
  async partitionCounts(topics: readonly string[]): Promise<Map<string, number>> {
    const existing = new Set(await this.#admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length === 0) return new Map();
    const metadata = await this.#admin.metadata({ topics: present, autocreateTopics: false });
    const counts = new Map<string, number>();
    for (const [name, topic] of metadata.topics) counts.set(name, topic.partitionsCount);
    return counts;
  }

  /** The earliest offset, or the end (last stable offset when `committed`), of each partition of `topic`. */
  async offsets(topic: string, which: "earliest" | "end", committed: boolean): Promise<bigint[]> {
    const offsets = await this.#consumer.listOffsets({
      topics: [topic],
      timestamp: which === "earliest" ? -2n : -1n,
      isolationLevel: committed ? READ_COMMITTED : READ_UNCOMMITTED,
    });
    return offsets.get(topic) ?? [];
  }

  async createTopic(topic: string, partitions: number): Promise<void> {
    await this.#admin.createTopics({ topics: [topic], partitions, replicas: 1 });
  }

  async close(): Promise<void> {
    await Promise.all([this.#admin.close(), this.#consumer.close()]);
  }
}

/** Reads one partition by offset, without a consumer group: the source keeps the offset. */
export class PartitionReader {
  readonly topic: string;
  readonly partition: number;
  readonly #consumer: Consumer;
  readonly #isolation: number;
  readonly #maxBytes: number;
  #topicId: string | undefined;
  #leader: Broker | undefined;

  constructor(
    brokers: readonly string[],
    topic: string,
    partition: number,
    opts: { readonly committed: boolean; readonly maxBytes: number; readonly config: KafkaClientConfig },
  ) {
    this.topic = topic;
    this.partition = partition;
    this.#isolation = opts.committed ? READ_COMMITTED : READ_UNCOMMITTED;
    this.#maxBytes = opts.maxBytes;
    this.#consumer = new Consumer({
      ...base(`waxflow-${topic}-${partition}`, brokers, opts.config),
      groupId: "waxflow",
    });
  }

  /** Records from `offset` on, waiting up to `waitMs` for some to arrive. */
  async fetch(offset: bigint, waitMs: number): Promise<FetchedPartition> {
    if (this.#topicId === undefined || this.#leader === undefined) {
      const metadata = await this.#consumer.metadata({ topics: [this.topic] });
      const topic = metadata.topics.get(this.topic);
      if (topic === undefined) throw new Error(`topic ${this.topic} not found`);
      const leader = metadata.brokers.get(topic.partitions[this.partition]?.leader ?? -1);
      if (leader === undefined) throw new Error(`${this.topic}/${this.partition} has no leader`);
      this.#topicId = topic.id;
      this.#leader = leader;
    }
    const response = await this.#fetchRaw(this.#leader, waitMs, {
      topicId: this.#topicId,
      partitions: [
        {
          partition: this.partition,
          currentLeaderEpoch: -1,
          fetchOffset: offset,
          lastFetchedEpoch: -1,
          partitionMaxBytes: this.#maxBytes,
        },
      ],
    }).catch((err: unknown) => {
      // The leader may have moved: look it up again on the next fetch.
      this.#leader = undefined;
      throw err;
    });
    const part = response.responses[0]?.partitions[0];
    if (part === undefined) return { records: [], next: offset, end: offset };
    if (part.errorCode !== 0)
      throw new Error(`fetch of ${this.topic}/${this.partition} failed with error ${part.errorCode}`);
    // As Kafka's own consumer does: aborted transactions (from this response) start at
    // their first offset, and each ends at its producer's abort marker.
    const aborts = [...part.abortedTransactions].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : 1));
    const abortedProducers = new Set<bigint>();
    const records: FetchedRecord[] = [];
    let next = offset;
    for (const batch of part.records ?? []) {
      const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      if (last < offset) continue;
      if (last + 1n > next) next = last + 1n;
      while (aborts.length > 0 && (aborts[0]?.firstOffset ?? last + 1n) <= last) {
        abortedProducers.add((aborts.shift() as { producerId: bigint }).producerId);
      }
      if ((batch.attributes & CONTROL) !== 0) {
        if (isAbortMarker(batch)) abortedProducers.delete(batch.producerId);
        continue;
      }
      const aborted =
        this.#isolation === READ_COMMITTED &&
        (batch.attributes & TRANSACTIONAL) !== 0 &&
        abortedProducers.has(batch.producerId);
      if (aborted) continue;
      for (const record of batch.records) {
        const at = batch.firstOffset + BigInt(record.offsetDelta);
        if (at >= offset) records.push(toFetched(batch, record, at));
      }
    }
    return { records, next, end: this.#isolation === READ_COMMITTED ? part.lastStableOffset : part.highWatermark };
  }

  /**
   * The Fetch request the broker and client agreed on, sent on the consumer's connection
   * but not through `Consumer.fetch`: that one filters read_committed responses itself,
   * and its filter throws, uncatchably, on an abort marker that no aborted transaction of
   * the response announces (a transaction that aborted without writing to this partition,
   * as a fenced one may). `fetch` above filters as Kafka's Java consumer does.
   */
  async #fetchRaw(leader: Broker, waitMs: number, topic: FetchRequestTopic): Promise<FetchResponse> {
    const fetchApi = await new Promise<FetchApi>((done, fail) =>
      this.#consumer[kGetApi]<FetchArgs, FetchResponse>("Fetch", (err, api) =>
        err !== null || api === undefined ? fail(err) : done(api),
      ),
    );
    const connection = await new Promise<Connection>((done, fail) =>
      this.#consumer[kGetConnection](leader, (err, c) => (err !== null || c === undefined ? fail(err) : done(c))),
    );
    return await fetchApi.async(connection, waitMs, 1, this.#maxBytes, this.#isolation, 0, -1, [topic], [], "");
  }

  async close(): Promise<void> {
    await this.#consumer.close();
  }
}

type FetchRequestTopic = fetchV17.FetchRequestTopic;
type FetchResponse = fetchV17.FetchResponse;
type FetchArgs = [
  maxWaitMs: number,
  minBytes: number,
  maxBytes: number,
  isolationLevel: number,
  sessionId: number,
  sessionEpoch: number,
  topics: FetchRequestTopic[],
  forgottenTopicsData: { topic: string; partitions: number[] }[],
  rackId: string,
];
type FetchApi = API<FetchArgs, FetchResponse>;

/** A control batch's record key is a version and a type: 0 aborts, 1 commits. */
function isAbortMarker(batch: RecordsBatch): boolean {
  const key = batch.records[0]?.key;
  return key !== null && key !== undefined && key.length >= 4 && key.readInt16BE(2) === 0;
}

function toFetched(batch: RecordsBatch, record: KafkaRecord, offset: bigint): FetchedRecord {
  return {
    offset,
    timestamp: batch.firstTimestamp + record.timestampDelta,
    key: record.key,
    value: record.value,
    headers: record.headers,
  };
}

function toProduce(record: RecordToProduce): MessageToProduce {
  const message: MessageToProduce = { topic: record.topic };
  if (record.key !== undefined) message.key = record.key;
  if (record.value !== undefined) message.value = record.value;
  if (record.partition !== undefined) message.partition = record.partition;
  if (record.headers !== undefined) message.headers = new Map([...record.headers].map(([k, v]) => [Buffer.from(k), v]));
  return message;
}

/** An idempotent producer: at-least-once, no duplicates from its own retries. */
export class IdempotentProducer {
  readonly #producer: Producer;

  constructor(brokers: readonly string[], clientId: string, config: KafkaClientConfig) {
    this.#producer = new Producer({ ...base(clientId, brokers, config), idempotent: true, acks: -1 });
  }

  async send(records: readonly RecordToProduce[]): Promise<void> {
    if (records.length > 0) await this.#producer.send({ messages: records.map(toProduce) });
  }

  async close(): Promise<void> {
    await this.#producer.close();
  }
}

/** What settles a transaction from another process: its id and the producer's id and epoch. */
export interface TransactionHandle {
  readonly transactionalId: string;
  readonly producerId: bigint;
  readonly producerEpoch: number;
}

/**
 * A transactional producer with one fixed transactional id. Its first transaction fences
 * every earlier producer of the id, which aborts a transaction they left open.
 */
export class TransactionalProducer {
  readonly transactionalId: string;
  readonly #producer: Producer;
  #transaction: Awaited<ReturnType<Producer["beginTransaction"]>> | undefined;

  constructor(brokers: readonly string[], transactionalId: string, timeoutMs: number, config: KafkaClientConfig) {
    this.transactionalId = transactionalId;
    // The client sends its request timeout as the transaction timeout of InitProducerId.
    this.#producer = new Producer({
      ...base(transactionalId, brokers, config),
      // Registering an id whose transaction is being aborted answers CONCURRENT_TRANSACTIONS
      // until the abort markers are written: seconds on a busy broker.
      retries: 40,
      timeout: timeoutMs,
      transactionalId,
      idempotent: true,
      acks: -1,
      // InitProducerId as a new producer: a producer id and epoch given here would be
      // checked against the id's current ones (KIP-360) and refused as fenced.
      producerId: -1n,
      producerEpoch: -1,
    });
  }

  /** Registers the id with its coordinator, fencing older producers of it, without writing. */
  async fence(): Promise<void> {
    const transaction = await this.#producer.beginTransaction();
    await transaction.cancel();
  }

  get open(): boolean {
    return this.#transaction !== undefined;
  }

  /** Writes into the open transaction, beginning one if none is open. */
  async send(records: readonly RecordToProduce[]): Promise<void> {
    if (records.length === 0) return;
    this.#transaction ??= await this.#producer.beginTransaction();
    await this.#transaction.send({ messages: records.map(toProduce) });
  }

  /** The open transaction's handle, for the snapshot; undefined when nothing was written. */
  handle(): TransactionHandle | undefined {
    const { producerId, producerEpoch } = this.#producer;
    if (this.#transaction === undefined || producerId === undefined || producerEpoch === undefined) return undefined;
    return { transactionalId: this.transactionalId, producerId, producerEpoch };
  }

  async commit(): Promise<void> {
    const transaction = this.#transaction;
    if (transaction === undefined) return;
    await transaction.commit();
    this.#transaction = undefined;
  }

  async close(): Promise<void> {
    await this.#producer.close(true);
  }
}

/**
 * Commits a transaction that a producer of another process (now gone) left prepared, by
 * sending EndTxn with that producer's id and epoch, as Flink's Kafka sink does. It must
 * run before any producer registers the id again, which would abort the transaction.
 * A transaction already committed, or one that never wrote, needs nothing. An id
 * registered again since (a newer producer epoch) was settled by an earlier resume: a
 * resume registers an id only after committing its recorded transaction.
 */
export async function commitRecordedTransaction(
  brokers: readonly string[],
  handle: TransactionHandle,
  config: KafkaClientConfig,
): Promise<void> {
  const admin = new Admin(base("waxflow-resolve", brokers, config));
  try {
    const metadata = await admin.metadata({ topics: [] });
    const bootstrap = [...metadata.brokers.values()][0];
    if (bootstrap === undefined) throw new Error(`no broker answered at ${brokers.join(",")}`);
    const coordinator = await withConnection(bootstrap, config, async (connection) => {
      const found = await findCoordinatorV6.api.async(connection, FindCoordinatorKeyTypes.TRANSACTION, [
        handle.transactionalId,
      ]);
      const c = found.coordinators[0];
      if (c === undefined || c.errorCode !== 0) throw new Error(`no coordinator for ${handle.transactionalId}`);
      return { host: c.host, port: c.port };
    });
    await withConnection(coordinator, config, async (connection) => {
      for (let attempt = 0; ; attempt++) {
        try {
          await endTxnV4.api.async(connection, handle.transactionalId, handle.producerId, handle.producerEpoch, true);
          return;
        } catch (err) {
          const code = serverCode(err);
          if (code === INVALID_TXN_STATE || code === INVALID_PRODUCER_EPOCH || code === PRODUCER_FENCED) return;
          if (code !== CONCURRENT_TRANSACTIONS || attempt > 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    });
  } finally {
    await admin.close();
  }
}

async function withConnection<T>(
  broker: { readonly host: string; readonly port: number },
  config: KafkaClientConfig,
  body: (connection: Connection) => Promise<T>,
): Promise<T> {
  // The connection authenticates as the client's own do: same TLS and SASL options.
  const { tls, ssl, sasl, tlsServerName, connectTimeout, requestTimeout } = config as ConnectionOptions;
  const connection = new Connection("waxflow-resolve", {
    ...(tls !== undefined && { tls }),
    ...(ssl !== undefined && { ssl }),
    ...(sasl !== undefined && { sasl }),
    ...(tlsServerName !== undefined && { tlsServerName }),
    ...(connectTimeout !== undefined && { connectTimeout }),
    ...(requestTimeout !== undefined && { requestTimeout }),
  });
  try {
    await connection.connect(broker.host, broker.port);
    return await body(connection);
  } finally {
    await connection.close();
  }
}
