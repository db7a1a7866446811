/**
 * Recovery partitions: a fixed set of SQLite files (`part-<i>.sqlite3`) in WAL mode.
 * The snapshot of (step, key) lives in partition stableHash(step, key) mod N. Every
 * execution is recorded in every partition, which is how a partition restored from an
 * older copy is caught; each worker records its frontier, and the next execution
 * resumes from the minimum over the previous execution's workers.
 */
import { mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { deserialize, serialize } from "node:v8";
import { stableHash } from "../engine/hash.ts";
import type { StateStore } from "../engine/state-store.ts";
import {
  InconsistentPartitionsError,
  MissingPartitionsError,
  MixedPartitionCountsError,
  NoPartitionsError,
  RecoveryError,
} from "./errors.ts";

const FORMAT = "1";
const PART_FILE = /^part-(\d+)\.sqlite3$/;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS exs (
    ex_num INTEGER PRIMARY KEY, worker_count INTEGER NOT NULL, resume_epoch INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS fronts (
    ex_num INTEGER NOT NULL, worker_index INTEGER NOT NULL, frontier INTEGER NOT NULL,
    PRIMARY KEY (ex_num, worker_index));
  CREATE TABLE IF NOT EXISTS snaps (
    step_id TEXT NOT NULL, state_key TEXT NOT NULL, epoch INTEGER NOT NULL, ser BLOB,
    PRIMARY KEY (step_id, state_key, epoch));
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

/** Creates `count` empty partitions in `dir` (as `waxflow recovery init DIR N`). */
export function initRecoveryDirectory(dir: string, count: number): void {
  if (!Number.isInteger(count) || count < 1) {
    throw new RecoveryError(`partition count must be a whole number >= 1, got ${count}`);
  }
  mkdirSync(dir, { recursive: true });
  const existing = readdirSync(dir).filter((f) => PART_FILE.test(f));
  if (existing.length > 0) {
    throw new RecoveryError(`recovery directory ${dir} is already initialized (${existing.length} partitions found)`);
  }
  for (let i = 0; i < count; i++) {
    const db = openDb(join(dir, partitionFile(i)));
    db.exec(SCHEMA);
    const meta = db.prepare("INSERT INTO meta (name, value) VALUES (?, ?)");
    meta.run("format", FORMAT);
    meta.run("index", String(i));
    meta.run("count", String(count));
    db.close();
  }
}

class Partition {
  readonly db: DatabaseSync;
  readonly file: string;
  readonly index: number;
  readonly count: number;
  // Prepared once: commits and garbage collection run every epoch.
  readonly #upsert: StatementSync;
  readonly #front: StatementSync;
  readonly #collect: StatementSync;

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
      throw new RecoveryError(`${join(dir, file)} has recovery format ${meta.get("format")}, expected ${FORMAT}`);
    }
    this.index = Number(meta.get("index"));
    this.count = Number(meta.get("count"));
    this.#upsert = this.db.prepare("INSERT OR REPLACE INTO snaps (step_id, state_key, epoch, ser) VALUES (?, ?, ?, ?)");
    this.#front = this.db.prepare("INSERT OR REPLACE INTO fronts (ex_num, worker_index, frontier) VALUES (?, ?, ?)");
    this.#collect = this.db.prepare(
      `DELETE FROM snaps WHERE epoch < (
         SELECT MAX(t.epoch) FROM snaps t
         WHERE t.step_id = snaps.step_id AND t.state_key = snaps.state_key AND t.epoch <= ?)`,
    );
  }

  writeFrontier(execution: number, worker: number, frontier: number): void {
    this.#front.run(execution, worker, frontier);
  }

  /** Deletes every snapshot older than its key's newest one at or before `epoch`. */
  collectBefore(epoch: number): void {
    this.#collect.run(epoch);
  }

  latestExecution(): number {
    const row = this.db.prepare("SELECT MAX(ex_num) AS ex FROM exs").get();
    return row?.ex == null ? 0 : Number(row.ex);
  }

  write(rows: readonly SnapshotRow[]): void {
    this.db.exec("BEGIN");
    try {
      for (const [stepId, key, epoch, ser] of rows) this.#upsert.run(stepId, key, epoch, ser);
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
  }
}

type SnapshotRow = readonly [stepId: string, key: string, epoch: number, ser: Uint8Array | null];

export interface OpenOptions {
  /** Workers of the execution about to start, over all processes. */
  readonly workerCount: number;
  readonly snapshotIntervalMs: number;
  /** How long snapshots are kept before garbage collection (Bytewax's backup interval). */
  readonly backupIntervalMs: number;
}

/** An open recovery directory for one execution. */
export class RecoveryStore {
  readonly dir: string;
  readonly resumeEpoch: number;
  readonly execution: number;
  readonly #parts: Partition[];
  readonly #frontiers = new Map<number, number>();
  readonly #gcLag: number;
  #collectedBelow = 0;

