/**
 * Bytewax's README example, step for step: read events from Kafka, stop on a read error,
 * deserialize the JSON, anonymize the email, drop the company's own addresses and write
 * the rest to another topic. With recovery on (-r) the output is exactly-once.
 *
 *   KAFKA_BROKERS=127.0.0.1:9092 npm run waxflow -- run examples/kafka-anonymize.ts -r /tmp/kafka-anon --recovery-init -s 1
 *
 * Topics: KAFKA_IN_TOPIC (default in_topic) and KAFKA_OUT_TOPIC (default out_topic).
 */
import { Dataflow } from "waxflow";
import type { KafkaSinkMessage } from "waxflow/connectors/kafka";
import * as kop from "waxflow/connectors/kafka/operators";
import * as op from "waxflow/operators";

const BROKERS = (process.env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",");
const IN_TOPICS = [process.env.KAFKA_IN_TOPIC ?? "in_topic"];
const OUT_TOPIC = process.env.KAFKA_OUT_TOPIC ?? "out_topic";

interface Event {
  email: string;
  [field: string]: unknown;
}

function deserialize(msg: kop.KafkaSourceMessage): Event {
  return JSON.parse(msg.value?.toString() ?? "null") as Event;
}

function anonymizeEmail(event: Event): Event {
  return { ...event, email: ["******", event.email.split("@").at(-1)].join("@") };
}

function removeBytewax(event: Event): boolean {
  return !event.email.includes("bytewax");
}

export const flow = new Dataflow("kafka_in_out");
const stream = kop.input("inp", flow, { brokers: BROKERS, topics: IN_TOPICS });
// Inspect the messages read, for debugging.
op.inspect("inspect-oks", stream.oks);
// Read errors are a stream of their own: here, the first one stops the dataflow.
op.raises("crash-on-err", op.inspect("errors", stream.errs));
const deserialized = op.map("deserialize", stream.oks, deserialize);
const anonymized = op.map("anon", deserialized, anonymizeEmail);
const filtered = op.filter("filter_employees", anonymized, removeBytewax);
const processed = op.map("map", filtered, (event): KafkaSinkMessage => ({ key: null, value: JSON.stringify(event) }));
kop.output("out1", processed, { brokers: BROKERS, topic: OUT_TOPIC });
