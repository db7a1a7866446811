/**
 * A process's recovery store: a fixed set of SQLite files (`part-<i>.sqlite3`) in WAL
 * mode in its own directory (on Kubernetes, its pod's volume). The snapshot of
 * (step, key) lives in partition stableHash(step, key) mod N. Every partition records
 * every execution the process took part in, which is how a partition restored from an
 * older copy is caught; each worker records its frontier. Which execution to resume
 * from is decided over all processes' stores (plan.ts); this file keeps one store.
 */
import { randomUUID } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, readdirSync, statfsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync, type SQLInputValue, type SQLOutputValue, type StatementSync } from "node:sqlite";
import { stableHash } from "../engine/hash.ts";
import type { StateStore } from "../engine/state-store.ts";
import {
  InconsistentPartitionsError,
  MissingPartitionsError,
  MixedPartitionCountsError,
  NoPartitionsError,
  RecoveryError,
} from "./errors.ts";
import { DirectoryLock } from "./lock.ts";
import type { ExecutionRecord, SnapshotRow, StoreRecords } from "./plan.ts";
import { decodeState, encodeState, type StoredState, storedBytes } from "./state-codec.ts";

/**
 * Format 3: one store per process, executions recorded with the cluster's shape and
 * store ids; snapshots keyed by their primary key alone (WITHOUT ROWID: one B-tree per
 * write, not two), states encoded by state-codec.ts.
 */
const FORMAT = "3";
const PART_FILE = /^part-(\d+)\.sqlite3$/;
/**
 * Partitions of a store created on demand (`--recovery-init`). One process's store is
 * written by one thread, so more files would only add commits per epoch.
 */
const CREATED_PARTITIONS = 1;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS exs (
    ex_num INTEGER PRIMARY KEY, process_index INTEGER NOT NULL, process_count INTEGER NOT NULL,
    workers_per_process INTEGER NOT NULL, resume_epoch INTEGER NOT NULL, stores TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS fronts (
    ex_num INTEGER NOT NULL, worker_index INTEGER NOT NULL, frontier INTEGER NOT NULL,
    PRIMARY KEY (ex_num, worker_index));
  CREATE TABLE IF NOT EXISTS snaps (
    step_id TEXT NOT NULL, state_key TEXT NOT NULL, epoch INTEGER NOT NULL, ser BLOB,
    PRIMARY KEY (step_id, state_key, epoch)) WITHOUT ROWID;
`;

export function partitionFile(index: number): string {
  return `part-${index}.sqlite3`;
}

// SQLite's primary result codes (extended codes keep them in the low byte).
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;
/** Below this much free space, an I/O error while writing is taken for a full disk. */
const NEARLY_FULL_BYTES = 1024 * 1024;

/** What a file system call's error code says, for a message. */
function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "EROFS") return "read-only file system";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ENOSPC") return "no space left on device";
  if (code === "ENOTDIR") return "a path component is not a directory";
  return err instanceof Error ? err.message : String(err);
}

function freeBytes(dir: string): number {
  try {
    const fs = statfsSync(dir);
    return fs.bavail * fs.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/**
 * One line naming the partition file and the cause of a SQLite failure, instead of
 * SQLite's bare message (or worse, the failed rollback that follows it).
 */
function storageError(file: string, err: unknown): RecoveryError {
  if (err instanceof RecoveryError) return err;
  const errcode = (err as { errcode?: unknown }).errcode;
  const primary = typeof errcode === "number" ? errcode & 0xff : undefined;
  const message = err instanceof Error ? err.message : String(err);
  const dir = dirname(file);
  let line: string;
  if (primary === SQLITE_FULL || (primary === SQLITE_IOERR && freeBytes(dir) < NEARLY_FULL_BYTES)) {
    line =
      `no space left on device writing recovery partition ${file} (${message}); ` +
      "free space on that volume or make it larger, then start again: the run resumes from its last snapshot";
  } else if (primary === SQLITE_READONLY || primary === SQLITE_CANTOPEN) {
    line = `recovery partition ${file} cannot be written (${message}); make ${dir} writable for this process`;
  } else if (primary === SQLITE_NOTADB || primary === SQLITE_CORRUPT) {
    line =
      `${file} is not a usable SQLite database (${message}); it is not a recovery partition, or it is damaged: ` +
      `move it out of ${dir}, or restore the directory from a backup`;
  } else {
    line = `recovery partition ${file}: ${message}`;
  }
  return new RecoveryError(line, { cause: err });
}

/** Runs `body` on the partition file `file`, turning a failure into a line that names the file and the cause. */
function onFile<T>(file: string, body: () => T): T {
  try {
    return body();
  } catch (err) {
    throw storageError(file, err);
  }
}

function openDb(path: string): DatabaseSync {
  return onFile(path, () => {
    const db = new DatabaseSync(path);
    // WAL survives a killed process without losing committed epochs; NORMAL skips the
    // fsync per commit that only matters for power loss of the node.
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
    return db;
  });
}

function partitionFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => PART_FILE.test(f));
  } catch {
    return [];
  }
}

/** A recursive mkdir says ENOENT on a read-only file system; the nearest existing ancestor tells the real cause. */
function whyNotCreated(dir: string, err: unknown): unknown {
  let ancestor = dirname(dir);
  while (!existsSync(ancestor) && ancestor !== dirname(ancestor)) ancestor = dirname(ancestor);
  try {
    accessSync(ancestor, constants.W_OK);
    return err;
  } catch (accessErr) {
    return accessErr;
  }
}

/**
 * Fails unless `dir` is a directory this process can write, creating it when `create`;
 * returns false when it does not exist (and was not created).
 */
function checkDirectory(dir: string, create: boolean): boolean {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new RecoveryError(
        `recovery directory ${dir} cannot be read (${fsReason(err)}); check the path given to -r`,
        {
          cause: err,
        },
      );
    }
    if (!create) return false;
    try {
      mkdirSync(dir, { recursive: true });
    } catch (mkdirErr) {
      throw new RecoveryError(
        `cannot create recovery directory ${dir} (${fsReason(whyNotCreated(dir, mkdirErr))}); create it by hand`,
        { cause: mkdirErr },
      );
    }
    isDirectory = true;
  }
  if (!isDirectory) {
    throw new RecoveryError(
      `recovery directory ${dir} is a file, not a directory; point -r/--recovery-directory (WAXFLOW_RECOVERY_DIRECTORY) at a directory`,
    );
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new RecoveryError(
      `recovery directory ${dir} is not writable (${fsReason(err)}); snapshots are written there: mount it read-write`,
      { cause: err },
    );
  }
  return true;
}

function noPartitions(dir: string): NoPartitionsError {
  return new NoPartitionsError(
    `recovery directory ${dir} has no partitions; create them with \`waxflow recovery init ${dir} <count>\`, ` +
      "or run with --recovery-init (WAXFLOW_RECOVERY_INIT=true) to create them when the directory is empty",
  );
}