  private constructor(dir: string, parts: Partition[], resumeEpoch: number, execution: number, gcLag: number) {
    this.dir = dir;
    this.#parts = parts;
    this.resumeEpoch = resumeEpoch;
    this.execution = execution;
    this.#gcLag = gcLag;
  }

  static open(dir: string, opts: OpenOptions): RecoveryStore {
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => PART_FILE.test(f));
    } catch {
      files = [];
    }
    if (files.length === 0) {
      throw new NoPartitionsError(
        `recovery directory ${dir} has no partitions; create them with \`waxflow recovery init ${dir} <count>\``,
      );
    }
    const parts = files.map((f) => new Partition(dir, f)).sort((a, b) => a.index - b.index);
    const counts = new Set(parts.map((p) => p.count));
    if (counts.size > 1) {
      const detail = parts.map((p) => `${p.file}: ${p.count}`).join(", ");
      throw new MixedPartitionCountsError(
        `recovery partitions in ${dir} come from directories with different partition counts (${detail}); keep the partitions of one directory only`,
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
    const resumeEpoch = newest === 0 ? 1 : computeResumeEpoch(parts, newest);
    const execution = newest + 1;
    for (const p of parts) {
      p.db.exec("BEGIN");
      // Snapshots at or after the resume epoch belong to epochs that will run again,
      // with different boundaries: keeping them would let a later resume load them.
      p.db.prepare("DELETE FROM snaps WHERE epoch >= ?").run(resumeEpoch);
      p.db
        .prepare("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)")
        .run(execution, opts.workerCount, resumeEpoch);
      p.db.exec("COMMIT");
    }
    const gcLag = Math.ceil(opts.backupIntervalMs / opts.snapshotIntervalMs);
    const store = new RecoveryStore(dir, parts, resumeEpoch, execution, gcLag);
    // Workers that have not committed yet still need everything before the resume epoch.
    for (let w = 0; w < opts.workerCount; w++) store.#frontiers.set(w, resumeEpoch);
    return store;
  }

  /** The store as one worker sees it: its writes are buffered until it commits. */
  workerView(): StateStore {
    const pending: Array<[Partition, SnapshotRow]> = [];
    return {
      resumeEpoch: this.resumeEpoch,
      load: (stepId, owns) => this.#load(stepId, owns),
      write: (stepId, key, epoch, state) => {
        const ser = state === undefined ? null : serialize(state);
        pending.push([this.#partFor(stepId, key), [stepId, key, epoch, ser]]);
      },
      commit: (worker, frontier) => {
        const byPart = new Map<Partition, SnapshotRow[]>();
        for (const [part, row] of pending.splice(0)) {
          const rows = byPart.get(part);
          if (rows === undefined) byPart.set(part, [row]);
          else rows.push(row);
        }
        for (const [part, rows] of byPart) part.write(rows);
        this.#commitFrontier(worker, frontier);
      },
    };
  }

  close(): void {
    for (const p of this.#parts) p.db.close();
  }

  #partFor(stepId: string, key: string): Partition {
    return this.#parts[stableHash(`${stepId}\u0000${key}`) % this.#parts.length] as Partition;
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
        yield [key, deserialize(row.ser as Uint8Array)];
      }
    }
  }

  #commitFrontier(worker: number, frontier: number): void {
    (this.#parts[worker % this.#parts.length] as Partition).writeFrontier(this.execution, worker, frontier);
    this.#frontiers.set(worker, frontier);
    this.#collectGarbage();
  }

  /**
   * Keeps, per key, the newest snapshot at or before (frontier - backup lag) and
   * deletes older ones, so a backup of the directory taken within the backup interval
   * still holds a consistent epoch.
   */
  #collectGarbage(): void {
    // A resume at `frontier` loads the newest snapshot before it, so that one is kept.
    const frontier = Math.min(...this.#frontiers.values());
    const below = frontier - 1 - this.#gcLag;
    if (below <= this.#collectedBelow) return;
    this.#collectedBelow = below;
    for (const p of this.#parts) p.collectBefore(below);
  }
}

function computeResumeEpoch(parts: readonly Partition[], execution: number): number {
  let workerCount = 0;
  let started = 1;
  const fronts = new Map<number, number>();
  for (const p of parts) {
    const ex = p.db.prepare("SELECT worker_count, resume_epoch FROM exs WHERE ex_num = ?").get(execution);
    if (ex !== undefined) {
      workerCount = Number(ex.worker_count);
      started = Number(ex.resume_epoch);
    }
    for (const row of p.db.prepare("SELECT worker_index, frontier FROM fronts WHERE ex_num = ?").all(execution)) {
      fronts.set(Number(row.worker_index), Number(row.frontier));
    }
  }
  let resume = Number.POSITIVE_INFINITY;
  for (let w = 0; w < workerCount; w++) resume = Math.min(resume, fronts.get(w) ?? started);
  return Number.isFinite(resume) ? resume : started;
}
