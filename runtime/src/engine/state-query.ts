/**
 * State queries: what `GET /state/STEP` asks of the worker that owns a key, and what it
 * answers. Pure parts only: the query's shape and bounds, which core step a name means,
 * and the state as JSON text (made at the owner, so nothing but a string crosses threads
 * and the mesh). Routing lives in api/state.ts, answering in worker.ts and recovery/store.ts.
 */
import type { Dataflow } from "../dataflow.ts";

/** `live`: the owning worker's state between two items; `committed`: its last durable snapshot. */
export type Consistency = "live" | "committed";

export type StateQuery =
  | {
      readonly kind: "get";
      readonly stepId: string;
      readonly key: string;
      readonly consistency: Consistency;
    }
  | {
      readonly kind: "list";
      readonly stepId: string;
      readonly prefix: string;
      /** Keys strictly after this one (the previous page's last key); "" for the first page. */
      readonly after: string;
      readonly limit: number;
      readonly consistency: Consistency;
    };

export type StateAnswer =
  /** `json` is the state as JSON text; absent when the key has no state. */
  | { readonly kind: "value"; readonly json?: string; readonly epoch?: number }
  /** Sorted, at most the query's limit. */
  | { readonly kind: "keys"; readonly keys: string[] }
  /** `status` is the HTTP status the answer is served with. */
  | { readonly kind: "error"; readonly status: number; readonly message: string };

/** Keys longer than this are refused before anything is routed: no real key is this long. */
export const MAX_KEY_BYTES = 4096;
/** The most keys one page lists. */
export const MAX_LIST_LIMIT = 1000;
export const DEFAULT_LIST_LIMIT = 100;
/** How long a process waits for the owner's answer before it answers 504. */
export const QUERY_TIMEOUT_MS = 5_000;

/**
 * The stateful core step a name means: a core step's id, with or without the dataflow's
 * id in front (`count.stateful_batch`, as `df top` shows it), or the id of the operator
 * the user wrote (`count`) when it holds exactly one stateful step. An error line naming
 * the known steps otherwise.
 */
export function resolveStatefulStep(flow: Dataflow, name: string): { stepId: string } | { error: string } {
  const stateful = flow.steps.flatMap((s) => (s.kind === "statefulBatch" ? [s.stepId] : []));
  const full = name.startsWith(`${flow.flowId}.`) ? name : `${flow.flowId}.${name}`;
  if (stateful.includes(full)) return { stepId: full };
  const inside = stateful.filter((id) => id.startsWith(`${full}.`));
  if (inside.length === 1) return { stepId: inside[0] as string };
  const known = stateful.length === 0 ? "it has none" : `its stateful steps are ${stateful.join(", ")}`;
  if (inside.length > 1) return { error: `step ${quoted(name)} holds several stateful steps (${inside.join(", ")})` };
  return { error: `dataflow ${quoted(flow.flowId)} has no stateful step ${quoted(name)}; ${known}` };
}

/** A name as shown in an error line: quoted, and cut short so a hostile one cannot flood a log. */
export function quoted(text: string): string {
  const shown = JSON.stringify(text);
  return shown.length > 80 ? `${shown.slice(0, 77)}..."` : shown;
}

/**
 * The first `limit` keys, in order, that start with `prefix` and come after `after`. Keeps
 * at most twice the limit between trims, so a page of a worker's million keys costs a
 * pass over them, not a sort of them all.
 */
export function pageOf(keys: Iterable<string>, query: { prefix: string; after: string; limit: number }): string[] {
  const page: string[] = [];
  for (const key of keys) {
    if (!key.startsWith(query.prefix) || key <= query.after) continue;
    page.push(key);
    if (page.length >= 2 * query.limit) page.sort().length = query.limit;
  }
  return page.sort().slice(0, query.limit);
}

/** Merges the sorted pages of several owners into one. */
export function mergePages(pages: readonly (readonly string[])[], limit: number): string[] {
  return pages.flat().sort().slice(0, limit);
}

export class UnrepresentableState extends Error {
  override name = "UnrepresentableState";
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The state as JSON text. Maps with string keys become objects (others lists of pairs),
 * Sets and typed arrays lists, Dates ISO strings, bigints decimal strings. What JSON has
 * no value for (NaN, Infinity, functions, symbols, undefined inside, cycles) throws
 * UnrepresentableState naming where it is, rather than being silently turned into null.
 */
export function stateToJson(state: unknown): string {
  return JSON.stringify(toJson(state, "the state", new Set()));
}

function toJson(value: unknown, where: string, seen: Set<object>): Json {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) throw new UnrepresentableState(`${where} is ${value}, which JSON cannot express`);
      return value;
    case "bigint":
      // JSON numbers lose precision past 2^53; a string keeps every digit.
      return value.toString();
    case "undefined":
      throw new UnrepresentableState(`${where} is undefined, which JSON cannot express`);
    case "function":
    case "symbol":
      throw new UnrepresentableState(`${where} is a ${typeof value}, which JSON cannot express`);
  }
  if (value === null) return null;
  const object = value as object;
  if (object instanceof Date) {
    if (Number.isNaN(object.getTime())) throw new UnrepresentableState(`${where} is an invalid Date`);
    return object.toISOString();
  }
  if (seen.has(object)) throw new UnrepresentableState(`${where} refers back to itself, which JSON cannot express`);
  seen.add(object);
  try {
    if (Array.isArray(object)) return object.map((v, i) => toJson(v, `${where}[${i}]`, seen));
    if (ArrayBuffer.isView(object)) {
      return Array.from(new Uint8Array(object.buffer, object.byteOffset, object.byteLength));
    }
    if (object instanceof Set) return [...object].map((v, i) => toJson(v, `${where} (set item ${i})`, seen));
    if (object instanceof Map) {
      const entries = [...object.entries()];
      if (entries.every(([k]) => typeof k === "string")) {
        return Object.fromEntries(entries.map(([k, v]) => [k, toJson(v, `${where}.get(${quoted(k)})`, seen)]));
      }
      return entries.map(([k, v], i) => [
        toJson(k, `${where} (map key ${i})`, seen),
        toJson(v, `${where}.get(…)`, seen),
      ]);
    }
    const out: { [key: string]: Json } = {};
    for (const [k, v] of Object.entries(object)) out[k] = toJson(v, `${where}.${k}`, seen);
    return out;
  } finally {
    seen.delete(object);
  }
}

/** The answer for a state found (or not) at the owner. */
export function valueAnswer(found: boolean, state: unknown, epoch?: number): StateAnswer {
  if (!found) return epoch === undefined ? { kind: "value" } : { kind: "value", epoch };
  try {
    const json = stateToJson(state);
    return epoch === undefined ? { kind: "value", json } : { kind: "value", json, epoch };
  } catch (err) {
    if (!(err instanceof UnrepresentableState)) throw err;
    return { kind: "error", status: 422, message: err.message };
  }
}
