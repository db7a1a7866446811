/**
 * The Kafka connector's Prometheus metrics, on prom-client's default registry, which the
 * process's /metrics serves beside the engine's. Created on first use, so a dataflow
 * without Kafka shows none of them.
 */
import { Counter, Gauge, Histogram, register } from "prom-client";

export interface KafkaMetrics {
  readonly consumerLag: Gauge<"step_id" | "topic" | "partition">;
  readonly messagesIn: Counter<"step_id" | "topic">;
  readonly messagesOut: Counter<"step_id">;
  readonly transactionCommitSeconds: Histogram<"step_id">;
  readonly transactionsAborted: Counter<"step_id">;
}

let metrics: KafkaMetrics | undefined;

export function kafkaMetrics(): KafkaMetrics {
  metrics ??= {
    consumerLag: new Gauge({
      name: "waxflow_kafka_consumer_lag",
      help: "Messages between a source partition's next offset and its end (last stable offset when reading committed).",
      labelNames: ["step_id", "topic", "partition"],
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
