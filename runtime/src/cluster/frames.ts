/**
 * The wire format between processes: each frame is a 4-byte big-endian length and a
 * V8-serialized message (the structured clone format, so items keep Dates, Maps and
 * typed arrays exactly as they do between workers in one process).
 */
import { deserialize, serialize } from "node:v8";
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

export type Frame =
  | Hello
  | ControlFrame
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

/** Splits a byte stream into frames; keeps a partial frame until the rest arrives. */
export class FrameDecoder {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    while (this.#buffer.length >= HEADER) {
      const length = this.#buffer.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES) throw new Error(`frame of ${length} bytes exceeds the ${MAX_FRAME_BYTES} limit`);
      if (this.#buffer.length < HEADER + length) break;
      frames.push(deserialize(this.#buffer.subarray(HEADER, HEADER + length)) as Frame);
      this.#buffer = this.#buffer.subarray(HEADER + length);
    }
    return frames;
  }
}
