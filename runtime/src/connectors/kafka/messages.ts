/** The items Kafka steps read and write, as in Bytewax's `bytewax.connectors.kafka`. */

export type KafkaHeaders = readonly (readonly [string, Buffer | null])[];

/** One record read from Kafka. `error` is set (and the rest may be empty) when reading failed and `raiseOnErrors` is off. */
export interface KafkaSourceMessage<K = Buffer | null, V = Buffer | null> {
  readonly key: K;
  readonly value: V;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: Date;
  readonly headers: KafkaHeaders;
  readonly error?: string;
}

/** One record to write. `topic` is required when the sink names none. */
export interface KafkaSinkMessage<K = Buffer | string | null, V = Buffer | string | null> {
  readonly key?: K;
  readonly value: V;
  readonly topic?: string;
  readonly headers?: readonly (readonly [string, Buffer | string])[];
  readonly partition?: number;
}

/** An item that failed: what went wrong, and the message it went wrong on. */
export interface KafkaError<M> {
  readonly error: string;
  readonly msg: M;
}

export function isKafkaError(item: unknown): item is KafkaError<unknown> {
  return typeof item === "object" && item !== null && "error" in item && "msg" in item;
}
