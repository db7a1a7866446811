/**
 * Recovery costs. `recovery-overhead`: the stateful count with 1 s snapshots into SQLite
 * partitions, beside the same dataflow with recovery off (the "loop" column is that
 * baseline; target ratio >= 0.8). `resume-100k`: time to resume 100k keys of state
 * (items = keys loaded).
 */
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { initRecoveryDirectory, partitionFile } from "waxflow/recovery";
import { runMain, TestingSource } from "waxflow/testing";
import { type BenchCase, expectEqual } from "../harness.ts";
import { ArraySource, CountingSink } from "../io.ts";

const N = 3_000_000;
const KEYS = 10_000;
const SNAPSHOT_MS = 1_000;

const count = (state: number | undefined): readonly [number, number] => {
  const next = (state ?? 0) + 1;
  return [next, next];
};

function snapshottedKeys(dir: string): number {
  let keys = 0;
  for (let i = 0; i < 4; i++) {
    const db = new DatabaseSync(join(dir, partitionFile(i)));
    keys += Number(
      db
        .prepare(
          "SELECT COUNT(DISTINCT state_key) AS n FROM snaps WHERE step_id = 'bench_recovery.count.stateful_batch'",
        )
        .get()?.n,
    );
    db.close();
  }
  return keys;
}

async function countRun(recovery: boolean): Promise<number> {
  const items = Array.from({ length: N }, (_, n) => `u${n % KEYS}`);
  const sink = new CountingSink<[string, number]>();
  const flow = new Dataflow("bench_recovery");
  const keyed = op.keyOn("key", op.input("inp", flow, new ArraySource(items)), (user) => user);
  op.output("out", op.statefulMap("count", keyed, count), sink);
  const dir = recovery ? mkdtempSync(join(tmpdir(), "waxflow-bench-")) : undefined;
  try {
    if (dir !== undefined) initRecoveryDirectory(dir, 4);
    await runMain(flow, { epochIntervalMs: SNAPSHOT_MS, recovery: dir === undefined ? undefined : { dbDir: dir } });
    // With recovery on, every key's count must be in the partitions: the case measures nothing otherwise.
    if (dir !== undefined) expectEqual("recovery-overhead keys snapshotted", snapshottedKeys(dir), KEYS);
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
  expectEqual("recovery-overhead output count", sink.count, N);
  return N;
}

export const recoveryOverhead: BenchCase = {
  title: "stateful count, 3M items, 10k keys: recovery on (1 s snapshots) vs off",
  targets: { minRatio: 0.8 },
  async prepare() {
    return { engine: () => countRun(true), loop: () => countRun(false) };
  },
};

const RESUME_KEYS = 100_000;

function resumeFlow(items: (string | InstanceType<typeof TestingSource.EOF>)[], sink: CountingSink<[string, number]>) {
  const flow = new Dataflow("bench_resume");
  const keyed = op.keyOn("key", op.input("inp", flow, new TestingSource(items, 10_000)), (k) => k);
  op.output("out", op.statefulMap("count", keyed, count), sink);
  return flow;
}

export const resume100k: BenchCase = {
  title: "resume 100k keys of state from SQLite (items = keys)",
  targets: {},
  async prepare() {
    const dir = mkdtempSync(join(tmpdir(), "waxflow-bench-resume-"));
    initRecoveryDirectory(dir, 4);
    const keys = Array.from({ length: RESUME_KEYS }, (_, i) => `k${i}`);
    // Write every key's state once; later runs resume it and read nothing new.
    const items = [...keys, new TestingSource.EOF()];
    await runMain(resumeFlow(items, new CountingSink()), { epochIntervalMs: 60_000, recovery: { dbDir: dir } });
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    return {
      async engine(): Promise<number> {
        // Each run resumes a fresh copy (a few MB; the copy is timed too) and reads one
        // more key after the EOF marker: its count shows the state was resumed.
        const copy = mkdtempSync(join(tmpdir(), "waxflow-bench-resume-run-"));
        cpSync(dir, copy, { recursive: true });
        try {
          const sink = new CountingSink<[string, number]>();
          await runMain(resumeFlow([...items, keys[0] as string], sink), {
            epochIntervalMs: 60_000,
            recovery: { dbDir: copy },
          });
          expectEqual("resume-100k resumed count of k0", sink.last?.[1], 2);
        } finally {
          rmSync(copy, { recursive: true, force: true });
        }
        return RESUME_KEYS;
      },
    };
  },
};
