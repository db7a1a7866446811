/**
 * The wire format between processes, once a connection is authenticated (handshake.ts):
 * each frame is a 4-byte big-endian length and a V8-serialized message (the structured
 * clone format, so items keep Dates, Maps and typed arrays exactly as they do between
 * workers in one process). Every frame's shape is checked before it is used.
 *
 * The mesh knows no protocol above it: the resume protocol and recovery's bookkeeping
 * travel as control frames, a tag and an opaque, bounded payload that recovery encodes,
 * decodes and checks (recovery/control.ts).
 */
import { deserialize, serialize } from "node:v8";
import { MAX_KEY_BYTES, MAX_LIST_LIMIT, type StateAnswer, type StateQuery } from "../engine/state-query.ts";
import type { ExchangeMessage } from "../engine/transport.ts";

export interface Hello {
  readonly kind: "hello";
  readonly process: number;
  readonly processCount: number;
  readonly workersPerProcess: number;
  readonly flowId: string;
  readonly recovery: boolean;
  /** A holder only hands its recovery store over; it runs no workers. */
  readonly holder: boolean;
}

/**
 * A message of a layer above the mesh: `tag` says whose (a short lowercase name), and
 * `payload` is that layer's encoding, which the mesh neither reads nor decodes.
 */
export interface ControlMessage {
  readonly tag: string;
  readonly payload: Uint8Array;
}

/** Room in a frame for everything around a control payload (the frame's kind, the tag). */
const CONTROL_OVERHEAD_BYTES = 256;
/** A control payload must fit in one frame. */
export const MAX_CONTROL_BYTES = 256 * 1024 * 1024 - CONTROL_OVERHEAD_BYTES;
/** Tags are names, not data: short, lowercase, checked before the payload is handed on. */
const CONTROL_TAG = /^[a-z][a-z0-9-]{0,31}$/;

/** State queries (api/state.ts): to the process whose worker owns the key, and its answer. */
export type StateFrame =
  | { readonly kind: "query"; readonly id: number; readonly query: StateQuery }
  | { readonly kind: "answer"; readonly id: number; readonly answer: StateAnswer };

export type Frame =
  | Hello
  | ({ readonly kind: "control" } & ControlMessage)
  | StateFrame
  | { readonly kind: "exchange"; readonly from: number; readonly to: number; readonly messages: ExchangeMessage[] }
  | { readonly kind: "heartbeat" }
  /** The sender has finished: its connection closing is not a failure. */
  | { readonly kind: "done" }
  /** The sender refuses the connection; `reason` says why, `retry` that it may accept a later attempt. */
  | { readonly kind: "reject"; readonly reason: string; readonly retry: boolean }
  /** The sender is failing; `reason` is its cause, so every process reports the root cause. */
  | { readonly kind: "abort"; readonly reason: string };

const HEADER = 4;
/** Larger frames mean a bug or a foreign client: refuse rather than buffer them. */
export const MAX_FRAME_BYTES = MAX_CONTROL_BYTES + CONTROL_OVERHEAD_BYTES;

