/**
 * Savepoints: named, kept copies of a complete backup set, to start a Dataflow (or a
 * fork of it) from. A savepoint is a consistent cut taken on request: the first complete
 * set whose copies were all taken after the request, copied server-side (CopyObject) to
 * savepoints/<id>/process-<i>/part-<j>.sqlite3.zst (the set's objects as they are, with their
 * encoding in the records), then savepoint.json (written last, so a
 * savepoint without it is incomplete and never restored from). Retention lists sets/
 * only, so it never deletes a savepoint; a delete removes savepoint.json first.
 *
 * "Taken after the request": a set's copies start when a process sees the cluster's
 * committed frontier cross the set's epoch. Nobody can see it above what process 0 has
 * heard of its own workers (they tell their peers through process 0), so a set whose
 * epoch is above every frontier process 0 knew at the request was copied after it.
 */
import { randomBytes } from "node:crypto";
import {
  type BackupBucket,
  BackupError,
  type BackupManifest,
  type BackupObject,
  checkProcessCount,
  objectName,
  outcome,
  parseManifest,
  placeCopies,
  type RestoreOutcome,
} from "./backup.ts";

export { SAVEPOINT_ID } from "./start-from.ts";

export interface SavepointRecord {
  readonly id: string;
  readonly state: "pending" | "complete" | "failed";
  readonly requestedAt: string;
  readonly createdAt?: string;
  readonly execution?: number;
  readonly epoch?: number;
  readonly processCount?: number;
  readonly bytes?: number;
  readonly sourceSet?: string;
  readonly error?: string;
}

/** savepoint.json: the source set's manifest (object keys under savepoints/<id>/) plus these. */
export interface SavepointManifest extends BackupManifest {
  readonly id: string;
  readonly sourceSet: string;
  readonly requestedAt: string;
  readonly bytes: number;
}

/** `sp-20261205-103500-3f9a`: UTC time and 4 hex digits. */
export function generateSavepointId(now: Date, hex = randomBytes(2).toString("hex")): string {
  const iso = now.toISOString();
  return `sp-${iso.slice(0, 10).replaceAll("-", "")}-${iso.slice(11, 19).replaceAll(":", "")}-${hex}`;
}

export function savepointManifestKey(bucket: BackupBucket, id: string): string {
  return `${bucket.savepointPrefix(id)}savepoint.json`;
}

/** savepoint.json's text -> its manifest; throws one line naming the key when it is not one. */
export function parseSavepointManifest(text: string, key: string): SavepointManifest {
  let m: Partial<SavepointManifest>;
  try {
    m = parseManifest(text, key) as Partial<SavepointManifest>;
  } catch (err) {
    throw new Error(
      err instanceof SyntaxError ? `${key} is not JSON (${err.message})` : String((err as Error).message),
    );
  }
  if (typeof m.id !== "string" || typeof m.sourceSet !== "string" || typeof m.requestedAt !== "string") {
    throw new Error(`${key} is not a waxflow savepoint manifest (no id, sourceSet or requestedAt)`);
  }
  return m as SavepointManifest;
}

function completeRecord(m: SavepointManifest): SavepointRecord {
  return {
    id: m.id,
    state: "complete",
    requestedAt: m.requestedAt,
    createdAt: m.createdAt,
    execution: m.execution,
    epoch: m.epoch,
    processCount: m.processCount,
    bytes: m.bytes,
    sourceSet: m.sourceSet,
  };
}

export type CreateOutcome = { readonly created: SavepointRecord } | { readonly conflict: string };

interface Pending {
  record: SavepointRecord;
  /** Only a set above this epoch qualifies (see the file's comment). */
  readonly afterEpoch: number;
}

/** Process 0's savepoints: requests waiting for a set, and the bucket's complete ones. */
export class Savepoints {
  readonly #bucket: BackupBucket;
  readonly #knownFrontier: () => number;
  readonly #timeoutMs: number;
  readonly #log: (line: string) => void;
  /** Pending and failed requests of this process's life; complete ones live in the bucket. */
  readonly #requests = new Map<string, Pending>();

