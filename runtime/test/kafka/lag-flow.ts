// The lag tests' dataflow, run with `waxflow run`: reads KL_TOPIC (tailing) and spends
// KL_ITEM_MS of CPU per message, so partitions fall behind long enough to be seen.
import { Dataflow } from "waxflow";
import { KafkaSource } from "waxflow/connectors/kafka";
import * as op from "waxflow/operators";

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const itemMs = Number(env("KL_ITEM_MS"));

export const flow = new Dataflow("kafka_lag");
const messages = op.input("in", flow, new KafkaSource([env("KL_BROKERS")], [env("KL_TOPIC")], { batchSize: 20 }));
op.inspect("work", messages, () => {
  const until = performance.now() + itemMs;
  while (performance.now() < until);
});
