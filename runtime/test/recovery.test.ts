import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, expect, test } from "vitest";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import {
  InconsistentPartitionsError,
  initRecoveryDirectory,
  MissingPartitionsError,
  MixedPartitionCountsError,
  NoPartitionsError,
  RecoveryDirectoryInUseError,
  RecoveryStore,
} from "waxflow/recovery";
import { AbortExecution, clusterMain, runMain, TestingSink, TestingSource } from "waxflow/testing";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "waxflow-recovery-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

type Item = [string, number] | InstanceType<typeof TestingSource.EOF> | InstanceType<typeof TestingSource.ABORT>;

function keepMaxFlow(items: Item[], out: [string, number][]): Dataflow {
  const flow = new Dataflow("rescale");
  const s = op.input("inp", flow, new TestingSource(items));
  const maxes = op.statefulMap("keep_max", s, (max: number | undefined, v: number): [number, number] => {
    const next = Math.max(max ?? v, v);
    return [next, next];
  });
  op.output("out", maxes, new TestingSink(out));
  return flow;
}

test("rescale on resume: 3 workers, then 5, then 1 (Bytewax's test_rescale)", async () => {
  const dir = tempDir();
  initRecoveryDirectory(dir, 3);
  const items: Item[] = [
    ["a", 4],
    ["b", 4],
    new TestingSource.EOF(),
    ["a", 1],
    ["b", 5],
    new TestingSource.EOF(),
    ["a", 8],
    ["b", 1],
    new TestingSource.EOF(),
  ];
  const runs: [number, [string, number][]][] = [
    [
      3,
      [
        ["a", 4],
        ["b", 4],
      ],
    ],
    [
      5,
      [
        ["a", 4],
        ["b", 5],
      ],
    ],
    [
      1,
      [
        ["a", 8],
        ["b", 5],
      ],
    ],
  ];
  for (const [workers, expected] of runs) {
    const out: [string, number][] = [];
    await clusterMain(keepMaxFlow(items, out), {
      workersPerProcess: workers,
      epochIntervalMs: 1,
      recovery: { dbDir: dir },
    });
    expect(out.sort()).toEqual(expected);
  }
});

test("an abort mid-stream resumes from the last epoch: state counts every item once", async () => {
  const dir = tempDir();
  initRecoveryDirectory(dir, 2);
  const n = 200;
  const items: (number | InstanceType<typeof TestingSource.ABORT> | InstanceType<typeof TestingSource.PAUSE>)[] = [];
  for (let i = 1; i <= n; i++) {
    items.push(i);
    // The pause lets epochs close (and snapshot) before the abort.
    if (i === 60) items.push(new TestingSource.PAUSE(30));
    if (i === 120) items.push(new TestingSource.ABORT());
  }
  const read: number[] = [];
  const build = (out: [string, number][]): Dataflow => {
    const flow = new Dataflow("sum");
    const s = op.inspect("read", op.input("inp", flow, new TestingSource(items, 7)), (_id, x) => {
      read.push(x);
    });
    const keyed = op.keyOn("key", s, (x) => (x % 2 === 0 ? "even" : "odd"));
    const sums = op.foldFinal(
      "sum",
      keyed,
      () => 0,
      (acc, x) => acc + x,
    );
    op.output("out", sums, new TestingSink(out));
    return flow;
  };
  const first: [string, number][] = [];
  await expect(runMain(build(first), { epochIntervalMs: 1, recovery: { dbDir: dir } })).rejects.toThrow(AbortExecution);
  expect(first).toEqual([]);
  const second: [string, number][] = [];
  read.length = 0;
  await runMain(build(second), { epochIntervalMs: 1, recovery: { dbDir: dir } });
  // It resumed after the first run's last snapshot: a run that started over (the ABORT
  // marker fires only once) would also reach the right sums.
  expect(read[0]).toBeGreaterThan(60);
  expect(read.length).toBeLessThan(n - 60);
  const evens = items.filter((x): x is number => typeof x === "number" && x % 2 === 0);
  const odds = items.filter((x): x is number => typeof x === "number" && x % 2 === 1);
  expect(second.sort()).toEqual([
    ["even", evens.reduce((a, b) => a + b, 0)],
    ["odd", odds.reduce((a, b) => a + b, 0)],
  ]);
});

test("garbage collection keeps only the newest snapshot per key with no backup interval", async () => {
  const dir = tempDir();
  initRecoveryDirectory(dir, 1);
  const items = Array.from({ length: 50 }, (_, i): [string, number] => ["k", i]);
  const flow = keepMaxFlow(items, []);
  await runMain(flow, { epochIntervalMs: 1, recovery: { dbDir: dir } });
  const db = new DatabaseSync(join(dir, "part-0.sqlite3"));
  const rows = db.prepare("SELECT COUNT(*) AS n FROM snaps WHERE step_id = 'rescale.keep_max.stateful_batch'").get();
  db.close();
  expect(Number(rows?.n)).toBe(1);
});

test("an uninitialized directory is rejected with NoPartitionsError", async () => {
  const dir = tempDir();
  await expect(runMain(keepMaxFlow([], []), { recovery: { dbDir: dir } })).rejects.toThrow(NoPartitionsError);
  await expect(runMain(keepMaxFlow([], []), { recovery: { dbDir: dir } })).rejects.toThrow(/waxflow recovery init/);
});

