/**
 * Where a process starts from (WAXFLOW_START_FROM, --start-from): its volume (unset), an
 * empty store (`fresh:<token>`) or a savepoint (`savepoint:<id>`, or `savepoint:<id>@<token>` to
 * apply it again under a new token). Applied once per value:
 * the recovery directory keeps the last applied value in the `start-from` marker, so a
 * pod that restarts afterwards keeps its volume's newer state. Applying removes the
 * directory's partitions, restores (or not, for fresh), and the marker is written once
 * the store is open again; a crash in between applies the value again, which is safe.
 *
 * Kept apart from savepoint.ts so the CLI can parse values without loading the S3 client.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const START_FROM_MARKER = "start-from";

export type StartFrom =
  | { readonly kind: "fresh"; readonly token: string; readonly value: string }
  | { readonly kind: "savepoint"; readonly id: string; readonly value: string };

/** Kubernetes-label-like: what a savepoint's keys and the CLI's arguments may hold. */
export const SAVEPOINT_ID = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TOKEN = /^[A-Za-z0-9._-]{1,128}$/;

/** The value -> what it asks for, or a line saying what the value should look like. */
export function parseStartFrom(value: string): StartFrom | { readonly error: string } {
  const colon = value.indexOf(":");
  const [kind, rest] = colon < 0 ? [value, ""] : [value.slice(0, colon), value.slice(colon + 1)];
  if (kind === "fresh" && TOKEN.test(rest)) return { kind, token: rest, value };
  if (kind === "savepoint") {
    // `<id>@<token>` applies the same savepoint again under a new token (a rollback to it).
    const at = rest.indexOf("@");
    const [id, again] = at < 0 ? [rest, undefined] : [rest.slice(0, at), rest.slice(at + 1)];
    if (!SAVEPOINT_ID.test(id)) {
      return { error: `savepoint id ${JSON.stringify(id)} is not [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?` };
    }
    if (again !== undefined && !TOKEN.test(again)) {
      return { error: `savepoint token ${JSON.stringify(again)} (after @) is not 1-128 of [A-Za-z0-9._-]` };
    }
    return { kind, id, value };
  }
  if (kind === "fresh") return { error: `fresh token ${JSON.stringify(rest)} is not 1-128 of [A-Za-z0-9._-]` };
  return { error: `expected fresh:<token> or savepoint:<id>, got ${JSON.stringify(value)}` };
}

/** The last value applied to `dir`; undefined when none was. */
export function appliedStartFrom(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, START_FROM_MARKER), "utf8").trim();
  } catch {
    return undefined;
  }
}

export function markStartFrom(dir: string, value: string): void {
  writeFileSync(join(dir, START_FROM_MARKER), `${value}\n`);
}

/** Partition files and SQLite's companions: the store, not the lock or the marker. */
const STORE_FILE = /^part-\d+\.sqlite3(-wal|-shm|-journal)?$/;

/** Removes the store's partitions from `dir`, so it starts empty or from a restore. */
export function clearPartitions(dir: string): void {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return;
  }
  for (const f of files) if (STORE_FILE.test(f)) rmSync(join(dir, f), { force: true });
}