/** Creates a store of `count` empty partitions in `dir` (as `waxflow recovery init DIR N`). */
export function initRecoveryDirectory(dir: string, count: number): void {
  if (!Number.isInteger(count) || count < 1) {
    throw new RecoveryError(`partition count must be a whole number >= 1, got ${count}`);
  }
  checkDirectory(dir, true);
  const existing = partitionFiles(dir);
  if (existing.length > 0) {
    throw new RecoveryError(`recovery directory ${dir} is already initialized (${existing.length} partitions found)`);
  }
  const storeId = randomUUID();
  for (let i = 0; i < count; i++) {
    const path = join(dir, partitionFile(i));
    const db = openDb(path);
    try {
      onFile(path, () => {
        db.exec(SCHEMA);
        const meta = db.prepare("INSERT INTO meta (name, value) VALUES (?, ?)");
        meta.run("format", FORMAT);
        meta.run("index", String(i));
        meta.run("count", String(count));
        meta.run("store", storeId);
      });
    } finally {
      db.close();
    }
  }
}

/** SQLite's generic error: for the meta table, "no such table", a database of something else. */
const SQLITE_ERROR = 1;

class Partition {
  readonly db: DatabaseSync;
  readonly file: string;
  /** The file's path, for every error about it. */
  readonly path: string;
  readonly index: number;
  readonly count: number;
  readonly storeId: string;
  // Prepared once: commits and garbage collection run every epoch.
  readonly #upsert: StatementSync;
  readonly #front: StatementSync;
  readonly #collect: StatementSync;
  readonly #forget: StatementSync;

