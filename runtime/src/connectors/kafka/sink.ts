/**
 * KafkaSink: writes `KafkaSinkMessage`s from every worker.
 *
 * - "at-least-once" (the default without recovery): an idempotent producer; a resumed
 *   epoch is written again, as with Bytewax's sink.
 * - "exactly-once" (the default with recovery): each worker writes an epoch's messages in
 *   one Kafka transaction, prepared at the epoch's close (its producer id and epoch go
 *   into the snapshot) and committed once every worker has made that epoch durable. The
 *   next transaction begins only after the previous one committed (messages wait in
 *   memory meanwhile), and consecutive transactions alternate between two transactional
 *   ids, so on resume the recorded transaction is the newest its id ever began: it is
 *   committed with EndTxn, then both ids are fenced, which aborts whatever the crashed
 *   worker had begun after it.
 *
 * Transactional ids are `waxflow:<step id>:<slot>:<0|1>`; the step id starts with the
 * dataflow's name and the slot is the worker index. After a scale-down the slots beyond
 * the worker count are settled the same way by worker `slot mod count`.
 */
import { inspect } from "node:util";
import type { StatelessSinkPartition, TransactionalSink, TransactionalSinkPartition } from "../../outputs.ts";
import {
  commitRecordedTransaction,
  IdempotentProducer,
  type KafkaClientConfig,
  KafkaConnection,
  type RecordToProduce,
  TransactionalProducer,
  type TransactionHandle,
} from "./client.ts";
import type { KafkaSinkMessage } from "./messages.ts";
import { kafkaMetrics } from "./metrics.ts";
import { type KafkaSecurityOptions, resolveKafkaSecurity } from "./security.ts";
import { checkBrokers } from "./source.ts";

export type DeliveryGuarantee = "exactly-once" | "at-least-once";

export interface KafkaSinkOptions extends KafkaSecurityOptions {
  /** Default: "exactly-once" with recovery on, "at-least-once" without. */
  readonly deliveryGuarantee?: DeliveryGuarantee;
  /**
   * How long the broker keeps a transaction open before aborting it (default 10 min,
   * at most the broker's transaction.max.timeout.ms, 15 min by default). It must cover a
   * snapshot interval plus a restart, or a transaction recorded before a crash is gone
   * when the resume commits it.
   */
  readonly transactionTimeoutMs?: number;
  /** The longest a crashed process takes to come back (default 60 s): part of the check above. */
  readonly restartAllowanceMs?: number;
  /** Client options passed to `@platformatic/kafka`; `sasl` and `tls` above take precedence. */
  readonly config?: KafkaClientConfig;
}

/** What a slot records in each snapshot. */
export interface KafkaSlotState {
  /** The number of the slot's next transaction: its parity picks the transactional id. */
  readonly next: number;
  /** The transaction prepared at this epoch's close, to commit on resume. */
  readonly prepared: TransactionHandle | null;
}

const DEFAULT_TRANSACTION_TIMEOUT_MS = 600_000;
const DEFAULT_RESTART_ALLOWANCE_MS = 60_000;
/** Messages per produce request at most, well under the broker's 1 MB request limit for small messages. */
const SEND_CHUNK = 2000;

function toRecord(stepId: string, topic: string | undefined, message: KafkaSinkMessage): RecordToProduce {
  if (typeof message !== "object" || message === null) {
    throw new TypeError(`step ${JSON.stringify(stepId)}: expected a KafkaSinkMessage, got ${String(message)}`);
  }
  const to = message.topic ?? topic;
  if (to === undefined) {
    throw new TypeError(`step ${JSON.stringify(stepId)}: message has no topic and the KafkaSink names none`);
  }
  const bytes = (v: Buffer | string | null | undefined): Buffer | undefined =>
    v === null || v === undefined ? undefined : typeof v === "string" ? Buffer.from(v) : v;
  return {
    topic: to,
    key: bytes(message.key),
    value: bytes(message.value),
    partition: message.partition,
    headers:
      message.headers === undefined ? undefined : new Map(message.headers.map(([k, v]) => [k, bytes(v) as Buffer])),
  };
}

export class KafkaSink implements TransactionalSink<KafkaSinkMessage, KafkaSlotState | null> {
  readonly brokers: readonly string[];
  readonly topic: string | undefined;
  readonly deliveryGuarantee: DeliveryGuarantee | undefined;
  readonly transactionTimeoutMs: number;
  readonly restartAllowanceMs: number;
  readonly config: KafkaClientConfig;
  readonly #connection: KafkaConnection;