test("a missing partition file is rejected with MissingPartitionsError naming it", async () => {
  const dir = tempDir();
  initRecoveryDirectory(dir, 3);
  rmSync(join(dir, "part-1.sqlite3"));
  await expect(runMain(keepMaxFlow([], []), { recovery: { dbDir: dir } })).rejects.toThrow(MissingPartitionsError);
  await expect(runMain(keepMaxFlow([], []), { recovery: { dbDir: dir } })).rejects.toThrow(/part-1\.sqlite3/);
});

test("a partition restored from an older copy is rejected with InconsistentPartitionsError", async () => {
  const dir = tempDir();
  const backup = tempDir();
  initRecoveryDirectory(dir, 2);
  await runMain(keepMaxFlow([["a", 1]], []), { epochIntervalMs: 1, recovery: { dbDir: dir } });
  copyFileSync(join(dir, "part-1.sqlite3"), join(backup, "part-1.sqlite3"));
  await runMain(keepMaxFlow([["a", 1]], []), { epochIntervalMs: 1, recovery: { dbDir: dir } });
  for (const suffix of ["-wal", "-shm"]) rmSync(join(dir, `part-1.sqlite3${suffix}`), { force: true });
  copyFileSync(join(backup, "part-1.sqlite3"), join(dir, "part-1.sqlite3"));
  await expect(runMain(keepMaxFlow([], []), { recovery: { dbDir: dir } })).rejects.toThrow(InconsistentPartitionsError);
});

test("partitions of directories with different counts are rejected with MixedPartitionCountsError", async () => {
  const dir = tempDir();
  const other = tempDir();
  initRecoveryDirectory(dir, 2);
  initRecoveryDirectory(other, 3);
  copyFileSync(join(other, "part-2.sqlite3"), join(dir, "part-2.sqlite3"));
  await expect(runMain(keepMaxFlow([], []), { recovery: { dbDir: dir } })).rejects.toThrow(MixedPartitionCountsError);
});

test("every kind of state resumes exactly from SQLite: native numbers and strings, V8 for the rest", async () => {
  const dir = tempDir();
  initRecoveryDirectory(dir, 2);
  const states: Record<string, unknown> = {
    int: 42,
    big: 2 ** 60,
    frac: -1.25,
    negzero: -0,
    nan: Number.NaN,
    text: "héllo",
    surrogate: "x\uD800",
    nil: null,
    map: new Map([["a", new Date(7)]]),
  };
  // Run 1 stores each key's state; run 2 reads one more item per key and emits the state it resumed with.
  const build = (items: (string | InstanceType<typeof TestingSource.EOF>)[], out: [string, unknown][]) => {
    const flow = new Dataflow("kinds");
    const keyed = op.keyOn("key", op.input("inp", flow, new TestingSource(items)), (k) => k);
    const resumed = op.statefulMap("keep", keyed, (state: unknown, key: string): [unknown, unknown] =>
      state === undefined ? [states[key], "fresh"] : [state, state],
    );
    op.output("out", resumed, new TestingSink(out));
    return flow;
  };
  const keys = Object.keys(states);
  await runMain(build([...keys, new TestingSource.EOF()], []), { epochIntervalMs: 1, recovery: { dbDir: dir } });
  const out: [string, unknown][] = [];
  await runMain(build([...keys, new TestingSource.EOF(), ...keys], out), {
    epochIntervalMs: 1,
    recovery: { dbDir: dir },
  });
  expect(out).toHaveLength(keys.length);
  for (const [key, state] of out) {
    if (typeof state === "number") expect(Object.is(state, states[key])).toBe(true);
    else expect(state).toEqual(states[key]);
  }
});

test("removedSteps lists steps with live state the dataflow lacks, not steps whose keys are all deleted", () => {
  const dir = tempDir();
  initRecoveryDirectory(dir, 2);
  const store = RecoveryStore.open(dir, { snapshotIntervalMs: 1000, backupIntervalMs: 0 });
  try {
    const view = store.workerView();
    view.write("f.kept", "a", 1, 1);
    view.write("f.gone", "a", 1, 1);
    view.write("f.gone", "b", 1, 2);
    view.write("f.gone", "c", 1, 3);
    view.write("f.gone", "c", 2, undefined);
    view.write("f.flushed", "a", 1, 1);
    view.write("f.flushed", "a", 2, undefined);
    view.commit(0, 3);
    expect(store.removedSteps(new Set(["f.kept"]))).toEqual([{ stepId: "f.gone", keys: 2 }]);
    store.dropSteps(["f.gone"]);
    expect(store.removedSteps(new Set(["f.kept"]))).toEqual([]);
  } finally {
    store.close();
  }
});

test("a store is open in one place at a time: a second open fails until the first closes", () => {
  const dir = tempDir();
  initRecoveryDirectory(dir, 1);
  const opts = { snapshotIntervalMs: 1000, backupIntervalMs: 0 };
  const first = RecoveryStore.open(dir, opts);
  expect(() => RecoveryStore.open(dir, opts)).toThrow(RecoveryDirectoryInUseError);
  expect(() => RecoveryStore.open(dir, opts)).toThrow(
    new RegExp(`^recovery directory ${dir} is in use by another process \\(pid ${process.pid} on host `),
  );
  // A worker thread's connection of the process that holds the lock.
  RecoveryStore.open(dir, { ...opts, lock: false }).close();
  first.close();
  RecoveryStore.open(dir, opts).close();
});
