/**
 * Kafka operators, as Bytewax's `bytewax.connectors.kafka.operators` (import as `kop`):
 * `input` splits what it reads into `oks` and `errs`, `output` writes
 * `KafkaSinkMessage`s, and the serde operators turn keys and values into objects and
 * back. A message that fails to deserialize goes to `errs` with its offset; send `errs`
 * to `op.raises` to stop on the first one, or anywhere else to keep going.
 */
import { type Dataflow, nest, type Stream } from "../../dataflow.ts";
import * as op from "../../operators/index.ts";
import { isKafkaError, type KafkaError, type KafkaSinkMessage, type KafkaSourceMessage } from "./messages.ts";
import { KafkaSink, type KafkaSinkOptions } from "./sink.ts";
import { KafkaSource, type KafkaSourceOptions } from "./source.ts";

export type { KafkaError, KafkaSinkMessage, KafkaSourceMessage } from "./messages.ts";

/** Bytes to a value; a throw sends the message to `errs`. */
export type Deserializer<T> = (bytes: Buffer | null) => T;
/** A value to bytes (a string is written as UTF-8). */
export type Serializer<T> = (value: T) => Buffer | string | null;

export interface Serde<T> {
  readonly serialize: Serializer<T>;
  readonly deserialize: Deserializer<T>;
}

function text(bytes: Buffer | null): string {
  if (bytes === null) throw new TypeError("no bytes (null) to decode");
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

/** JSON text in UTF-8. */
export const json: Serde<unknown> = {
  serialize: (value) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes) => JSON.parse(text(bytes)),
};

/** UTF-8 strings; invalid UTF-8 is an error. */
export const utf8: Serde<string> = {
  serialize: (value) => Buffer.from(value),
  deserialize: text,
};

export interface KafkaOpOut<T, E> {
  readonly oks: Stream<T>;
  readonly errs: Stream<KafkaError<E>>;
}

export interface InputOptions extends Omit<KafkaSourceOptions, "raiseOnErrors"> {
  readonly brokers: readonly string[];
  readonly topics: readonly string[];
}

/** Reads `topics`; read errors go to `errs` instead of stopping the dataflow. */
export function input(
  stepId: string,
  flow: Dataflow,
  { brokers, topics, ...options }: InputOptions,
): KafkaOpOut<KafkaSourceMessage, KafkaSourceMessage> {
  const messages = op.input(stepId, flow, new KafkaSource(brokers, topics, { ...options, raiseOnErrors: false }));
  return nest("kafkaInput", `${stepId}_split`, [messages], (_id, _scope, messages) => {
    const asErrors = op.map("to_errors", messages, (m): KafkaSourceMessage | KafkaError<KafkaSourceMessage> =>
      m.error === undefined ? m : { error: m.error, msg: m },
    );
    const { trues, falses } = op.branch("split", asErrors, isKafkaError);
    return {
      oks: op.map("oks", falses, (m) => m as KafkaSourceMessage),
      errs: op.map("errs", trues, (e) => e as KafkaError<KafkaSourceMessage>),
    };
  });
}

export interface OutputOptions extends KafkaSinkOptions {
  readonly brokers: readonly string[];
  /** Omitted: each message names its topic. */
  readonly topic?: string;
}

/** Writes messages to Kafka; exactly-once with recovery on (see KafkaSink). */
export function output(
  stepId: string,
  up: Stream<KafkaSinkMessage>,
  { brokers, topic, ...options }: OutputOptions,
): void {
  op.output(stepId, up, new KafkaSink(brokers, topic, options));
}

function convert<X, Y>(kind: string, stepId: string, up: Stream<X>, fn: (item: X) => Y): KafkaOpOut<Y, X> {
  return nest(kind, stepId, [up], (_id, _scope, up) => {
    const converted = op.map("convert", up, (m): Y | KafkaError<X> => {
      try {
        return fn(m);
      } catch (err) {
        return { error: err instanceof Error ? err.message : String(err), msg: m };
      }
    });
    const { trues, falses } = op.branch("split", converted, isKafkaError);
    return { oks: op.map("oks", falses, (m) => m as Y), errs: op.map("errs", trues, (e) => e as KafkaError<X>) };
  });
}

export function deserializeKey<K, V, K2>(
  stepId: string,
  up: Stream<KafkaSourceMessage<K, V>>,
  deserializer: (key: K) => K2,
): KafkaOpOut<KafkaSourceMessage<K2, V>, KafkaSourceMessage<K, V>> {
  return convert("deserializeKey", stepId, up, (m) => ({ ...m, key: deserializer(m.key) }));
}

export function deserializeValue<K, V, V2>(
  stepId: string,
  up: Stream<KafkaSourceMessage<K, V>>,
  deserializer: (value: V) => V2,
): KafkaOpOut<KafkaSourceMessage<K, V2>, KafkaSourceMessage<K, V>> {
  return convert("deserializeValue", stepId, up, (m) => ({ ...m, value: deserializer(m.value) }));
}

/** Deserializes keys and values; a message either fails goes to `errs` with its offset. */
export function deserialize<K, V, K2, V2>(
  stepId: string,
  up: Stream<KafkaSourceMessage<K, V>>,
  { keyDeserializer, valDeserializer }: { keyDeserializer: (key: K) => K2; valDeserializer: (value: V) => V2 },
): KafkaOpOut<KafkaSourceMessage<K2, V2>, KafkaSourceMessage<K, V>> {
  return convert("deserialize", stepId, up, (m) => ({
    ...m,
    key: keyDeserializer(m.key),
    value: valDeserializer(m.value),
  }));
}

export function serializeKey<K, V>(
  stepId: string,
  up: Stream<KafkaSinkMessage<K, V>>,
  serializer: Serializer<K>,
): Stream<KafkaSinkMessage<Buffer | string | null, V>> {
  return op.map(stepId, up, (m) => ({ ...m, key: m.key === undefined ? undefined : serializer(m.key) }));
}

export function serializeValue<K, V>(
  stepId: string,
  up: Stream<KafkaSinkMessage<K, V>>,
  serializer: Serializer<V>,
): Stream<KafkaSinkMessage<K, Buffer | string | null>> {
  return op.map(stepId, up, (m) => ({ ...m, value: serializer(m.value) }));
}

export function serialize<K, V>(
  stepId: string,
  up: Stream<KafkaSinkMessage<K, V>>,
  { keySerializer, valSerializer }: { keySerializer: Serializer<K>; valSerializer: Serializer<V> },
): Stream<KafkaSinkMessage> {
  return op.map(stepId, up, (m) => ({
    ...m,
    key: m.key === undefined ? undefined : keySerializer(m.key),
    value: valSerializer(m.value),
  }));
}