  constructor(brokers: readonly string[], topic?: string, options: KafkaSinkOptions = {}) {
    this.brokers = checkBrokers("KafkaSink", brokers);
    if (topic !== undefined && (typeof topic !== "string" || topic === "")) {
      throw new RangeError(`KafkaSink topic must be a non-empty string or omitted, got ${JSON.stringify(topic)}`);
    }
    this.topic = topic;
    const guarantee = options.deliveryGuarantee;
    if (guarantee !== undefined && guarantee !== "exactly-once" && guarantee !== "at-least-once") {
      throw new RangeError(
        `KafkaSink deliveryGuarantee must be "exactly-once" or "at-least-once", got ${JSON.stringify(guarantee)}`,
      );
    }
    this.deliveryGuarantee = guarantee;
    this.transactionTimeoutMs = options.transactionTimeoutMs ?? DEFAULT_TRANSACTION_TIMEOUT_MS;
    if (!Number.isInteger(this.transactionTimeoutMs) || this.transactionTimeoutMs < 1000) {
      throw new RangeError(
        `KafkaSink transactionTimeoutMs must be a whole number of ms >= 1000, got ${this.transactionTimeoutMs}`,
      );
    }
    this.restartAllowanceMs = options.restartAllowanceMs ?? DEFAULT_RESTART_ALLOWANCE_MS;
    this.config = options.config ?? {};
    this.#connection = new KafkaConnection(this.config, resolveKafkaSecurity("KafkaSink", options));
  }

  /** SASL and TLS as they may be shown: mechanism, user and CA file, never a secret. */
  get security(): string {
    return this.#connection.describe();
  }

  [inspect.custom](): string {
    return `KafkaSink { brokers: ${this.brokers.join(",")}, topic: ${this.topic ?? "(per message)"}, ${this.security} }`;
  }

  /** Without recovery: no epoch is ever durable, so there is nothing to commit on. */
  build(stepId: string, workerIndex: number): StatelessSinkPartition<KafkaSinkMessage> {
    if (this.deliveryGuarantee === "exactly-once") {
      throw new Error(
        `KafkaSink deliveryGuarantee "exactly-once" needs recovery: run with -r DIR (WAXFLOW_RECOVERY_DIRECTORY), or choose "at-least-once"`,
      );
    }
    return this.#atLeastOnce(stepId, workerIndex);
  }

  async buildTransactional(
    stepId: string,
    workerIndex: number,
    _workerCount: number,
    recovered: ReadonlyMap<number, KafkaSlotState | null>,
    epochIntervalMs: number,
  ): Promise<TransactionalSinkPartition<KafkaSinkMessage, KafkaSlotState | null>> {
    if (this.deliveryGuarantee === "at-least-once") {
      const part = this.#atLeastOnce(stepId, workerIndex);
      return { ...part, writeBatch: (items) => part.writeBatch(items), prepare: () => null, commit: () => {} };
    }
    if (this.transactionTimeoutMs <= epochIntervalMs + this.restartAllowanceMs) {
      throw new RangeError(
        `KafkaSink transactionTimeoutMs (${this.transactionTimeoutMs} ms) must exceed the snapshot interval ` +
          `(${epochIntervalMs} ms) plus restartAllowanceMs (${this.restartAllowanceMs} ms); raise transactionTimeoutMs`,
      );
    }
    const ids = (slot: number): [string, string] =>
      [0, 1].map((p) => `waxflow:${stepId}:${slot}:${p}`) as [string, string];
    // Settle every slot this worker owns now, its own included, before data flows.
    for (const [slot, state] of recovered) {
      if (state?.prepared) await this.#settle(state.prepared);
      if (slot !== workerIndex) {
        for (const id of ids(slot)) await this.#fence(stepId, id);
      }
    }
    const producers = ids(workerIndex).map(
      (id) => new TransactionalProducer(this.brokers, id, this.transactionTimeoutMs, this.#connection.client()),
    ) as [TransactionalProducer, TransactionalProducer];
    try {
      // Aborts what the previous run began after its last recorded transaction.
      for (const producer of producers) await producer.fence();
      if (recovered.has(workerIndex)) kafkaMetrics().transactionsAborted.inc({ step_id: stepId }, producers.length);
    } catch (err) {
      await Promise.all(producers.map((p) => p.close()));
      throw new Error(
        `cannot register Kafka transactional ids on ${this.brokers.join(",")}: ${this.#connection.describeError(err)}`,
      );
    }
    return new ExactlyOncePartition(stepId, this.topic, producers, recovered.get(workerIndex)?.next ?? 0, (err) =>
      this.#connection.describeError(err),
    );
  }

  async #settle(handle: TransactionHandle): Promise<void> {
    try {
      await commitRecordedTransaction(this.brokers, handle, this.#connection.client());
    } catch (err) {
      throw new Error(
        `cannot commit Kafka transaction ${handle.transactionalId} recorded in the snapshot ` +
          `(it may have outlived transactionTimeoutMs ${this.transactionTimeoutMs} ms): ${this.#connection.describeError(err)}`,
      );
    }
  }

  async #fence(stepId: string, transactionalId: string): Promise<void> {
    const producer = new TransactionalProducer(
      this.brokers,
      transactionalId,
      this.transactionTimeoutMs,
      this.#connection.client(),
    );
    try {
      await producer.fence();
      kafkaMetrics().transactionsAborted.inc({ step_id: stepId });
    } finally {
      await producer.close();
    }
  }

