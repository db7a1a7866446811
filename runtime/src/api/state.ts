/**
 * `GET /state/STEP?key=K` and `GET /state/STEP?prefix=P&limit=N&after=A`: a key's state
 * and pages of keys, asked of whichever process a client reaches. `parseStateRequest`
 * turns the URL into a bounded query (pure); `StateRouter` answers it from the worker
 * that owns the key, here or in a peer process over the mesh, or from the owner's
 * recovery store for `consistency=committed`. Listing asks every process for a page of
 * its keys and merges them.
 */
import type { ProcessMesh } from "../cluster/mesh.ts";
import type { Dataflow } from "../dataflow.ts";
import { workerForKey } from "../engine/hash.ts";
import {
  type Consistency,
  DEFAULT_LIST_LIMIT,
  MAX_KEY_BYTES,
  MAX_LIST_LIMIT,
  mergePages,
  pageOf,
  QUERY_TIMEOUT_MS,
  quoted,
  resolveStatefulStep,
  type StateAnswer,
  type StateQuery,
  valueAnswer,
} from "../engine/state-query.ts";
import type { WorkerView } from "../process/threads.ts";
import type { RecoveryStore } from "../recovery/store.ts";

export type ParsedRequest = { readonly query: StateQuery } | { readonly status: number; readonly message: string };

/** The query a `/state/...` URL asks, or the one line that says what is wrong with it. */
export function parseStateRequest(url: string, flow: Dataflow): ParsedRequest {
  let parsed: URL;
  try {
    parsed = new URL(url, "http://state.invalid");
  } catch {
    return { status: 400, message: "the request's URL does not parse" };
  }
  let name: string;
  try {
    name = decodeURIComponent(parsed.pathname.slice("/state/".length));
  } catch {
    return { status: 400, message: "the step in the path is not valid percent-encoding" };
  }
  if (name === "") return { status: 400, message: "name a step: /state/STEP?key=KEY" };
  if (Buffer.byteLength(name) > MAX_KEY_BYTES) return { status: 414, message: "the step name is too long" };
  const step = resolveStatefulStep(flow, name);
  if ("error" in step) return { status: 404, message: step.error };
  const params = parsed.searchParams;
  const consistency = params.get("consistency") ?? "live";
  if (consistency !== "live" && consistency !== "committed") {
    return { status: 400, message: `consistency must be live or committed, got ${quoted(consistency)}` };
  }
  const tooLong = ["key", "prefix", "after"].find((p) => Buffer.byteLength(params.get(p) ?? "") > MAX_KEY_BYTES);
  if (tooLong !== undefined) {
    return { status: 414, message: `${tooLong} is longer than ${MAX_KEY_BYTES} bytes; no key is that long` };
  }
  const key = params.get("key");
  if (key !== null) {
    if (params.has("prefix") || params.has("limit") || params.has("after")) {
      return { status: 400, message: "give either key, or prefix/limit/after to list keys, not both" };
    }
    return { query: { kind: "get", stepId: step.stepId, key, consistency } };
  }
  const limitText = params.get("limit") ?? String(DEFAULT_LIST_LIMIT);
  const limit = Number(limitText);
  if (!/^\d+$/.test(limitText) || limit < 1 || limit > MAX_LIST_LIMIT) {
    return {
      status: 400,
      message: `limit must be a whole number from 1 to ${MAX_LIST_LIMIT}, got ${quoted(limitText)}`,
    };
  }
  return {
    query: {
      kind: "list",
      stepId: step.stepId,
      prefix: params.get("prefix") ?? "",
      after: params.get("after") ?? "",
      limit,
      consistency,
    },
  };
}

/** The HTTP response for an answer: JSON for a value or a page, one line of text for anything else. */
export function stateResponse(query: StateQuery, answer: StateAnswer): { status: number; type: string; body: string } {
  const json = (body: string) => ({ status: 200, type: "application/json", body: `${body}\n` });
  const text = (status: number, line: string) => ({ status, type: "text/plain", body: `${line}\n` });
  if (answer.kind === "error") return text(answer.status, answer.message);
  const head = `{"step":${JSON.stringify(query.stepId)},"consistency":${JSON.stringify(query.consistency)}`;
  if (answer.kind === "keys" && query.kind === "list") {
    const next = answer.keys.length === query.limit ? JSON.stringify(answer.keys.at(-1)) : "null";
    return json(`${head},"keys":${JSON.stringify(answer.keys)},"next":${next}}`);
  }
  if (answer.kind === "value" && query.kind === "get") {
    const epoch = answer.epoch === undefined ? "" : `,"epoch":${answer.epoch}`;
    if (answer.json === undefined) {
      const when = query.consistency === "committed" ? " in its last committed epoch" : "";
      return text(404, `key ${quoted(query.key)} has no state in step ${quoted(query.stepId)}${when}`);
    }
    return json(`${head},"key":${JSON.stringify(query.key)}${epoch},"value":${answer.json}}`);
  }
  return text(500, `a ${answer.kind} answer to a ${query.kind} query`);
}

export interface StateRouterOptions {
  readonly mesh: ProcessMesh;
  /** This process's workers, by local index. */
  readonly workers: readonly WorkerView[];
  readonly workersPerProcess: number;
  /** The process's own connection to its recovery store; undefined without recovery. */
  readonly store?: RecoveryStore;
  readonly timeoutMs?: number;
}

