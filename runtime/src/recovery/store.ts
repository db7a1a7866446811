/**
 * A process's recovery store: a fixed set of SQLite files (`part-<i>.sqlite3`) in WAL
 * mode in its own directory (on Kubernetes, its pod's volume). The snapshot of
 * (step, key) lives in partition stableHash(step, key) mod N. Every partition records
 * every execution the process took part in, which is how a partition restored from an
 * older copy is caught; each worker records its frontier. Which execution to resume
 * from is decided over all processes' stores (plan.ts); this file keeps one store.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { stableHash } from "../engine/hash.ts";
import type { StateStore } from "../engine/state-store.ts";
import {
  InconsistentPartitionsError,
  MissingPartitionsError,
  MixedPartitionCountsError,
  NoPartitionsError,
  RecoveryError,
} from "./errors.ts";
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

function openDb(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  // WAL survives a killed process without losing committed epochs; NORMAL skips the
  // fsync per commit that only matters for power loss of the node.
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
  return db;
}

function partitionFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => PART_FILE.test(f));
  } catch {
    return [];
  }
}

/** Creates a store of `count` empty partitions in `dir` (as `waxflow recovery init DIR N`). */
export function initRecoveryDirectory(dir: string, count: number): void {
  if (!Number.isInteger(count) || count < 1) {
    throw new RecoveryError(`partition count must be a whole number >= 1, got ${count}`);
  }
  mkdirSync(dir, { recursive: true });
  const existing = partitionFiles(dir);
  if (existing.length > 0) {
    throw new RecoveryError(`recovery directory ${dir} is already initialized (${existing.length} partitions found)`);
  }
  const storeId = randomUUID();
  for (let i = 0; i < count; i++) {
    const db = openDb(join(dir, partitionFile(i)));
    db.exec(SCHEMA);
    const meta = db.prepare("INSERT INTO meta (name, value) VALUES (?, ?)");
    meta.run("format", FORMAT);
    meta.run("index", String(i));
    meta.run("count", String(count));
    meta.run("store", storeId);
    db.close();
  }
}

