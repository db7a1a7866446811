// The exactly-once kill tests' dataflow, run with `waxflow run`: Kafka in (KC_IN) ->
// keyed running count -> Kafka out (KC_OUT) as key -> count, with KC_GUARANTEE.
import { Dataflow } from "waxflow";
import { type DeliveryGuarantee, KafkaSink, type KafkaSinkMessage, KafkaSource } from "waxflow/connectors/kafka";
import * as op from "waxflow/operators";

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const brokers = [env("KC_BROKERS")];

export const flow = new Dataflow("kafka_count");
const messages = op.input("in", flow, new KafkaSource(brokers, [env("KC_IN")], { batchSize: 200 }));
const keyed = op.keyOn("key", messages, (m) => m.key?.toString() ?? "");
const counts = op.statefulMap("count", keyed, (n: number | undefined) => {
  const count = (n ?? 0) + 1;
  return [count, count];
});
const out = op.map("message", counts, ([key, count]): KafkaSinkMessage => ({ key, value: String(count) }));
op.output(
  "out",
  out,
  new KafkaSink(brokers, env("KC_OUT"), {
    deliveryGuarantee: env("KC_GUARANTEE") as DeliveryGuarantee,
    // Small enough that a transaction a crash left open cannot stall the test for long.
    transactionTimeoutMs: 30_000,
    restartAllowanceMs: 20_000,
  }),
);