/** Answers state queries for this process: its own workers' directly, others' over the mesh. */
export class StateRouter {
  readonly #opts: StateRouterOptions;
  readonly #pending = new Map<number, (answer: StateAnswer) => void>();
  #nextId = 0;
  #closed = false;

  constructor(opts: StateRouterOptions) {
    this.#opts = opts;
    opts.mesh.setStateHandler((from, frame) => {
      if (frame.kind === "answer") {
        // An answer after its timeout, or to nothing asked, is dropped.
        this.#pending.get(frame.id)?.(frame.answer);
        this.#pending.delete(frame.id);
        return;
      }
      void this.#local(frame.query, true).then((answer) =>
        opts.mesh.sendState(from, { kind: "answer", id: frame.id, answer }),
      );
    });
  }

  get #count(): number {
    return this.#opts.mesh.processCount * this.#opts.workersPerProcess;
  }

  /** The answer to `query`, from wherever its key lives. */
  async answer(query: StateQuery): Promise<StateAnswer> {
    const me = this.#opts.mesh.processId;
    if (query.kind === "get") {
      const owner = Math.floor(workerForKey(query.key, this.#count) / this.#opts.workersPerProcess);
      return owner === me ? this.#local(query, false) : this.#remote(owner, query);
    }
    const processes = Array.from({ length: this.#opts.mesh.processCount }, (_, p) => p);
    const answers = await Promise.all(
      processes.map((p) => (p === me ? this.#local(query, false) : this.#remote(p, query))),
    );
    const failed = answers.find((a) => a.kind === "error");
    if (failed !== undefined) return failed;
    return {
      kind: "keys",
      keys: mergePages(
        answers.map((a) => (a.kind === "keys" ? a.keys : [])),
        query.limit,
      ),
    };
  }

  /** The run ended: its workers and store are gone. */
  close(): void {
    this.#closed = true;
    for (const resolve of this.#pending.values()) resolve(stopped());
    this.#pending.clear();
  }

  /** A worker busy in user code answers when its activation ends; the client waits only so long. */
  #bounded(answer: Promise<StateAnswer>, who: string): Promise<StateAnswer> {
    const timeoutMs = this.#opts.timeoutMs ?? QUERY_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<StateAnswer>((resolve) => {
      timer = setTimeout(
        () => resolve({ kind: "error", status: 504, message: `${who} did not answer within ${timeoutMs} ms` }),
        timeoutMs,
      );
    });
    return Promise.race([answer, late]).finally(() => clearTimeout(timer));
  }

  #remote(process: number, query: StateQuery): Promise<StateAnswer> {
    if (this.#closed) return Promise.resolve(stopped());
    const id = this.#nextId++;
    const { promise, resolve } = Promise.withResolvers<StateAnswer>();
    const timeoutMs = this.#opts.timeoutMs ?? QUERY_TIMEOUT_MS;
    const timer = setTimeout(() => {
      this.#pending.delete(id);
      resolve({ kind: "error", status: 504, message: `process ${process} did not answer within ${timeoutMs} ms` });
    }, timeoutMs);
    this.#pending.set(id, (answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
    this.#opts.mesh.sendState(process, { kind: "query", id, query });
    return promise;
  }

  /** The answer from this process's workers or store; `forwarded`: a peer routed it here. */
  async #local(query: StateQuery, forwarded: boolean): Promise<StateAnswer> {
    if (this.#closed) return stopped();
    const { workersPerProcess: w, workers, store } = this.#opts;
    const first = this.#opts.mesh.processId * w;
    const mine = (key: string): boolean => Math.floor(workerForKey(key, this.#count) / w) === this.#opts.mesh.processId;
    if (query.kind === "get" && forwarded && !mine(query.key)) {
      return {
        kind: "error",
        status: 421,
        message: `process ${this.#opts.mesh.processId} does not own key ${quoted(query.key)}`,
      };
    }
    try {
      if (query.consistency === "committed") {
        if (store === undefined) return noRecovery(query.consistency);
        if (query.kind === "get") {
          const owner = workerForKey(query.key, this.#count);
          const { found, state, epoch } = store.committedState(query.stepId, query.key, owner);
          return valueAnswer(found, state, epoch);
        }
        const frontier = store.committedFrontier(workers.map((v) => v.index));
        return { kind: "keys", keys: pageOf(store.committedKeys(query.stepId, query, frontier, mine), query) };
      }
      const ask = (view: WorkerView): Promise<StateAnswer> => this.#bounded(view.query(query), `worker ${view.index}`);
      if (query.kind === "get") {
        const view = workers[workerForKey(query.key, this.#count) - first];
        if (view === undefined) return stopped();
        return await ask(view);
      }
      const pages = await Promise.all(workers.map(ask));
      const failed = pages.find((a) => a.kind === "error");
      if (failed !== undefined) return failed;
      return {
        kind: "keys",
        keys: mergePages(
          pages.map((a) => (a.kind === "keys" ? a.keys : [])),
          query.limit,
        ),
      };
    } catch (err) {
      return { kind: "error", status: 500, message: err instanceof Error ? err.message : String(err) };
    }
  }
}

function stopped(): StateAnswer {
  return { kind: "error", status: 503, message: "the dataflow is not running on this process" };
}

function noRecovery(consistency: Consistency): StateAnswer {
  return {
    kind: "error",
    status: 409,
    message: `consistency=${consistency} reads the recovery store, and this dataflow runs without recovery (-r)`,
  };
}
