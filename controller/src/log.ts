// One line per record on stderr: JSON (the default) for the cluster's log pipeline, or
// text (`time LEVEL msg key=value ...`) for people reading `kubectl logs`.
import { apiStatus } from "@waxflow/crds";

export type Fields = Record<string, unknown>;
export const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = (typeof LEVELS)[number];
export const FORMATS = ["text", "json"] as const;
export type Format = (typeof FORMATS)[number];

let quiet = false;
let threshold: Level = "info";
let format: Format = "json";

/** Tests run several controllers in one process; they turn the log off. */
export function setQuiet(value: boolean): void {
  quiet = value;
}

/** Records below `level` are dropped; `format` is how the rest are written. */
export function configureLog(options: { readonly level: Level; readonly format: Format }): void {
  threshold = options.level;
  format = options.format;
}

/** Whether a record of `level` would be written: callers skip building costly fields. */
export function enabled(level: Level): boolean {
  return !quiet && LEVELS.indexOf(level) >= LEVELS.indexOf(threshold);
}

/** A bare word stays bare in text; anything else (spaces, quotes, objects) is JSON. */
function textValue(value: unknown): string {
  if (typeof value === "string" && /^[\w./:@,+-]+$/.test(value)) return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value) ?? "null";
}

export function formatRecord(time: Date, level: Level, msg: string, fields: Fields, as: Format): string {
  if (as === "json") return JSON.stringify({ time: time.toISOString(), level, msg, ...fields });
  const pairs = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}=${textValue(v)}`)
    .join("");
  return `${time.toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}${pairs}`;
}

export function log(level: Level, msg: string, fields: Fields = {}): void {
  if (!enabled(level)) return;
  process.stderr.write(`${formatRecord(new Date(), level, msg, fields, format)}\n`);
}

/** The API server's message for a failed call, else the error's own. */
export function errorText(err: unknown): string {
  return apiStatus(err)?.message ?? (err instanceof Error ? err.message : String(err));
}

/** HTTP status of a failed call: the API server's, or a raw response's (a watch). */
export function statusCode(err: unknown): number | undefined {
  const status = apiStatus(err)?.code;
  if (status !== undefined) return status;
  const raw = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof raw === "number" ? raw : undefined;
}
