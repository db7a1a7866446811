/**
 * One run of the memory-per-key case (bench/cases/memory.ts), in a process of its own so
 * that nothing else lives on its heap: `memory-probe.ts <keys> [recovery]`. A running count
 * (keyOn + statefulMap) over `keys` distinct string keys, each made by the source as it
 * reads, so the state holds the only reference to it, as when keys come from parsed input.
 * When the sink has seen every key's count, every key's state is alive: the probe forces
 * a GC there and prints, as JSON, heap and RSS then minus before the run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Dataflow } from "waxflow";
import type { FixedPartitionedSource, StatefulSourcePartition } from "waxflow/inputs";
import * as op from "waxflow/operators";
import { initRecoveryDirectory } from "waxflow/recovery";
import { runMain } from "waxflow/testing";
import { CountingSink } from "./io.ts";

export interface MemoryReport {
  readonly keys: number;
  readonly heapBytes: number;
  readonly rssBytes: number;
  readonly baseRssBytes: number;
}

const keys = Number(process.argv[2]);
const recovery = process.argv[3] === "recovery";
const BATCH = 10_000;

/** `user-<n>` for n below `keys`, made as they are read. */
class KeySource implements FixedPartitionedSource<string, number> {
  listParts(): string[] {
    return ["keys"];
  }

  buildPart(_step: string, _part: string, resume: number | undefined): StatefulSourcePartition<string, number> {
    let next = resume ?? 0;
    return {
      nextBatch: () => {
        if (next >= keys) return null;
        const end = Math.min(keys, next + BATCH);
        const batch = new Array<string>(end - next);
        for (let i = 0; i < batch.length; i++) batch[i] = `user-${next + i}`;
        next = end;
        return batch;
      },
      snapshot: () => next,
    };
  }
}

const gc = globalThis.gc;
if (gc === undefined) throw new Error("run with --expose-gc");
const count = (state: number | undefined): readonly [number, number] => [(state ?? 0) + 1, (state ?? 0) + 1];

const dir = recovery ? mkdtempSync(join(tmpdir(), "waxflow-bench-memory-")) : undefined;
if (dir !== undefined) initRecoveryDirectory(dir, 1);
const flow = new Dataflow("bench_memory");
let full: NodeJS.MemoryUsage | undefined;
let counted = 0;
const sink = new CountingSink<[string, number]>();
const keyed = op.keyOn("key", op.input("inp", flow, new KeySource()), (k) => k);
op.output(
  "out",
  op.map("seen", op.statefulMap("count", keyed, count), (item) => {
    // The count item of the last key: every key's state exists now, none has ended.
    if (++counted === keys) {
      gc();
      gc();
      full = process.memoryUsage();
    }
    return item;
  }),
  sink,
);
gc();
gc();
const base = process.memoryUsage();
try {
  await runMain(flow, { epochIntervalMs: 1_000, recovery: dir === undefined ? undefined : { dbDir: dir } });
} finally {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}
if (full === undefined || sink.count !== keys) throw new Error(`the sink saw ${sink.count} of ${keys} counts`);
const report: MemoryReport = {
  keys,
  heapBytes: full.heapUsed - base.heapUsed,
  rssBytes: full.rss - base.rss,
  baseRssBytes: base.rss,
};
process.stdout.write(`${JSON.stringify(report)}\n`);