export function encodeFrame(frame: Frame): Buffer {
  const body = serialize(frame);
  const header = Buffer.allocUnsafe(HEADER);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** A frame that cannot be used: the connection it came on is closed. */
export class BadFrame extends Error {
  override name = "BadFrame";
}

/**
 * Splits an authenticated byte stream into frames; keeps a partial frame until the rest
 * arrives. Throws BadFrame for an oversized, undecodable or malformed frame.
 */
export class FrameDecoder {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    while (this.#buffer.length >= HEADER) {
      const length = this.#buffer.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES)
        throw new BadFrame(`a frame of ${length} bytes exceeds the ${MAX_FRAME_BYTES} limit`);
      if (this.#buffer.length < HEADER + length) break;
      let value: unknown;
      try {
        value = deserialize(this.#buffer.subarray(HEADER, HEADER + length));
      } catch (err) {
        throw new BadFrame(`a frame of ${length} bytes does not decode: ${(err as Error).message}`);
      }
      frames.push(checkFrame(value));
      this.#buffer = this.#buffer.subarray(HEADER + length);
    }
    return frames;
  }
}

// The shape checks, shared with the layers that decode control payloads.
export type Shape = Readonly<Record<string, (v: unknown) => boolean>>;

export const isString = (v: unknown): v is string => typeof v === "string";
const isBoolean = (v: unknown): v is boolean => typeof v === "boolean";
export const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
/** Epochs and frontiers: whole numbers, or Infinity for the end of the stream. */
export const isEpoch = (v: unknown): v is number => isIndex(v) || v === Number.POSITIVE_INFINITY;
export const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v);
export const arrayOf =
  (item: (v: unknown) => boolean) =>
  (v: unknown): boolean =>
    Array.isArray(v) && v.every(item);

/** Whether `v` is a record whose fields pass `shape`'s checks; fields not in `shape` are not read. */
export function fits(v: unknown, shape: Shape): boolean {
  if (!isRecord(v)) return false;
  for (const [field, check] of Object.entries(shape)) if (!check(v[field])) return false;
  return true;
}

const isControlTag = (v: unknown): boolean => isString(v) && CONTROL_TAG.test(v);
const isControlPayload = (v: unknown): boolean => v instanceof Uint8Array && v.byteLength <= MAX_CONTROL_BYTES;
const exchangeMessage = (v: unknown): boolean => {
  if (!isRecord(v)) return false;
  switch (v.kind) {
    case "items":
      return fits(v, { exchange: isIndex, epoch: isEpoch, items: Array.isArray });
    case "pairs":
      return (
        fits(v, { exchange: isIndex, epoch: isEpoch, keys: arrayOf(isString), values: Array.isArray }) &&
        (v.keys as unknown[]).length === (v.values as unknown[]).length
      );
    case "frontier":
      return fits(v, { exchange: isIndex, frontier: isEpoch });
    default:
      return false;
  }
};

/** A key or prefix as a query may carry it: the HTTP side refuses longer ones before routing. */
const isQueryKey = (v: unknown): v is string => isString(v) && v.length <= MAX_KEY_BYTES;
const isConsistency = (v: unknown): boolean => v === "live" || v === "committed";
const stateQuery = (v: unknown): boolean => {
  if (!isRecord(v)) return false;
  switch (v.kind) {
    case "get":
      return fits(v, { stepId: isQueryKey, key: isQueryKey, consistency: isConsistency });
    case "list":
      return fits(v, {
        stepId: isQueryKey,
        prefix: isQueryKey,
        after: isQueryKey,
        limit: (n) => isIndex(n) && n >= 1 && n <= MAX_LIST_LIMIT,
        consistency: isConsistency,
      });
    default:
      return false;
  }
};
const optional =
  (check: (v: unknown) => boolean) =>
  (v: unknown): boolean =>
    v === undefined || check(v);
const stateAnswer = (v: unknown): boolean => {
  if (!isRecord(v)) return false;
  switch (v.kind) {
    case "value":
      return fits(v, { json: optional(isString), epoch: optional(isEpoch) });
    case "keys":
      return fits(v, { keys: (k) => arrayOf(isString)(k) && (k as unknown[]).length <= MAX_LIST_LIMIT });
    case "error":
      return fits(v, { status: (n) => isIndex(n) && n >= 400 && n < 600, message: isString });
    default:
      return false;
  }
};

/** The fields each kind of frame must have; anything else about a frame is not read. */
const SHAPES: Readonly<Record<Frame["kind"], Shape>> = {
  hello: {
    process: isIndex,
    processCount: isIndex,
    workersPerProcess: isIndex,
    flowId: isString,
    recovery: isBoolean,
    holder: isBoolean,
  },
  control: { tag: isControlTag, payload: isControlPayload },
  exchange: { from: isIndex, to: isIndex, messages: arrayOf(exchangeMessage) },
  query: { id: isIndex, query: stateQuery },
  answer: { id: isIndex, answer: stateAnswer },
  heartbeat: {},
  done: {},
  reject: { reason: isString, retry: isBoolean },
  abort: { reason: isString },
};

/** Checks a control message before it is sent, as its receiver will: a RangeError naming what is wrong. */
export function checkControl(message: ControlMessage): void {
  if (!isControlTag(message.tag))
    throw new RangeError(`control tag ${JSON.stringify(message.tag)} is not ${CONTROL_TAG}`);
  if (!isControlPayload(message.payload))
    throw new RangeError(
      `a ${message.tag} control payload of ${message.payload.byteLength} bytes exceeds the ${MAX_CONTROL_BYTES} limit`,
    );
}

/** `value` as a Frame if it has a frame's shape; BadFrame naming the kind otherwise. */
export function checkFrame(value: unknown): Frame {
  const kind = isRecord(value) ? value.kind : undefined;
  if (!isString(kind) || !Object.hasOwn(SHAPES, kind)) {
    throw new BadFrame(`a frame of unknown kind ${JSON.stringify(String(kind)).slice(0, 40)}`);
  }
  if (!fits(value, SHAPES[kind as Frame["kind"]])) throw new BadFrame(`a malformed ${kind} frame`);
  return value as unknown as Frame;
}