  #atLeastOnce(stepId: string, workerIndex: number): StatelessSinkPartition<KafkaSinkMessage> {
    const producer = new IdempotentProducer(
      this.brokers,
      `waxflow:${stepId}:${workerIndex}`,
      this.#connection.client(),
    );
    const out = kafkaMetrics().messagesOut;
    return {
      writeBatch: async (items) => {
        const records = items.map((m) => toRecord(stepId, this.topic, m));
        await producer.send(records).catch((err: unknown) => {
          throw new Error(`writing to Kafka brokers ${this.brokers.join(",")}: ${this.#connection.describeError(err)}`);
        });
        out.inc({ step_id: stepId }, items.length);
      },
      close: () => producer.close(),
    };
  }
}

class ExactlyOncePartition implements TransactionalSinkPartition<KafkaSinkMessage, KafkaSlotState | null> {
  readonly #stepId: string;
  readonly #topic: string | undefined;
  readonly #producers: readonly [TransactionalProducer, TransactionalProducer];
  /** Number of the transaction being written (or next to begin). */
  #n: number;
  /** The prepared transaction, until it commits; later messages wait in `#waiting`. */
  #prepared:
    | { readonly epoch: number; readonly producer: TransactionalProducer; readonly done: PromiseWithResolvers<void> }
    | undefined;
  #waiting: RecordToProduce[] = [];
  readonly #describe: (err: unknown) => string;

  constructor(
    stepId: string,
    topic: string | undefined,
    producers: readonly [TransactionalProducer, TransactionalProducer],
    next: number,
    describe: (err: unknown) => string,
  ) {
    this.#describe = describe;
    this.#stepId = stepId;
    this.#topic = topic;
    this.#producers = producers;
    this.#n = next;
  }

  async writeBatch(items: KafkaSinkMessage[]): Promise<void> {
    const records = items.map((m) => toRecord(this.#stepId, this.#topic, m));
    if (this.#prepared !== undefined) {
      for (const r of records) this.#waiting.push(r);
      return;
    }
    await this.#send(records);
  }

  async prepare(epoch: number): Promise<KafkaSlotState | null> {
    if (this.#prepared !== undefined) await this.#prepared.done.promise;
    await this.#send([]);
    const producer = this.#current();
    const handle = producer.handle();
    if (handle === undefined) return { next: this.#n, prepared: null };
    const done = Promise.withResolvers<void>();
    // A failed commit fails the step where it happens; here it must not be unhandled.
    done.promise.catch(() => {});
    this.#prepared = { epoch, producer, done };
    this.#n += 1;
    return { next: this.#n, prepared: handle };
  }

  async commit(epoch: number): Promise<void> {
    const prepared = this.#prepared;
    if (prepared === undefined || prepared.epoch > epoch) return;
    const started = performance.now();
    try {
      await prepared.producer.commit();
    } catch (err) {
      prepared.done.reject(err);
      throw new Error(`committing the Kafka transaction of epoch ${epoch}: ${this.#describe(err)}`);
    }
    kafkaMetrics().transactionCommitSeconds.observe({ step_id: this.#stepId }, (performance.now() - started) / 1000);
    this.#prepared = undefined;
    prepared.done.resolve();
  }

  async close(): Promise<void> {
    await Promise.all(this.#producers.map((p) => p.close()));
  }

  #current(): TransactionalProducer {
    return this.#producers[this.#n % 2] as TransactionalProducer;
  }

  async #send(records: RecordToProduce[]): Promise<void> {
    const all = this.#waiting.length === 0 ? records : [...this.#waiting.splice(0), ...records];
    // What waited for a commit can be a whole epoch: sent in requests a broker accepts.
    for (let i = 0; i < all.length; i += SEND_CHUNK) await this.#current().send(all.slice(i, i + SEND_CHUNK));
    kafkaMetrics().messagesOut.inc({ step_id: this.#stepId }, all.length);
  }
}
