/**
 * The wire format between processes, once a connection is authenticated (handshake.ts):
 * each frame is a 4-byte big-endian length and a V8-serialized message (the structured
 * clone format, so items keep Dates, Maps and typed arrays exactly as they do between
 * workers in one process). Every frame's shape is checked before it is used.
 */
import { deserialize, serialize } from "node:v8";
import { MAX_KEY_BYTES, MAX_LIST_LIMIT, type StateAnswer, type StateQuery } from "../engine/state-query.ts";
import type { ExchangeMessage } from "../engine/transport.ts";
import type { ResumePlan, SnapshotRow, StoreRecords } from "../recovery/plan.ts";

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

/** The resume protocol and recovery bookkeeping (recovery/handoff.ts), passed through the mesh as is. */
export type ControlFrame =
  /** A store's execution records: to process 0, which plans the resume. */
  | { readonly kind: "records"; readonly records: StoreRecords }
  /** Process 0's decision, to every process and holder. */
  | { readonly kind: "plan"; readonly plan: ResumePlan }
  /** Snapshots for the receiving process's workers. */
  | { readonly kind: "rows"; readonly rows: SnapshotRow[] }
  /** The sender has sent every row it holds for the receiver. */
  | { readonly kind: "resumed" }
  /** To a holder: the cluster no longer needs its store. */
  | { readonly kind: "released" }
  /** A worker's committed frontier, so every store collects garbage against the cluster's minimum. */
  | { readonly kind: "committed"; readonly worker: number; readonly frontier: number };

/** State queries (api/state.ts): to the process whose worker owns the key, and its answer. */
export type StateFrame =
  | { readonly kind: "query"; readonly id: number; readonly query: StateQuery }
  | { readonly kind: "answer"; readonly id: number; readonly answer: StateAnswer };

export type Frame =
  | Hello
  | ControlFrame
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
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

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

type Shape = Readonly<Record<string, (v: unknown) => boolean>>;

const isString = (v: unknown): v is string => typeof v === "string";
const isBoolean = (v: unknown): v is boolean => typeof v === "boolean";
const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
/** Epochs and frontiers: whole numbers, or Infinity for the end of the stream. */
const isEpoch = (v: unknown): v is number => isIndex(v) || v === Number.POSITIVE_INFINITY;
const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v);
const arrayOf =
  (item: (v: unknown) => boolean) =>
  (v: unknown): boolean =>
    Array.isArray(v) && v.every(item);

function fits(v: unknown, shape: Shape): boolean {
  if (!isRecord(v)) return false;
  for (const [field, check] of Object.entries(shape)) if (!check(v[field])) return false;
  return true;
}

const storedState = (v: unknown): boolean =>
  v === null || typeof v === "number" || typeof v === "string" || v instanceof Uint8Array;
const snapshotRow = (v: unknown): boolean =>
  Array.isArray(v) && v.length === 4 && isString(v[0]) && isString(v[1]) && isEpoch(v[2]) && storedState(v[3]);
const execution = (v: unknown): boolean =>
  fits(v, {
    execution: isIndex,
    processIndex: isIndex,
    processCount: isIndex,
    workersPerProcess: isIndex,
    resumeEpoch: isEpoch,
    stores: arrayOf(isString),
  });
const workerFrontier = (v: unknown): boolean => fits(v, { execution: isIndex, worker: isIndex, frontier: isEpoch });
const storeRecords = (v: unknown): boolean =>
  fits(v, {
    process: isIndex,
    storeId: isString,
    executions: arrayOf(execution),
    frontiers: arrayOf(workerFrontier),
  });
const resumePlan = (v: unknown): boolean =>
  fits(v, {
    execution: isIndex,
    resumeEpoch: isEpoch,
    resumedFrom: isIndex,
    sources: isIndex,
    processCount: isIndex,
    workersPerProcess: isIndex,
    stores: arrayOf(isString),
  });
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
  records: { records: storeRecords },
  plan: { plan: resumePlan },
  rows: { rows: arrayOf(snapshotRow) },
  resumed: {},
  released: {},
  committed: { worker: isIndex, frontier: isEpoch },
  exchange: { from: isIndex, to: isIndex, messages: arrayOf(exchangeMessage) },
  query: { id: isIndex, query: stateQuery },
  answer: { id: isIndex, answer: stateAnswer },
  heartbeat: {},
  done: {},
  reject: { reason: isString, retry: isBoolean },
  abort: { reason: isString },
};

/** `value` as a Frame if it has a frame's shape; BadFrame naming the kind otherwise. */
export function checkFrame(value: unknown): Frame {
  const kind = isRecord(value) ? value.kind : undefined;
  if (!isString(kind) || !Object.hasOwn(SHAPES, kind)) {
    throw new BadFrame(`a frame of unknown kind ${JSON.stringify(String(kind)).slice(0, 40)}`);
  }
  if (!fits(value, SHAPES[kind as Frame["kind"]])) throw new BadFrame(`a malformed ${kind} frame`);
  return value as unknown as Frame;
}