  constructor(dir: string, file: string) {
    this.file = file;
    this.path = join(dir, file);
    this.db = openDb(this.path);
    const meta = new Map<string, string>();
    try {
      for (const row of this.db.prepare("SELECT name, value FROM meta").all()) {
        meta.set(String(row.name), String(row.value));
      }
    } catch (err) {
      this.db.close();
      if ((err as { errcode?: unknown }).errcode !== SQLITE_ERROR) throw storageError(this.path, err);
      throw new RecoveryError(
        `${this.path} is not a waxflow recovery partition (${(err as Error).message}); move it out of ${dir}`,
        { cause: err },
      );
    }
    if (meta.get("format") !== FORMAT) {
      this.db.close();
      throw new RecoveryError(
        `${this.path} has recovery format ${meta.get("format")}, expected ${FORMAT}; ` +
          "it was written by another waxflow version: start from an empty directory",
      );
    }
    this.index = Number(meta.get("index"));
    this.count = Number(meta.get("count"));
    this.storeId = String(meta.get("store"));
    const prepare = (sql: string): StatementSync => this.guard(() => this.db.prepare(sql));
    this.#upsert = prepare("INSERT OR REPLACE INTO snaps (step_id, state_key, epoch, ser) VALUES (?, ?, ?, ?)");
    this.#front = prepare("INSERT OR REPLACE INTO fronts (ex_num, worker_index, frontier) VALUES (?, ?, ?)");
    this.#forget = prepare("DELETE FROM snaps WHERE step_id = ? AND state_key = ? AND epoch < ?");
    this.#collect = prepare(
      `DELETE FROM snaps WHERE epoch < (
         SELECT MAX(t.epoch) FROM snaps t
         WHERE t.step_id = snaps.step_id AND t.state_key = snaps.state_key AND t.epoch <= ?)`,
    );
  }

  /** Runs `body` on this file; a failure names the file and its cause. */
  guard<T>(body: () => T): T {
    return onFile(this.path, body);
  }

  /** The rows of a query, each step guarded. */
  *iterate(sql: string, ...params: SQLInputValue[]): Generator<Record<string, SQLOutputValue>> {
    const rows = this.guard(() => this.db.prepare(sql).iterate(...params));
    try {
      for (;;) {
        const next = this.guard(() => rows.next());
        if (next.done === true) return;
        yield next.value;
      }
    } finally {
      // A reader that stops early resets the statement, so it holds no read transaction.
      rows.return?.();
    }
  }

  writeFrontier(execution: number, worker: number, frontier: number): void {
    this.guard(() => this.#front.run(execution, worker, frontier));
  }

  /** Deletes every snapshot older than its key's newest one at or before `epoch`; returns how many. */
  collectBefore(epoch: number): number {
    return this.guard(() => Number(this.#collect.run(epoch).changes));
  }

  /** Deletes the snapshots of these (step, key) older than `epoch`; returns how many. */
  forget(keys: readonly (readonly [string, string])[], epoch: number): number {
    let deleted = 0;
    this.transaction(() => {
      for (const [stepId, key] of keys) deleted += Number(this.#forget.run(stepId, key, epoch).changes);
    });
    return deleted;
  }

  countSnapshots(): number {
    return this.guard(() => Number(this.db.prepare("SELECT COUNT(*) AS n FROM snaps").get()?.n ?? 0));
  }

  latestExecution(): number {
    const row = this.guard(() => this.db.prepare("SELECT MAX(ex_num) AS ex FROM exs").get());
    return row?.ex == null ? 0 : Number(row.ex);
  }

  /** The steps with rows here, in order: a skip scan of the primary key, one seek per step. */
  steps(): string[] {
    const next = this.guard(() =>
      this.db.prepare("SELECT step_id FROM snaps WHERE step_id > ? ORDER BY step_id LIMIT 1"),
    );
    const steps: string[] = [];
    for (;;) {
      const row = this.guard(() => next.get(steps.at(-1) ?? ""));
      if (row === undefined) return steps;
      steps.push(String(row.step_id));
    }
  }

  /** Keys of `stepId` whose newest snapshot holds state (not a deletion). */
  liveKeys(stepId: string): number {
    const row = this.guard(() =>
      this.db
        .prepare(
          `SELECT COUNT(*) AS n FROM snaps s WHERE step_id = ? AND ser IS NOT NULL AND epoch = (
             SELECT MAX(epoch) FROM snaps t WHERE t.step_id = s.step_id AND t.state_key = s.state_key)`,
        )
        .get(stepId),
    );
    return Number(row?.n ?? 0);
  }

  dropStep(stepId: string): void {
    this.guard(() => this.db.prepare("DELETE FROM snaps WHERE step_id = ?").run(stepId));
  }

  write(rows: readonly SnapshotRow[]): void {
    this.transaction(() => {
      for (const [stepId, key, epoch, ser] of rows) this.#upsert.run(stepId, key, epoch, ser);
    });
  }

  transaction(body: () => void): void {
    this.guard(() => {
      this.db.exec("BEGIN");
      try {
        body();
        this.db.exec("COMMIT");
      } catch (err) {
        // SQLite may have rolled back already (it does on a full disk): then there is nothing to undo.
        if (this.db.isTransaction) this.db.exec("ROLLBACK");
        throw err;
      }
    });
  }
}

export interface OpenOptions {
  /** Create the store if the directory holds no partitions (`--recovery-init`). */
  readonly create?: boolean;
  readonly snapshotIntervalMs: number;
  /** How long snapshots are kept before garbage collection (Bytewax's backup interval). */
  readonly backupIntervalMs: number;
  /**
   * Take the directory's lock (the default). Only a connection of a process that holds
   * it already (its worker threads) opens without.
   */
  readonly lock?: boolean;
}

/** What one worker's commit of an epoch cost: for /metrics. */
export interface SnapshotStats {
  readonly seconds: number;
  readonly bytes: number;
}

/** An open recovery store. */
export class RecoveryStore {
  readonly dir: string;
  readonly storeId: string;
  readonly #parts: Partition[];
  readonly #gcLag: number;
  /** Committed frontier of every worker of the cluster, for garbage collection. */
  readonly #frontiers = new Map<number, number>();
  /** This process's workers that ran to their end, and how to tell peers of their frontiers. */
  readonly #ended = new Map<number, (worker: number, frontier: number) => void>();
  #execution = 0;
  #resumeEpoch = 1;
  #collectedBelow = 0;
  /**
   * Snapshot rows kept after the last collection (counted when first needed) and rows
   * written since: collection is amortized.
   */
  #kept: number | undefined;
  #written = 0;
  /** False in a worker thread's connection: the process's own store collects (joinExecution). */
  #collects = true;
  /** State this store handed to other processes at the start of this execution, kept until it is safe to drop. */
  #handedOff: { readonly before: number; readonly keys: (readonly [string, string])[] } | undefined;
  /** Told when the cluster's minimum committed frontier rises (transactional sinks commit then). */
  readonly #clusterListeners: Array<(frontier: number) => void> = [];
  #clusterFrontier = 0;
  /** While a backup copy is taken: collection keeps everything a resume at or after this epoch + 1 needs. */
  #collectionHeldAt: number | undefined;

  /** This process's hold on the directory; undefined in a worker thread's connection. */
  readonly #lock: DirectoryLock | undefined;

  private constructor(dir: string, parts: Partition[], gcLag: number, lock: DirectoryLock | undefined) {
    this.dir = dir;
    this.#parts = parts;
    this.storeId = parts[0]?.storeId ?? "";
    this.#gcLag = gcLag;
    this.#lock = lock;
  }

  static open(dir: string, opts: OpenOptions): RecoveryStore {
    const create = opts.create === true;
    if (!checkDirectory(dir, create)) throw noPartitions(dir);
    // Taken before anything is read or created, so two processes never both initialize or write.
    const lock = opts.lock === false ? undefined : DirectoryLock.acquire(dir);
    const parts: Partition[] = [];
    try {
      let files = partitionFiles(dir);
      if (files.length === 0 && create) {
        initRecoveryDirectory(dir, CREATED_PARTITIONS);
        files = partitionFiles(dir);
      }
      if (files.length === 0) throw noPartitions(dir);
      for (const file of files) parts.push(new Partition(dir, file));
      return RecoveryStore.#validate(dir, parts, opts, lock);
    } catch (err) {
      for (const p of parts) p.db.close();
      lock?.release();
      throw err;
    }
  }

  static #validate(
    dir: string,
    unsorted: Partition[],
    opts: OpenOptions,
    lock: DirectoryLock | undefined,
  ): RecoveryStore {
    const parts = unsorted.slice().sort((a, b) => a.index - b.index);
    const stores = new Set(parts.map((p) => `${p.count}/${p.storeId}`));
    if (stores.size > 1) {
      const detail = parts.map((p) => `${p.file}: ${p.count} of store ${p.storeId}`).join(", ");
      throw new MixedPartitionCountsError(
        `recovery partitions in ${dir} come from different stores or partition counts (${detail}); keep the partitions of one store only`,
      );
    }
    const count = parts[0]?.count ?? 0;
    const present = new Set(parts.map((p) => p.index));
    const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !present.has(i));
    if (missing.length > 0) {
      throw new MissingPartitionsError(
        `recovery directory ${dir} is missing ${missing.map(partitionFile).join(", ")} of ${count} partitions; restore them from the same backup as the others`,
        missing,
      );
    }
    const latest = parts.map((p) => p.latestExecution());
    const newest = Math.max(...latest);
    const stale = parts.filter((_, i) => latest[i] !== newest);
    if (stale.length > 0) {
      throw new InconsistentPartitionsError(
        `recovery partitions in ${dir} disagree: ${stale.map((p) => p.file).join(", ")} ` +
          `${stale.length === 1 ? "was" : "were"} last written by an older execution than execution ${newest}, ` +
          "as if restored from an older copy; restore every partition from the same backup",
      );
    }
    return new RecoveryStore(dir, parts, Math.ceil(opts.backupIntervalMs / opts.snapshotIntervalMs), lock);
  }

  get resumeEpoch(): number {
    return this.#resumeEpoch;
  }

  /** The executions this store took part in and its workers' frontiers, offered as `process`. */
  records(process: number): StoreRecords {
    const first = this.#parts[0] as Partition;
    const executions: ExecutionRecord[] = [...first.iterate("SELECT * FROM exs ORDER BY ex_num")].map((r) => ({
      execution: Number(r.ex_num),
      processIndex: Number(r.process_index),
      processCount: Number(r.process_count),
      workersPerProcess: Number(r.workers_per_process),
      resumeEpoch: Number(r.resume_epoch),
      stores: JSON.parse(String(r.stores)) as string[],
    }));
    const frontiers = this.#parts.flatMap((p) =>
      [...p.iterate("SELECT ex_num, worker_index, frontier FROM fronts")].map((r) => ({
        execution: Number(r.ex_num),
        worker: Number(r.worker_index),
        frontier: Number(r.frontier),
      })),
    );
    return { process, storeId: this.storeId, executions, frontiers };
  }

  /**
   * Before the resume: drops snapshots at or after the resume epoch (those epochs run
   * again, with different boundaries), or every snapshot when this store holds none of
   * the state resumed (`stale`: its process was not in the execution resumed from).
   */
  prepare(resumeEpoch: number, stale: boolean): void {
    for (const p of this.#parts) {
      p.guard(() => {
        if (stale) p.db.exec("DELETE FROM snaps");
        else p.db.prepare("DELETE FROM snaps WHERE epoch >= ?").run(resumeEpoch);
      });
    }
    this.#kept = undefined;
  }

  /**
   * Steps this store holds live state of (a newest snapshot that is not a deletion) that
   * are not in `known`, with how many keys each: state a resume would silently drop.
   */
  removedSteps(known: ReadonlySet<string>): { readonly stepId: string; readonly keys: number }[] {
    const keys = new Map<string, number>();
    for (const p of this.#parts) {
      for (const stepId of p.steps()) {
        if (!known.has(stepId)) keys.set(stepId, (keys.get(stepId) ?? 0) + p.liveKeys(stepId));
      }
    }
    return [...keys]
      .filter(([, n]) => n > 0)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([stepId, n]) => ({ stepId, keys: n }));
  }

  /** Deletes every snapshot of these steps. */
  dropSteps(stepIds: readonly string[]): void {
    for (const p of this.#parts) for (const stepId of stepIds) p.dropStep(stepId);
    this.#kept = undefined;
  }

  /** The newest snapshot of every (step, key) before `epoch`, deletions included: what a resume needs. */
  *newestBelow(epoch: number): Generator<SnapshotRow> {
    for (const p of this.#parts) {
      const rows = p.iterate(
        `SELECT step_id, state_key, epoch, ser FROM snaps s WHERE epoch = (
           SELECT MAX(epoch) FROM snaps t
           WHERE t.step_id = s.step_id AND t.state_key = s.state_key AND t.epoch < ?)`,
        epoch,
      );
      for (const r of rows) {
        yield [String(r.step_id), String(r.state_key), Number(r.epoch), (r.ser as StoredState | null) ?? null];
      }
    }
  }

  /**
   * The committed state of (step, key): its newest snapshot before the committed
   * frontier of `worker`, its owner, as this process's store has heard it. A snapshot a
   * commit is still writing is past that frontier, so it is never half-seen.
   */
  committedState(stepId: string, key: string, worker: number): { found: boolean; state?: unknown; epoch?: number } {
    const frontier = this.#frontiers.get(worker) ?? this.#resumeEpoch;
    const part = this.#parts[stableHash(`${stepId}\u0000${key}`) % this.#parts.length] as Partition;
    const row = part.guard(() =>
      part.db
        .prepare(
          "SELECT epoch, ser FROM snaps WHERE step_id = ? AND state_key = ? AND epoch < ? ORDER BY epoch DESC LIMIT 1",
        )
        .get(stepId, key, frontier),
    );
    if (row === undefined || row.ser == null) return { found: false, epoch: frontier - 1 };
    return { found: true, state: decodeState(row.ser, join(this.dir, part.file)), epoch: Number(row.epoch) };
  }

  /**
   * The first `limit` keys of `stepId` after `after` that start with `prefix`, have
   * committed state (among the newest snapshots before `frontier`) and that `owns`
   * accepts: each partition is read in key order and only as far as the page needs.
   */
  committedKeys(
    stepId: string,
    page: { readonly prefix: string; readonly after: string; readonly limit: number },
    frontier: number,
    owns: (key: string) => boolean,
  ): string[] {
    const keys: string[] = [];
    for (const p of this.#parts) {
      let taken = 0;
      const rows = p.iterate(
        `SELECT state_key, ser FROM snaps s WHERE step_id = ? AND state_key > ? AND state_key >= ? AND epoch = (
           SELECT MAX(epoch) FROM snaps t
           WHERE t.step_id = s.step_id AND t.state_key = s.state_key AND t.epoch < ?)
         ORDER BY state_key`,
        stepId,
        page.after,
        page.prefix,
        frontier,
      );
      for (const r of rows) {
        const key = String(r.state_key);
        // Keys in byte order: past the prefix's range, no later key has it.
        if (!key.startsWith(page.prefix)) break;
        if (r.ser == null || !owns(key)) continue;
        keys.push(key);
        if (++taken === page.limit) break;
      }
    }
    return keys;
  }

  /** The lowest committed frontier among `workers`, as this process's store has heard them. */
  committedFrontier(workers: readonly number[]): number {
    let min = Number.POSITIVE_INFINITY;
    for (const w of workers) min = Math.min(min, this.#frontiers.get(w) ?? this.#resumeEpoch);
    return min === Number.POSITIVE_INFINITY ? this.#resumeEpoch : min;
  }

  /** Stores snapshots received from other processes' stores. */
  writeRows(rows: readonly SnapshotRow[]): void {
    for (const [part, partRows] of this.#byPartition(rows)) part.write(partRows);
    this.#written += rows.length;
  }

  /**
   * Records the execution about to run: this store now holds everything it needs.
   * Records of executions before `resumedFrom` are dropped: no resume looks past it.
   */
  begin(record: ExecutionRecord, resumedFrom: number): void {
    for (const p of this.#parts) {
      p.guard(() => {
        p.db.prepare("DELETE FROM exs WHERE ex_num < ?").run(resumedFrom);
        p.db.prepare("DELETE FROM fronts WHERE ex_num < ?").run(resumedFrom);
        p.db
          .prepare(
            `INSERT INTO exs (ex_num, process_index, process_count, workers_per_process, resume_epoch, stores)
             VALUES (?, ?, ?, ?, ?, ?)`,
          )
          .run(
            record.execution,
            record.processIndex,
            record.processCount,
            record.workersPerProcess,
            record.resumeEpoch,
            JSON.stringify(record.stores),
          );
      });
    }
    this.#execution = record.execution;
    this.#resumeEpoch = record.resumeEpoch;
    // Workers that have not committed yet still need everything before the resume epoch.
    for (let w = 0; w < record.processCount * record.workersPerProcess; w++) {
      if (!this.#frontiers.has(w)) this.#frontiers.set(w, record.resumeEpoch);
    }
  }

  /**
   * The store as one worker sees it: its writes are buffered until it commits.
   * `committed` hears of each commit (peers collect garbage against it), `snapshotted`
   * of its cost.
   */
  workerView(
    hooks: {
      committed?: (worker: number, frontier: number) => void;
      snapshotted?: (stats: SnapshotStats) => void;
    } = {},
  ): StateStore {
    const pending: SnapshotRow[] = [];
    return {
      resumeEpoch: this.#resumeEpoch,
      load: (stepId, owns) => this.#load(stepId, owns),
      write: (stepId, key, epoch, state) => {
        pending.push([stepId, key, epoch, state === undefined ? null : encodeState(state)]);
      },
      commit: (worker, frontier) => {
        const started = performance.now();
        let bytes = 0;
        for (const row of pending) bytes += storedBytes(row[3]);
        this.writeRows(pending.splice(0));
        (this.#parts[worker % this.#parts.length] as Partition).writeFrontier(this.#execution, worker, frontier);
        this.observeFrontier(worker, frontier);
        hooks.snapshotted?.({ seconds: (performance.now() - started) / 1000, bytes });
        hooks.committed?.(worker, frontier);
      },
      onClusterCommit: (listener) => this.onClusterCommit(listener),
    };
  }

  /**
   * Holds garbage collection at `below` (keep, per key, the newest snapshot at or before
   * it and everything after) until called with undefined: a backup copy taken meanwhile
   * then still holds what a resume from its epoch needs, however long the copy takes.
   */
  holdCollection(below: number | undefined): void {
    this.#collectionHeldAt = below;
  }

  /** The partitions' file names in the directory: what a backup copies. */
  partitionFiles(): string[] {
    return this.#parts.map((p) => p.file);
  }

  /** The workers' frontiers of `execution` as committed to the files now (worker threads write them too). */
  storedFrontiers(execution: number): { execution: number; worker: number; frontier: number }[] {
    return this.#parts.flatMap((p) =>
      [...p.iterate("SELECT worker_index, frontier FROM fronts WHERE ex_num = ?", execution)].map((r) => ({
        execution,
        worker: Number(r.worker_index),
        frontier: Number(r.frontier),
      })),
    );
  }

  /** See StateStore.onClusterCommit; heard by the process's store, which sees every worker's commits. */
  onClusterCommit(listener: (frontier: number) => void): void {
    this.#clusterListeners.push(listener);
  }

  /**
   * A worker thread's connection to the store its process already prepared and recorded
   * the execution in: it loads and commits its worker's snapshots, and leaves garbage
   * collection to the process's connection, which hears every worker's commits.
   */
  joinExecution(execution: number, resumeEpoch: number): void {
    this.#execution = execution;
    this.#resumeEpoch = resumeEpoch;
    this.#collects = false;
  }

  get execution(): number {
    return this.#execution;
  }

  /**
   * The (step, key)s whose snapshots before `before` (the resume epoch) now belong to
   * other processes, or to no step. Their rows are deleted once every worker of the
   * cluster has committed past the resume epoch (and the backup lag): then every store
   * has recorded this execution, so no resume goes back to one that needs them here.
   */
  handedOff(before: number, keys: (readonly [string, string])[]): void {
    this.#handedOff = keys.length === 0 ? undefined : { before, keys };
  }

  /**
   * A worker of this process ran to the end of its inputs while others run on (none of its
   * source partitions, say, is endless). It has nothing left to snapshot, so whatever the
   * others commit, it has committed too: from now on its frontier follows theirs, written and
   * told (`committed`) as its own commits were. Left at its last epoch, it would hold the
   * cluster's frontier there: transactions waiting for the cluster to commit an epoch
   * (KafkaSink's) would wait forever, and a resume would go back to that epoch.
   */
  follow(worker: number, committed: (worker: number, frontier: number) => void): void {
    this.#ended.set(worker, committed);
    this.#followOthers();
  }

  #followOthers(): void {
    if (this.#ended.size === 0) return;
    let others = Number.POSITIVE_INFINITY;
    for (const [w, f] of this.#frontiers) if (!this.#ended.has(w)) others = Math.min(others, f);
    if (others === Number.POSITIVE_INFINITY) return;
    for (const [worker, committed] of this.#ended) {
      if (others <= (this.#frontiers.get(worker) ?? 0)) continue;
      (this.#parts[worker % this.#parts.length] as Partition).writeFrontier(this.#execution, worker, others);
      this.observeFrontier(worker, others);
      committed(worker, others);
    }
  }

  /** The highest committed frontier of any worker this process has heard of (savepoints start above it). */
  knownFrontier(): number {
    return Math.max(0, ...this.#frontiers.values());
  }

  /** A worker (here or in a peer process) committed `frontier`; collects garbage below the cluster's minimum. */
  observeFrontier(worker: number, frontier: number): void {
    if (frontier <= (this.#frontiers.get(worker) ?? 0)) return;
    this.#frontiers.set(worker, frontier);
    if (!this.#ended.has(worker)) this.#followOthers();
    this.#collectGarbage();
    if (this.#clusterListeners.length === 0 || this.#execution === 0) return;
    const cluster = Math.min(...this.#frontiers.values());
    if (cluster <= this.#clusterFrontier) return;
    this.#clusterFrontier = cluster;
    for (const listener of this.#clusterListeners) listener(cluster);
  }

  /** Collects what the committed frontiers allow, however little, and closes the partitions. */
  close(): void {
    try {
      this.#collectGarbage(true);
    } finally {
      for (const p of this.#parts) p.db.close();
      this.#lock?.release();
    }
  }

  #byPartition<R extends readonly [string, string, ...unknown[]]>(rows: readonly R[]): Map<Partition, R[]> {
    const byPart = new Map<Partition, R[]>();
    for (const row of rows) {
      const part = this.#parts[stableHash(`${row[0]}\u0000${row[1]}`) % this.#parts.length] as Partition;
      const list = byPart.get(part);
      if (list === undefined) byPart.set(part, [row]);
      else list.push(row);
    }
    return byPart;
  }

  *#load(stepId: string, owns: (key: string) => boolean): Generator<readonly [string, unknown]> {
    for (const p of this.#parts) {
      const rows = p.iterate(
        `SELECT state_key, ser FROM snaps s WHERE step_id = ? AND epoch = (
           SELECT MAX(epoch) FROM snaps t WHERE t.step_id = s.step_id AND t.state_key = s.state_key)`,
        stepId,
      );
      for (const row of rows) {
        const key = String(row.state_key);
        if (row.ser == null || !owns(key)) continue;
        yield [key, decodeState(row.ser, join(this.dir, p.file))];
      }
    }
  }

  /**
   * Keeps, per key, the newest snapshot at or before (frontier - backup lag) and
   * deletes older ones, so a backup of the directory taken within the backup interval
   * still holds a consistent epoch. The frontier is the minimum over the whole cluster:
   * a resume starts from it, whichever process is behind.
   *
   * A collection scans every row, so it runs once the rows written since the last one
   * reach the rows it kept (amortized: each written row pays for a constant share of
   * scanning), and always when the store closes. Collecting later only keeps more.
   */
  #collectGarbage(final = false): void {
    if (this.#execution === 0 || !this.#collects) return;
    // A resume at `frontier` loads the newest snapshot before it, so that one is kept.
    const frontier = Math.min(...this.#frontiers.values());
    const below = Math.min(frontier - 1 - this.#gcLag, this.#collectionHeldAt ?? Number.POSITIVE_INFINITY);
    if (this.#kept === undefined) {
      // Counted here, not at open: worker threads' and holders' connections never collect.
      this.#kept = this.#parts.reduce((n, p) => n + p.countSnapshots(), 0);
      this.#written = 0;
    }
    const handedOff = this.#handedOff;
    if (handedOff !== undefined && below >= handedOff.before) {
      this.#handedOff = undefined;
      let forgotten = 0;
      for (const [part, keys] of this.#byPartition(handedOff.keys)) forgotten += part.forget(keys, handedOff.before);
      this.#kept = Math.max(0, this.#kept - forgotten);
    }
    if (!final && this.#written < this.#kept) return;
    if (below <= this.#collectedBelow) return;
    this.#collectedBelow = below;
    let deleted = 0;
    for (const p of this.#parts) deleted += p.collectBefore(below);
    this.#kept = Math.max(0, this.#kept + this.#written - deleted);
    this.#written = 0;
  }
}
