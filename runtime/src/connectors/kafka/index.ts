/**
 * Kafka in and out (`waxflow/connectors/kafka`): KafkaSource reads (topic, partition)s
 * by offset and resumes from its snapshot; KafkaSink writes exactly-once with recovery
 * on (a Kafka transaction per worker per epoch, committed once the epoch is durable on
 * every worker) and at-least-once otherwise. The operators are in
 * `waxflow/connectors/kafka/operators`.
 */
export type { KafkaClientConfig } from "./client.ts";
export {
  isKafkaError,
  type KafkaError,
  type KafkaHeaders,
  type KafkaSinkMessage,
  type KafkaSourceMessage,
} from "./messages.ts";
export {
  KAFKA_ENV,
  type KafkaSaslOptions,
  type KafkaSecurityOptions,
  type KafkaTlsOptions,
  type SaslMechanism,
} from "./security.ts";
export { type DeliveryGuarantee, KafkaSink, type KafkaSinkOptions, type KafkaSlotState } from "./sink.ts";
export { KafkaSource, type KafkaSourceOptions, type StartingOffset } from "./source.ts";
