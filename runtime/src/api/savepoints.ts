/**
 * /savepoints on the HTTP API (process 0 only): POST creates one, GET lists them or
 * answers one, DELETE removes one. Every request carries the state token (derived from the
 * cluster secret) and is refused with 401 before anything in it is read; a body is JSON
 * of at most 4 KiB, `{}` or `{"id": "<id>"}`, read only after the token matched.
 */
import type { IncomingMessage } from "node:http";
import type { CreateOutcome, SavepointRecord } from "../recovery/savepoint.ts";
import { SAVEPOINT_ID } from "../recovery/start-from.ts";
import { STATE_TOKEN_HEADER, tokenMatches } from "./state-token.ts";

export const MAX_SAVEPOINT_BODY_BYTES = 4096;

/** What the API needs of process 0's Savepoints (recovery/savepoint.ts). */
export interface SavepointService {
  create(id: string | undefined): Promise<CreateOutcome>;
  list(): Promise<SavepointRecord[]>;
  get(id: string): Promise<SavepointRecord | undefined>;
  delete(id: string): Promise<boolean>;
}

export interface SavepointContext {
  /** The token requests must carry; undefined when the process has no cluster secret. */
  readonly token: string | undefined;
  readonly processId: number;
  /** Process 0's pod (or "process 0" off Kubernetes), for the line that sends callers there. */
  readonly processZero: string;
  readonly backups: boolean;
  /** Undefined until the cluster has resumed. */
  readonly savepoints: SavepointService | undefined;
}

export interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

const error = (status: number, message: string, headers?: Record<string, string>): Answer => ({
  status,
  body: { error: message },
  headers,
});

export async function answerSavepoints(req: IncomingMessage, path: string, ctx: SavepointContext): Promise<Answer> {
  const given = req.headers[STATE_TOKEN_HEADER];
  if (ctx.token === undefined) {
    return error(401, "savepoints need a token derived from the cluster secret, and this process has none");
  }
  if (typeof given !== "string" || !tokenMatches(given, ctx.token)) {
    return error(401, `savepoints need this dataflow's token in the ${STATE_TOKEN_HEADER} header`);
  }
  if (ctx.processId !== 0) return error(409, `savepoints are served by process 0 (${ctx.processZero})`);
  if (!ctx.backups) return error(409, "savepoints need spec.recovery.backup (a bucket)");
  const method = req.method ?? "GET";
  const rest = path.slice("/savepoints".length);
  if (rest === "" || rest === "/") {
    if (method !== "POST" && method !== "GET") {
      return error(405, `${method} /savepoints: use POST to create one or GET to list them`, { allow: "GET, POST" });
    }
  } else {
    const id = decodeId(rest.slice(1));
    if (id === undefined || !SAVEPOINT_ID.test(id)) {
      return error(400, `savepoint id ${JSON.stringify(rest.slice(1))} is not [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`);
    }
    if (method !== "GET" && method !== "DELETE") {
      return error(405, `${method} /savepoints/${id}: use GET or DELETE`, { allow: "GET, DELETE" });
    }
    const service = ctx.savepoints;
    if (service === undefined) return starting();
    if (method === "GET") {
      const record = await service.get(id);
      return record === undefined ? error(404, `no savepoint ${id}`) : { status: 200, body: record };
    }
    return (await service.delete(id)) ? { status: 200, body: { deleted: id } } : error(404, `no savepoint ${id}`);
  }
  if (method === "GET") {
    if (ctx.savepoints === undefined) return starting();
    return { status: 200, body: { savepoints: await ctx.savepoints.list() } };
  }
  const body = await readBody(req);
  if (!("json" in body)) return body.status === 413 ? { ...body, headers: { connection: "close" } } : body;
  const id = requestedId(body.json);
  if (typeof id === "object") return id;
  if (ctx.savepoints === undefined) return starting();
  const outcome = await ctx.savepoints.create(id);
  return "conflict" in outcome ? error(409, outcome.conflict) : { status: 202, body: outcome.created };
}

function starting(): Answer {
  return error(503, "the dataflow is starting: savepoints are served once the cluster has resumed; try again");
}

function decodeId(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** At most MAX_SAVEPOINT_BODY_BYTES of JSON; an empty body is `{}`. */
async function readBody(req: IncomingMessage): Promise<{ json: unknown } | Answer> {
  const tooLarge = error(413, `a savepoint request's body is at most ${MAX_SAVEPOINT_BODY_BYTES} bytes of JSON`);
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_SAVEPOINT_BODY_BYTES) return tooLarge;
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_SAVEPOINT_BODY_BYTES) return tooLarge;
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return { json: {} };
  try {
    return { json: JSON.parse(text) };
  } catch {
    return error(400, 'a savepoint request\'s body is JSON: {} or {"id": "<id>"}');
  }
}

/** `{}` -> undefined (an id is generated); `{"id": "x"}` -> "x"; anything else -> 400. */
function requestedId(json: unknown): string | undefined | Answer {
  const shape = error(400, 'a savepoint request\'s body is {} or {"id": "<id>"}, nothing else');
  if (typeof json !== "object" || json === null || Array.isArray(json)) return shape;
  const keys = Object.keys(json);
  if (keys.some((k) => k !== "id")) return shape;
  const id = (json as { id?: unknown }).id;
  if (id === undefined) return undefined;
  if (typeof id !== "string" || !SAVEPOINT_ID.test(id)) {
    return error(400, `savepoint id ${JSON.stringify(id)} is not [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`);
  }
  return id;
}
