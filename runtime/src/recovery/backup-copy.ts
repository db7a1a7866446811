/**
 * One partition's backup copy: `VACUUM INTO` from a connection of its own while the
 * process's connections go on committing, then the copy's frontiers lowered to the ones
 * pinned before the copy started.
 *
 * Why the copy is one committed state of the file: `VACUUM INTO` is one statement, so it
 * reads the whole source in one read transaction, and in WAL mode a read transaction sees
 * the database as of the last commit before it began, whatever the writers append to the
 * WAL meanwhile (no checkpoint overwrites a page it may still read). SQLite documents the
 * output as a consistent snapshot of the source.
 *
 * Not SQLite's online backup API (node:sqlite's `backup()`): measured on the backup bench
 * (bench/README.md), it took about 40% less CPU per copy in one step of every page (one
 * read transaction; a backup of many steps restarts whenever another connection writes),
 * but copies the live file's half-empty pages where `VACUUM INTO` rebuilds them full:
 * 8–10% more bytes mid-run, more than twice as many after a collection, and the upload,
 * whose cost follows the bytes, costs more than the copy. The throughput with backups
 * was no better.
 */
import { DatabaseSync } from "node:sqlite";

export interface PinnedFrontier {
  readonly execution: number;
  readonly worker: number;
  readonly frontier: number;
}

/** Copies the partition at `live` to `copy` (which must not exist), then pins the copy's frontiers. */
export function copyPartition(live: string, copy: string, pinned: readonly PinnedFrontier[]): void {
  const source = new DatabaseSync(live, { readOnly: true });
  try {
    // A commit's WAL append can hold the lock a read transaction needs for an instant.
    source.exec("PRAGMA busy_timeout = 5000");
    source.prepare("VACUUM INTO ?").run(copy);
  } finally {
    source.close();
  }
  const db = new DatabaseSync(copy);
  try {
    // Lowered to the frontiers read before the copy: every snapshot below them was
    // committed then, so copies of partitions taken a moment apart still agree.
    const pin = db.prepare("UPDATE fronts SET frontier = MIN(frontier, ?) WHERE ex_num = ? AND worker_index = ?");
    for (const f of pinned) pin.run(f.frontier, f.execution, f.worker);
  } finally {
    db.close();
  }
}
