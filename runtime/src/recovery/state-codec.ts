/**
 * How a snapshot's state is stored. Finite numbers and well-formed strings, the states
 * of counters, sums and most reducers, are stored as SQLite's own REAL and TEXT values:
 * V8-serializing each one costs more than the rest of the snapshot. Everything else
 * (objects, Maps, Dates, NaN, -0, strings with lone surrogates) is a V8-serialized
 * BLOB, the structured clone format, so it comes back exactly as it was.
 */
import { deserialize, serialize } from "node:v8";
import { RecoveryError } from "./errors.ts";

/** A state as stored in a partition and sent over the mesh; null is a deleted key. */
export type StoredState = number | string | Uint8Array;

export function encodeState(state: unknown): StoredState {
  if (typeof state === "number" && Number.isFinite(state) && !Object.is(state, -0)) return state;
  if (typeof state === "string" && state.isWellFormed()) return state;
  return serialize(state);
}

export function decodeState(stored: unknown, where: string): unknown {
  if (typeof stored === "number" || typeof stored === "string") return stored;
  if (stored instanceof Uint8Array) return deserialize(stored);
  throw new RecoveryError(`${where}: a snapshot holds a ${typeof stored}, not a state written by waxflow`);
}

/** Bytes a stored state takes, for /metrics. */
export function storedBytes(stored: StoredState | null): number {
  if (stored === null) return 0;
  if (typeof stored === "number") return 8;
  if (typeof stored === "string") return Buffer.byteLength(stored);
  return stored.byteLength;
}