class Partition {
  readonly db: DatabaseSync;
  readonly file: string;
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
    this.db = openDb(join(dir, file));
    const meta = new Map<string, string>();
    try {
      for (const row of this.db.prepare("SELECT name, value FROM meta").all()) {
        meta.set(String(row.name), String(row.value));
      }
    } catch (err) {
      throw new RecoveryError(`${join(dir, file)} is not a waxflow recovery partition: ${(err as Error).message}`);
    }
    if (meta.get("format") !== FORMAT) {
      throw new RecoveryError(
        `${join(dir, file)} has recovery format ${meta.get("format")}, expected ${FORMAT}; ` +
          "it was written by another waxflow version: start from an empty directory",
      );
    }
    this.index = Number(meta.get("index"));
    this.count = Number(meta.get("count"));
    this.storeId = String(meta.get("store"));
    this.#upsert = this.db.prepare("INSERT OR REPLACE INTO snaps (step_id, state_key, epoch, ser) VALUES (?, ?, ?, ?)");
    this.#front = this.db.prepare("INSERT OR REPLACE INTO fronts (ex_num, worker_index, frontier) VALUES (?, ?, ?)");
    this.#forget = this.db.prepare("DELETE FROM snaps WHERE step_id = ? AND state_key = ? AND epoch < ?");
    this.#collect = this.db.prepare(
      `DELETE FROM snaps WHERE epoch < (
         SELECT MAX(t.epoch) FROM snaps t
         WHERE t.step_id = snaps.step_id AND t.state_key = snaps.state_key AND t.epoch <= ?)`,
    );
  }

  writeFrontier(execution: number, worker: number, frontier: number): void {
    this.#front.run(execution, worker, frontier);
  }

  /** Deletes every snapshot older than its key's newest one at or before `epoch`; returns how many. */
  collectBefore(epoch: number): number {
    return Number(this.#collect.run(epoch).changes);
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
    return Number(this.db.prepare("SELECT COUNT(*) AS n FROM snaps").get()?.n ?? 0);
  }

  latestExecution(): number {
    const row = this.db.prepare("SELECT MAX(ex_num) AS ex FROM exs").get();
    return row?.ex == null ? 0 : Number(row.ex);
  }

  write(rows: readonly SnapshotRow[]): void {
    this.transaction(() => {
      for (const [stepId, key, epoch, ser] of rows) this.#upsert.run(stepId, key, epoch, ser);
    });
  }

  transaction(body: () => void): void {
    this.db.exec("BEGIN");
    try {
      body();
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }
}

export interface OpenOptions {
  /** Create the store if the directory holds no partitions (`--recovery-init`). */
  readonly create?: boolean;
  readonly snapshotIntervalMs: number;
  /** How long snapshots are kept before garbage collection (Bytewax's backup interval). */
  readonly backupIntervalMs: number;
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

  private constructor(dir: string, parts: Partition[], gcLag: number) {
    this.dir = dir;
    this.#parts = parts;
    this.storeId = parts[0]?.storeId ?? "";
    this.#gcLag = gcLag;
  }

  static open(dir: string, opts: OpenOptions): RecoveryStore {
    let files = partitionFiles(dir);
    if (files.length === 0 && opts.create === true) {
      initRecoveryDirectory(dir, CREATED_PARTITIONS);
      files = partitionFiles(dir);
    }
    if (files.length === 0) {
      throw new NoPartitionsError(
        `recovery directory ${dir} has no partitions; create them with \`waxflow recovery init ${dir} <count>\`, ` +
          "or run with --recovery-init (WAXFLOW_RECOVERY_INIT=true) to create them when the directory is empty",
      );
    }
    const parts = files.map((f) => new Partition(dir, f)).sort((a, b) => a.index - b.index);
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
    return new RecoveryStore(dir, parts, Math.ceil(opts.backupIntervalMs / opts.snapshotIntervalMs));
  }

  get resumeEpoch(): number {
    return this.#resumeEpoch;
  }

  /** The executions this store took part in and its workers' frontiers, offered as `process`. */
  records(process: number): StoreRecords {
    const first = this.#parts[0] as Partition;
    const executions: ExecutionRecord[] = first.db
      .prepare("SELECT * FROM exs ORDER BY ex_num")
      .all()
      .map((r) => ({
        execution: Number(r.ex_num),
        processIndex: Number(r.process_index),
        processCount: Number(r.process_count),
        workersPerProcess: Number(r.workers_per_process),
        resumeEpoch: Number(r.resume_epoch),
        stores: JSON.parse(String(r.stores)) as string[],
      }));
    const frontiers = this.#parts.flatMap((p) =>
      p.db
        .prepare("SELECT ex_num, worker_index, frontier FROM fronts")
        .all()
        .map((r) => ({ execution: Number(r.ex_num), worker: Number(r.worker_index), frontier: Number(r.frontier) })),
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
      if (stale) p.db.exec("DELETE FROM snaps");
      else p.db.prepare("DELETE FROM snaps WHERE epoch >= ?").run(resumeEpoch);
    }
    this.#kept = undefined;
  }

  /** The newest snapshot of every (step, key) before `epoch`, deletions included: what a resume needs. */
  *newestBelow(epoch: number): Generator<SnapshotRow> {
    for (const p of this.#parts) {
      const rows = p.db
        .prepare(
          `SELECT step_id, state_key, epoch, ser FROM snaps s WHERE epoch = (
             SELECT MAX(epoch) FROM snaps t
             WHERE t.step_id = s.step_id AND t.state_key = s.state_key AND t.epoch < ?)`,
        )
        .iterate(epoch);
      for (const r of rows) {
        yield [String(r.step_id), String(r.state_key), Number(r.epoch), (r.ser as StoredState | null) ?? null];
      }
    }
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

  /** A worker (here or in a peer process) committed `frontier`; collects garbage below the cluster's minimum. */
  observeFrontier(worker: number, frontier: number): void {
    if (frontier <= (this.#frontiers.get(worker) ?? 0)) return;
    this.#frontiers.set(worker, frontier);
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
      const rows = p.db
        .prepare(
          `SELECT state_key, ser FROM snaps s WHERE step_id = ? AND epoch = (
             SELECT MAX(epoch) FROM snaps t WHERE t.step_id = s.step_id AND t.state_key = s.state_key)`,
        )
        .iterate(stepId);
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
    const below = frontier - 1 - this.#gcLag;
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
