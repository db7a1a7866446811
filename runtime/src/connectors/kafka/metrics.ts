/**
 * The Kafka connector's Prometheus metrics, on prom-client's default registry of the
 * thread that reads or writes: worker threads send theirs to the process's thread with
 * their step counters, and /metrics serves them merged (api/server.ts). Created on first
 * use, so a dataflow without Kafka shows none of them.
 */
import { Counter, Gauge, Histogram, type MetricObjectWithValues, type MetricValue, register } from "prom-client";

export const CONSUMER_LAG = "waxflow_kafka_consumer_lag";

export interface KafkaMetrics {
  /** `worker` is the worker reading the partition; a partition's series goes when its worker closes it. */
  readonly consumerLag: Gauge<"step_id" | "topic" | "partition" | "worker">;
  readonly messagesIn: Counter<"step_id" | "topic">;
  readonly messagesOut: Counter<"step_id">;
  readonly transactionCommitSeconds: Histogram<"step_id">;
  readonly transactionsAborted: Counter<"step_id">;
}

let metrics: KafkaMetrics | undefined;

export function kafkaMetrics(): KafkaMetrics {
  metrics ??= {
    consumerLag: new Gauge({
      name: CONSUMER_LAG,
      help: "Messages of a source partition not yet read into the dataflow: its end (last stable offset when reading committed) minus the next offset, per worker reading it.",
      labelNames: ["step_id", "topic", "partition", "worker"],
      registers: [register],
    }),
    messagesIn: new Counter({
      name: "waxflow_kafka_messages_in_total",
      help: "Messages read from Kafka.",
      labelNames: ["step_id", "topic"],
      registers: [register],
    }),
    messagesOut: new Counter({
      name: "waxflow_kafka_messages_out_total",
      help: "Messages written to Kafka (in transactions: written, visible once committed).",
      labelNames: ["step_id"],
      registers: [register],
    }),
    transactionCommitSeconds: new Histogram({
      name: "waxflow_kafka_transaction_commit_seconds",
      help: "Time to commit an epoch's Kafka transaction, from the request to the broker's answer.",
      labelNames: ["step_id"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [register],
    }),
    transactionsAborted: new Counter({
      name: "waxflow_kafka_transactions_aborted_total",
      help: "Transactional ids fenced on resume, which aborts a transaction a crashed run left open on them.",
      labelNames: ["step_id"],
      registers: [register],
    }),
  };
  return metrics;
}

/** One source partition's lag as a worker last saw it. */
export interface PartitionLag {
  /** Full id of the input step. */
  readonly step: string;
  readonly topic: string;
  readonly partition: number;
  /** The worker reading it; null when it was built outside a worker. */
  readonly worker: number | null;
  readonly lag: number;
}

/** The consumer lag series of merged metrics (`getMetricsAsJSON`), by step, topic and partition. */
export function partitionLags(metrics: readonly MetricObjectWithValues<MetricValue<string>>[]): PartitionLag[] {
  const lag = metrics.find((m) => m.name === CONSUMER_LAG);
  const rows = (lag?.values ?? []).map(({ labels, value }): PartitionLag => {
    const worker = labels.worker;
    return {
      step: String(labels.step_id ?? ""),
      topic: String(labels.topic ?? ""),
      partition: Number(labels.partition),
      worker: worker === undefined || worker === "" ? null : Number(worker),
      lag: value,
    };
  });
  return rows.sort(
    (a, b) =>
      a.step.localeCompare(b.step) ||
      a.topic.localeCompare(b.topic) ||
      a.partition - b.partition ||
      (a.worker ?? -1) - (b.worker ?? -1),
  );
}