  constructor(opts: {
    readonly bucket: BackupBucket;
    /** The highest committed frontier process 0 knows of, of any worker. */
    readonly knownFrontier: () => number;
    /** A request no set satisfied in this long fails. */
    readonly timeoutMs: number;
    readonly log: (line: string) => void;
  }) {
    this.#bucket = opts.bucket;
    this.#knownFrontier = opts.knownFrontier;
    this.#timeoutMs = opts.timeoutMs;
    this.#log = opts.log;
  }

  async create(id: string | undefined, now = new Date()): Promise<CreateOutcome> {
    const chosen = id ?? generateSavepointId(now);
    if (this.#requests.has(chosen) || (await this.#bucket.list(this.#bucket.savepointPrefix(chosen))).length > 0) {
      return { conflict: `savepoint ${chosen} exists; pick another id or delete it first` };
    }
    const record: SavepointRecord = { id: chosen, state: "pending", requestedAt: now.toISOString() };
    this.#requests.set(chosen, { record, afterEpoch: this.#knownFrontier() });
    return { created: record };
  }

  /** Newest first: complete ones from the bucket, pending and failed ones from memory. */
  async list(): Promise<SavepointRecord[]> {
    const keys = (await this.#bucket.list(this.#bucket.savepointsPrefix))
      .map((o) => o.key)
      .filter((k) => k.endsWith("/savepoint.json"));
    const records: SavepointRecord[] = [];
    for (const key of keys) {
      const text = await this.#bucket.getText(key);
      if (text === undefined) continue;
      try {
        records.push(completeRecord(parseSavepointManifest(text, key)));
      } catch (err) {
        const id = key.slice(this.#bucket.savepointsPrefix.length).split("/")[0] ?? key;
        records.push({ id, state: "failed", requestedAt: "", error: (err as Error).message });
      }
    }
    const complete = new Set(records.map((r) => r.id));
    for (const p of this.#requests.values()) if (!complete.has(p.record.id)) records.push(this.#current(p));
    return records.sort((a, b) => b.requestedAt.localeCompare(a.requestedAt) || b.id.localeCompare(a.id));
  }

  async get(id: string): Promise<SavepointRecord | undefined> {
    const key = savepointManifestKey(this.#bucket, id);
    const text = await this.#bucket.getText(key);
    if (text !== undefined) {
      try {
        return completeRecord(parseSavepointManifest(text, key));
      } catch (err) {
        return { id, state: "failed", requestedAt: "", error: (err as Error).message };
      }
    }
    const pending = this.#requests.get(id);
    return pending === undefined ? undefined : this.#current(pending);
  }

  /** savepoint.json first, so no reader finds a savepoint without its objects. False: there was none. */
  async delete(id: string): Promise<boolean> {
    const known = this.#requests.delete(id);
    const keys = (await this.#bucket.list(this.#bucket.savepointPrefix(id))).map((o) => o.key);
    const manifest = savepointManifestKey(this.#bucket, id);
    if (keys.includes(manifest)) await this.#bucket.delete([manifest]);
    await this.#bucket.delete(keys.filter((k) => k !== manifest));
    return known || keys.length > 0;
  }

  /** A set became complete (Backups, before retention): copy it for each request it satisfies. */
  async setCompleted(manifest: BackupManifest): Promise<void> {
    for (const pending of this.#requests.values()) {
      const p = this.#current(pending);
      if (p.state !== "pending" || manifest.epoch <= pending.afterEpoch) continue;
      try {
        await this.#copy(p, manifest);
        // Deleted while it was copied: what the copy wrote goes too, or it would outlive the delete.
        if (!this.#requests.delete(p.id)) await this.delete(p.id);
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        pending.record = { ...p, state: "failed", error };
        this.#log(`warning: savepoint ${p.id} failed: ${error}`);
      }
    }
  }

  /** The record, failed once it waited longer than the timeout. */
  #current(pending: Pending): SavepointRecord {
    const r = pending.record;
    if (r.state === "pending" && Date.now() - Date.parse(r.requestedAt) > this.#timeoutMs) {
      pending.record = {
        ...r,
        state: "failed",
        error: `no complete backup set was taken within ${Math.round(this.#timeoutMs / 1000)} s of the request; check the backup warnings in process 0's log`,
      };
    }
    return pending.record;
  }

  async #copy(record: SavepointRecord, manifest: BackupManifest): Promise<void> {
    const bucket = this.#bucket;
    const objects: BackupObject[] = [];
    for (const o of manifest.objects) {
      // Copied as they are: the record keeps the encoding, length and hash of the bytes copied.
      const key = `${bucket.savepointPrefix(record.id)}process-${o.process}/${objectName(o)}`;
      await bucket.copy(o.key, key);
      objects.push({ ...o, key });
    }
    const bytes = objects.reduce((n, o) => n + o.bytes, 0);
    const savepoint: SavepointManifest = {
      ...manifest,
      createdAt: new Date().toISOString(),
      objects,
      id: record.id,
      sourceSet: manifest.set,
      requestedAt: record.requestedAt,
      bytes,
    };
    await bucket.put(savepointManifestKey(bucket, record.id), JSON.stringify(savepoint, null, 1));
    this.#log(`savepoint ${record.id} complete: backup set ${manifest.set} (epoch ${manifest.epoch}, ${bytes} bytes)`);
  }
}

/** The savepoint's manifest, or one line naming the id and the object at fault. */
export async function readSavepoint(bucket: BackupBucket, id: string): Promise<SavepointManifest> {
  const key = savepointManifestKey(bucket, id);
  const where = `bucket "${bucket.config.bucket}"${bucket.config.endpoint === undefined ? "" : ` at ${bucket.config.endpoint}`}`;
  const text = await bucket.getText(key);
  if (text === undefined) {
    throw new BackupError(
      `savepoint ${id} not found: ${key} is missing in ${where}; list the savepoints (waxctl df savepoint list) ` +
        "and check --savepoint-prefix (WAXFLOW_SAVEPOINT_PREFIX)",
    );
  }
  try {
    return parseSavepointManifest(text, key);
  } catch (err) {
    throw new BackupError(`savepoint ${id} is unusable: ${(err as Error).message}`);
  }
}

/**
 * Puts this process's copies from savepoint `id` in `dir` (emptied by the caller). Every
 * object is verified, so every process reaches the same verdict; a missing or damaged
 * one fails the start in one line naming the id and the object, with no fallback (the
 * user asked for this savepoint). Undefined: this process is beyond the savepoint's
 * process count and starts empty, receiving its share through the hand-off.
 */
export async function restoreSavepoint(opts: {
  readonly bucket: BackupBucket;
  readonly id: string;
  readonly dir: string;
  readonly processId: number;
  readonly processCount: number;
  readonly log: (line: string) => void;
}): Promise<RestoreOutcome | undefined> {
  const { bucket, id, dir, processId, processCount } = opts;
  const started = performance.now();
  await bucket.check();
  const manifest = await readSavepoint(bucket, id);
  checkProcessCount(`savepoint ${id}`, manifest.processCount, processCount);
  const placed = await placeCopies(bucket, manifest, dir, processId);
  if (placed === "placed") return outcome(manifest, processId, started);
  if (placed === "not-in-set") {
    opts.log(
      `process ${processId} was not in savepoint ${id} (${manifest.processCount} processes): ` +
        "it starts with an empty store and receives its share through the hand-off",
    );
    return undefined;
  }
  throw new BackupError(
    `savepoint ${id} is unusable: ${placed.reason}; no other savepoint is tried: start from another one ` +
      "(WAXFLOW_START_FROM, spec.restoreFrom) or create a new one",
  );
}
