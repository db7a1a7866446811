// A backup copy of a partition (recovery/backup-copy.ts) taken while another connection,
// in another thread, commits to the live file: each copy must be one committed state of
// it, with the frontiers pinned, in a file that stands alone (no -wal beside it).
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Worker } from "node:worker_threads";
import { afterEach, expect, test } from "vitest";
import { copyPartition } from "../src/recovery/backup-copy.ts";
import { initRecoveryDirectory, partitionFile } from "../src/recovery/store.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const KEYS_PER_EPOCH = 500;
const FIRST_EPOCHS = 400;

// The process's connection settings; each commit holds every key's snapshot at one epoch
// and worker 0's frontier past it, so a copy of anything but one commit's state shows.
// Counts its epochs in shared memory; stops when the main thread sets slot 1.
const WRITER = `
const { workerData } = require("node:worker_threads");
const { DatabaseSync } = require("node:sqlite");
const { path, keys, first, shared } = workerData;
const state = new Int32Array(shared);
const db = new DatabaseSync(path);
db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
const snap = db.prepare("INSERT INTO snaps (step_id, state_key, epoch, ser) VALUES ('count', ?, ?, ?)");
const front = db.prepare("INSERT OR REPLACE INTO fronts (ex_num, worker_index, frontier) VALUES (1, 0, ?)");
for (let epoch = 1; Atomics.load(state, 1) === 0; epoch++) {
  db.exec("BEGIN");
  for (let k = 0; k < keys; k++) snap.run("k" + k, epoch, epoch * 1000 + k);
  front.run(epoch + 1);
  db.exec("COMMIT");
  Atomics.store(state, 0, epoch);
  if (epoch === first) Atomics.notify(state, 0);
}
db.close();
`;

test("copies taken while another thread commits are each one committed state, pinned, with no -wal", async () => {
  const dir = mkdtempSync(join(tmpdir(), "waxflow-backup-copy-"));
  dirs.push(dir);
  initRecoveryDirectory(dir, 1);
  const live = join(dir, partitionFile(0));
  const shared = new SharedArrayBuffer(8);
  const state = new Int32Array(shared);
  const writer = new Worker(WRITER, {
    eval: true,
    workerData: { path: live, keys: KEYS_PER_EPOCH, first: FIRST_EPOCHS, shared },
  });
  const exited = new Promise((resolve, reject) => {
    writer.once("exit", resolve);
    writer.once("error", reject);
  });
  const copies: { path: string; during: number; pinned: number }[] = [];
  try {
    // Enough pages first that a copy takes several commits' time.
    while (Atomics.load(state, 0) < FIRST_EPOCHS) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 3; i++) {
      const path = join(dir, `copy-${i}.sqlite3`);
      const before = Atomics.load(state, 0);
      // The first copy's pin is above anything (its frontier stays the one committed with
      // its newest epoch); the others', below what is committed meanwhile. Worker 7 has
      // no row: a pin adds none.
      const pinned = i === 0 ? 1e9 : before - 10;
      copyPartition(live, path, [
        { execution: 1, worker: 0, frontier: pinned },
        { execution: 1, worker: 7, frontier: 3 },
      ]);
      copies.push({ path, during: Atomics.load(state, 0) - before, pinned });
    }
  } finally {
    Atomics.store(state, 1, 1);
    await exited;
  }

  for (const { path, during, pinned } of copies) {
    // Commits landed while the copy ran, so a copy that was not one snapshot could show it.
    expect(during).toBeGreaterThan(0);
    expect(existsSync(`${path}-wal`)).toBe(false);
    // Byte 18 of the header: 1 = rollback journal (2 would want a -wal file beside it).
    expect(readFileSync(path)[18]).toBe(1);
    const copy = new DatabaseSync(path, { readOnly: true });
    try {
      expect(copy.prepare("PRAGMA integrity_check").get()?.integrity_check).toBe("ok");
      const epochs = copy
        .prepare("SELECT epoch, COUNT(*) AS n FROM snaps GROUP BY epoch ORDER BY epoch")
        .all()
        .map((r) => [Number(r.epoch), Number(r.n)]);
      // Whole epochs 1..N, none missing and none half-written.
      expect(epochs.every(([e, n], i) => e === i + 1 && n === KEYS_PER_EPOCH)).toBe(true);
      const newest = epochs.length;
      expect(newest).toBeGreaterThanOrEqual(FIRST_EPOCHS);
      const fronts = copy
        .prepare("SELECT worker_index, frontier FROM fronts")
        .all()
        .map((r) => [Number(r.worker_index), Number(r.frontier)]);
      // Unpinned, the frontier committed with the newest epoch; pinned, the pin.
      expect(fronts).toEqual([[0, Math.min(newest + 1, pinned)]]);
    } finally {
      copy.close();
    }
  }
});
