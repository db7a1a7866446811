import { describe, expect, test } from "vitest";
import { Dataflow, type KeyedStream, type Stream } from "waxflow";
import type { DynamicSource, FixedPartitionedSource } from "waxflow/inputs";
import * as op from "waxflow/operators";
import type { DynamicSink } from "waxflow/outputs";
import { AbortExecution, clusterMain, runMain, TestingSink, TestingSource } from "waxflow/testing";
import type { StateStore } from "../src/engine/state-store.ts";

const { EOF, ABORT, PAUSE } = TestingSource;

/**
 * Recovery in memory, with the semantics of the SQLite store: snapshots per (step, key,
 * epoch); a rerun resumes at the smallest frontier the last execution's workers committed
 * and loads the newest snapshot per key below it.
 */
class MemoryRecovery {
  snapshots: { step: string; key: string; epoch: number; state: unknown }[] = [];
  frontiers = new Map<number, number>();
  resumeEpochs: number[] = [];

  /** The store factory for one execution. */
  execution(): (worker: number) => StateStore {
    const resumeEpoch = this.frontiers.size === 0 ? 1 : Math.min(...this.frontiers.values());
    this.resumeEpochs.push(resumeEpoch);
    // Snapshots at or after the resume epoch were never committed by every worker.
    this.snapshots = this.snapshots.filter((s) => s.epoch < resumeEpoch);
    const frontiers = new Map<number, number>();
    this.frontiers = frontiers;
    return (worker) => {
      frontiers.set(worker, resumeEpoch);
      return {
        resumeEpoch,
        load: (step, owns) => {
          const newest = new Map<string, { epoch: number; state: unknown }>();
          for (const s of this.snapshots) {
            if (s.step !== step || s.epoch >= resumeEpoch || !owns(s.key)) continue;
            const seen = newest.get(s.key);
            if (seen === undefined || s.epoch >= seen.epoch) newest.set(s.key, s);
          }
          return [...newest]
            .filter(([, s]) => s.state !== undefined)
            .map(([key, s]): [string, unknown] => [key, structuredClone(s.state)]);
        },
        write: (step, key, epoch, state) => {
          this.snapshots.push({ step, key, epoch, state: structuredClone(state) });
        },
        commit: (w, frontier) => {
          frontiers.set(w, frontier);
        },
      };
    };
  }

  /** The newest state of every key of `step`, as a resumed run would see it. */
  latest(step: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const s of [...this.snapshots].sort((a, b) => a.epoch - b.epoch)) if (s.step === step) out[s.key] = s.state;
    return out;
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (e: unknown) => e,
  );
}

describe("workers", () => {
  function wordCount(words: string[], out: [string, number][]): Dataflow {
    const flow = new Dataflow("wc");
    const s = op.input("inp", flow, new TestingSource(words, 7));
    const counts = op.countFinal(
      "count",
      op.map("lower", s, (w) => w.toLowerCase()),
      (w) => w,
    );
    const running = op.statefulMap("running", counts, (acc: number | undefined, n: number): [number, number] => [
      (acc ?? 0) + n,
      (acc ?? 0) + n,
    ]);
    op.output("out", running, new TestingSink(out));
    return flow;
  }

  const words = Array.from(
    { length: 500 },
    (_, i) => ["Apple", "pear", "FIG", "kiwi", "lime", "plum"][(i * i) % 6] ?? "",
  );

  test.each([1, 2, 4])("the same keyed result on %i workers", async (workersPerProcess) => {
    const out: [string, number][] = [];
    await clusterMain(wordCount(words, out), { workersPerProcess, epochIntervalMs: 5 });
    const expected: Record<string, number> = {};
    for (const w of words) expected[w.toLowerCase()] = (expected[w.toLowerCase()] ?? 0) + 1;
    expect(out).toHaveLength(Object.keys(expected).length);
    expect(Object.fromEntries(out)).toEqual(expected);
  });

  test("each key is processed on exactly one worker", async () => {
    const workersByKey = new Map<string, Set<number>>();
    const flow = new Dataflow("route");
    const s = op.input(
      "inp",
      flow,
      new TestingSource(
        Array.from({ length: 200 }, (_, i) => i),
        10,
      ),
    );
    const k = op.keyOn("k", s, (x) => `key${x % 13}`);
    const counted = op.statefulMap("count", k, (n: number | undefined) => [(n ?? 0) + 1, n ?? 0] as const);
    const seen = op.inspectDebug("seen", counted, (_id, [key], _epoch, worker) => {
      const set = workersByKey.get(key) ?? new Set();
      set.add(worker);
      workersByKey.set(key, set);
    });
    op.output("out", seen, new TestingSink());
    await clusterMain(flow, { workersPerProcess: 3 });
    expect(workersByKey.size).toBe(13);
    for (const workers of workersByKey.values()) expect(workers.size).toBe(1);
    const used = new Set([...workersByKey.values()].flatMap((w) => [...w]));
    expect(used.size).toBeGreaterThan(1);
  });

  test("redistribute spreads items over every worker", async () => {
    const before = new Set<number>();
    const after: number[] = [];
    const flow = new Dataflow("redist");
    const s = op.input(
      "inp",
      flow,
      new TestingSource(
        Array.from({ length: 40 }, (_, i) => i),
        4,
      ),
    );
    const r = op.redistribute(
      "redist",
      op.inspectDebug("before", s, (_id, _x, _e, w) => before.add(w)),
    );
    const out: number[] = [];
    op.output(
      "out",
      op.inspectDebug("after", r, (_id, _x, _e, w) => after.push(w)),
      new TestingSink(out),
    );
    await clusterMain(flow, { workersPerProcess: 4 });
    // One partition: every item is read on one worker.
    expect(before.size).toBe(1);
    expect(new Set(after)).toEqual(new Set([0, 1, 2, 3]));
    for (const w of [0, 1, 2, 3]) expect(after.filter((x) => x === w)).toHaveLength(10);
    expect([...out].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  test("a partitioned source with 5 partitions on 3 workers reads each partition once", async () => {
    const built: string[] = [];
    const readBy = new Map<string, Set<number>>();
    const source: FixedPartitionedSource<string, number> = {
      listParts: () => ["p0", "p1", "p2", "p3", "p4"],
      buildPart: (_stepId, part, resume) => {
        built.push(part);
        let i = resume ?? 0;
        return {
          nextBatch: () => (i < 3 ? [`${part}-${i++}`] : null),
          snapshot: () => i,
        };
      },
    };
    const flow = new Dataflow("parts");
    const out: string[] = [];
    const s = op.inspectDebug("read", op.input("inp", flow, source), (_id, item, _e, worker) => {
      const part = item.split("-")[0] as string;
      const set = readBy.get(part) ?? new Set();
      set.add(worker);
      readBy.set(part, set);
    });
    op.output("out", s, new TestingSink(out));
    await clusterMain(flow, { workersPerProcess: 3 });
    expect([...built].sort()).toEqual(["p0", "p1", "p2", "p3", "p4"]);
    expect([...out].sort()).toEqual(["p0", "p1", "p2", "p3", "p4"].flatMap((p) => [`${p}-0`, `${p}-1`, `${p}-2`]));
    for (const workers of readBy.values()) expect(workers.size).toBe(1);
    expect(new Set([...readBy.values()].flatMap((w) => [...w]))).toEqual(new Set([0, 1, 2]));
  });

  test("a dynamic source builds one partition per worker", async () => {
    const builds: [number, number][] = [];
    const source: DynamicSource<number> = {
      build: (_stepId, worker, count) => {
        builds.push([worker, count]);
        let done = false;
        return {
          nextBatch: () => {
            if (done) return null;
            done = true;
            return [worker];
          },
        };
      },
    };
    const flow = new Dataflow("dyn");
    const out: number[] = [];
    op.output("out", op.input("inp", flow, source), new TestingSink(out));
    await clusterMain(flow, { workersPerProcess: 3 });
    expect(builds.sort()).toEqual([
      [0, 3],
      [1, 3],
      [2, 3],
    ]);
    expect(out.sort()).toEqual([0, 1, 2]);
  });

  test("a failure on one worker rejects the whole run", async () => {
    const flow = new Dataflow("fail");
    const s = op.input("inp", flow, new TestingSource(Array.from({ length: 50 }, (_, i) => i)));
    const k = op.keyOn("k", s, String);
    op.output(
      "out",
      op.mapValue("boom", op.redistribute("r", k), (x) => {
        if (x === 33) throw new Error("boom");
        return x;
      }),
      new TestingSink(),
    );
    await expect(clusterMain(flow, { workersPerProcess: 3 })).rejects.toThrow(/fail\.boom.*33.*boom/);
  });
});

describe("sources and sinks", () => {
  test("async sources (nextBatch returning a promise) and async sinks", async () => {
    const source: FixedPartitionedSource<number, number> = {
      listParts: () => ["a"],
      buildPart: (_s, _p, resume) => {
        let i = resume ?? 0;
        return {
          nextBatch: () =>
            new Promise((resolve) =>
              setTimeout(() => {
                resolve(i < 5 ? [i++, i++] : null);
              }, 2),
            ),
          snapshot: () => i,
        };
      },
    };
    const written: number[][] = [];
    let closed = false;
    const sink: DynamicSink<number> = {
      build: async () => ({
        writeBatch: async (batch) => {
          await new Promise((r) => setTimeout(r, 3));
          written.push(batch);
        },
        close: async () => {
          await new Promise((r) => setTimeout(r, 3));
          closed = true;
        },
      }),
    };
    const flow = new Dataflow("async");
    op.output(
      "out",
      op.map("inc", op.input("inp", flow, source), (x) => x + 100),
      sink,
    );
    await runMain(flow);
    expect(written.flat()).toEqual([100, 101, 102, 103, 104, 105]);
    expect(closed).toBe(true);
  });

  test("a partitioned sink gets each key on one partition, in order", async () => {
    const parts = new Map<string, [string, number][]>();
    const sink = {
      listParts: () => ["s0", "s1", "s2"],
      buildPart: (_step: string, part: string) => {
        const got: [string, number][] = [];
        parts.set(part, got);
        return {
          writeBatch: (values: number[]) => {
            for (const v of values) got.push([`k${v % 5}`, v]);
          },
          snapshot: () => got.length,
        };
      },
    };
    const flow = new Dataflow("psink");
    const s = op.input(
      "inp",
      flow,
      new TestingSource(
        Array.from({ length: 50 }, (_, i) => i),
        5,
      ),
    );
    op.output(
      "out",
      op.keyOn("k", s, (v) => `k${v % 5}`),
      sink,
    );
    await clusterMain(flow, { workersPerProcess: 2 });
    expect([...parts.keys()].sort()).toEqual(["s0", "s1", "s2"]);
    const partOfKey = new Map<string, string>();
    for (const [part, rows] of parts) {
      for (const [key] of rows) {
        expect(partOfKey.get(key) ?? part).toBe(part);
        partOfKey.set(key, part);
      }
      for (const key of new Set(rows.map(([k]) => k))) {
        const values = rows.filter(([k]) => k === key).map(([, v]) => v);
        expect(values).toEqual([...values].sort((a, b) => a - b));
      }
    }
    expect([...parts.values()].flat()).toHaveLength(50);
  });

  test("TestingSource EOF ends the run", async () => {
    const out: number[] = [];
    const flow = new Dataflow("eof");
    op.output("out", op.input("inp", flow, new TestingSource([1, 2, new EOF(), 3])), new TestingSink(out));
    await runMain(flow);
    expect(out).toEqual([1, 2]);
  });

  test("TestingSource ABORT throws AbortExecution once; the next run skips it", async () => {
    const out: number[] = [];
    const flow = new Dataflow("abort");
    op.output("out", op.input("inp", flow, new TestingSource([1, 2, new ABORT(), 3])), new TestingSink(out));
    const err = await rejection(runMain(flow));
    expect(err).toBeInstanceOf(AbortExecution);
    expect(out).toEqual([1, 2]);
    out.length = 0;
    await runMain(flow);
    expect(out).toEqual([1, 2, 3]);
  });

  test("ABORT within a larger batch still delivers the items before it", async () => {
    const out: number[] = [];
    const flow = new Dataflow("abort");
    op.output("out", op.input("inp", flow, new TestingSource([1, 2, new ABORT(), 3], 10)), new TestingSink(out));
    expect(await rejection(runMain(flow))).toBeInstanceOf(AbortExecution);
    expect(out).toEqual([1, 2]);
  });

  test("PAUSE delays the items after it", async () => {
    const times: number[] = [];
    const flow = new Dataflow("pause");
    const s = op.input("inp", flow, new TestingSource([1, new PAUSE(50), 2]));
    op.output(
      "out",
      op.inspect("t", s, () => times.push(performance.now())),
      new TestingSink(),
    );
    await runMain(flow);
    expect(times).toHaveLength(2);
    expect((times[1] as number) - (times[0] as number)).toBeGreaterThanOrEqual(45);
  });
});

describe("epochs", () => {
  test("epochs advance with epochIntervalMs", async () => {
    const epochs: number[] = [];
    const flow = new Dataflow("epochs");
    const items = Array.from({ length: 6 }, (_, i) => [i, new PAUSE(15)]).flat();
    const s = op.input("inp", flow, new TestingSource(items));
    op.output(
      "out",
      op.inspectDebug("e", s, (_id, _x, epoch) => epochs.push(epoch)),
      new TestingSink(),
    );
    await runMain(flow, { epochIntervalMs: 10 });
    expect(epochs).toHaveLength(6);
    expect(epochs[0]).toBe(1);
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThan(epochs[i - 1] as number);
  });

  test("one epoch for a run shorter than the interval", async () => {
    const epochs = new Set<number>();
    const flow = new Dataflow("epochs");
    const s = op.input("inp", flow, new TestingSource([1, 2, 3]));
    op.output(
      "out",
      op.inspectDebug("e", s, (_id, _x, epoch) => epochs.add(epoch)),
      new TestingSink(),
    );
    await runMain(flow);
    expect([...epochs]).toEqual([1]);
  });

  test("a stateful step sees its input's epochs", async () => {
    const epochs: number[] = [];
    const flow = new Dataflow("epochs");
    const s = op.input("inp", flow, new TestingSource([1, new PAUSE(30), 2]));
    const summed = op.statefulMap(
      "sum",
      op.keyOn("k", s, () => "k"),
      (a: number | undefined, x: number) => [(a ?? 0) + x, (a ?? 0) + x],
    );
    op.output(
      "out",
      op.inspectDebug("e", summed, (_id, _x, epoch) => epochs.push(epoch)),
      new TestingSink(),
    );
    await clusterMain(flow, { workersPerProcess: 2, epochIntervalMs: 10 });
    expect(epochs).toHaveLength(2);
    expect(epochs[1]).toBeGreaterThan(epochs[0] as number);
  });
});

describe("recovery through a StateStore", () => {
  type Event = [string, string | undefined];
  const keepLast = (resume: string | undefined): op.StatefulLogic<string, Event, string> => {
    let state = resume;
    return {
      onItem: (v) => {
        const old = state;
        state = v;
        return [[[old ?? "-", v]], v === "DISCARD"];
      },
      snapshot: () => state as string,
    };
  };

  function keepLastFlow(items: unknown[], out: [string, Event][]): Dataflow {
    const flow = new Dataflow("test_df");
    const s = op.input("inp", flow, new TestingSource(items as [string, string][]));
    op.output("out", op.stateful("stateful", s, keepLast), new TestingSink(out));
    return flow;
  }

  test("a rerun continues after EOF with the state it had", async () => {
    const rec = new MemoryRecovery();
    const out: [string, number][] = [];
    const flow = new Dataflow("resume");
    const s = op.input("inp", flow, new TestingSource([1, 2, new EOF(), 3, new EOF(), 4]));
    const sums = op.statefulMap(
      "sum",
      op.keyOn("k", s, () => "k"),
      (a: number | undefined, x: number) => [(a ?? 0) + x, (a ?? 0) + x],
    );
    op.output("out", sums, new TestingSink(out));
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([
      ["k", 1],
      ["k", 3],
    ]);
    await runMain(flow, { store: rec.execution() });
    expect(out.slice(2)).toEqual([["k", 6]]);
    await runMain(flow, { store: rec.execution() });
    expect(out.slice(3)).toEqual([["k", 10]]);
    // Each execution resumes after the last epoch of the one before.
    const [a, b, c] = rec.resumeEpochs as [number, number, number];
    expect(a).toBe(1);
    expect(b).toBeGreaterThan(a);
    expect(c).toBeGreaterThan(b);
  });

  test("without a store a rerun starts over", async () => {
    const out: number[] = [];
    const flow = new Dataflow("again");
    op.output("out", op.input("inp", flow, new TestingSource([1, new EOF(), 2])), new TestingSink(out));
    await runMain(flow);
    await runMain(flow);
    expect(out).toEqual([1, 1]);
  });

  /**
   * Bytewax's on_eof flow: items 1, EOF, 2 under one key; each call emits `[old, new]`
   * state and keeps the logic, except onEof, which returns `atEof`.
   */
  function eofFlow(out: [string, [string, string]][], atEof: boolean): Dataflow {
    const flow = new Dataflow("test_df");
    const s = op.keyOn("key", op.input("inp", flow, new TestingSource([1, new EOF(), 2])), () => "ALL");
    op.output(
      "out",
      op.stateful("stateful", s, (resume: string | undefined) => {
        let state = resume ?? "NEW";
        const step = (next: string, discard: boolean): op.LogicResult<[string, string]> => {
          const old = state;
          state = next;
          return [[[old, next]], discard];
        };
        return { onItem: () => step("ITEM", op.RETAIN), onEof: () => step("EOF", atEof), snapshot: () => state };
      }),
      new TestingSink(out),
    );
    return flow;
  }

  test("onEof retain keeps the state for the next run (Bytewax test_stateful_on_eof_retain)", async () => {
    const rec = new MemoryRecovery();
    const out: [string, [string, string]][] = [];
    const flow = eofFlow(out, op.RETAIN);
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([
      ["ALL", ["NEW", "ITEM"]],
      ["ALL", ["ITEM", "EOF"]],
    ]);
    out.length = 0;
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([
      ["ALL", ["EOF", "ITEM"]],
      ["ALL", ["ITEM", "EOF"]],
    ]);
  });

  test("onEof discard forgets the key for the next run (Bytewax test_stateful_on_eof_discard)", async () => {
    const rec = new MemoryRecovery();
    const out: [string, [string, string]][] = [];
    const flow = eofFlow(out, op.DISCARD);
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([
      ["ALL", ["NEW", "ITEM"]],
      ["ALL", ["ITEM", "EOF"]],
    ]);
    // The discard is what the store keeps: without it the rerun would start from "EOF".
    expect(rec.latest("test_df.stateful.stateful_batch")).toEqual({ ALL: undefined });
    out.length = 0;
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([
      ["ALL", ["NEW", "ITEM"]],
      ["ALL", ["ITEM", "EOF"]],
    ]);
  });

  test("after ABORT a rerun resumes from the last closed epoch (Bytewax test_stateful_snapshots_discard_per_key)", async () => {
    const rec = new MemoryRecovery();
    const out: [string, Event][] = [];
    // The pause lets an epoch close (and snapshot) before the abort.
    const flow = keepLastFlow(
      [["a", "a1"], ["b", "b1"], ["a", "DISCARD"], ["b", "b2"], new PAUSE(30), new ABORT(), ["a", "a3"], ["b", "b3"]],
      out,
    );
    expect(await rejection(runMain(flow, { epochIntervalMs: 5, store: rec.execution() }))).toBeInstanceOf(
      AbortExecution,
    );
    expect(out).toEqual([
      ["a", ["-", "a1"]],
      ["b", ["-", "b1"]],
      ["a", ["a1", "DISCARD"]],
      ["b", ["b1", "b2"]],
    ]);
    expect(rec.latest("test_df.stateful.stateful_batch")).toEqual({ a: undefined, b: "b2" });
    out.length = 0;
    await runMain(flow, { epochIntervalMs: 5, store: rec.execution() });
    expect(out).toEqual([
      ["a", ["-", "a3"]],
      ["b", ["b2", "b3"]],
    ]);
  });

  test("each key resumes from its newest snapshot, whichever execution wrote it (Bytewax test_stateful_recovers_older_snapshots)", async () => {
    const rec = new MemoryRecovery();
    const out: [string, Event][] = [];
    // Pauses far longer than an epoch, so a stalled loop on a loaded machine still closes one in each.
    const pause = () => new PAUSE(200);
    const flow = keepLastFlow(
      [
        ["a", "a1"],
        pause(),
        new ABORT(),
        ["b", "b1"],
        pause(),
        new ABORT(),
        ["c", "c1"],
        ["b", "DISCARD"],
        pause(),
        new ABORT(),
        ["a", "a2"],
        ["b", "b2"],
        ["c", "c2"],
      ],
      out,
    );
    const runs: [string, Event][][] = [];
    for (let i = 0; i < 4; i++) {
      out.length = 0;
      await rejection(runMain(flow, { epochIntervalMs: 5, store: rec.execution() }));
      runs.push([...out]);
    }
    expect(runs).toEqual([
      [["a", ["-", "a1"]]],
      [["b", ["-", "b1"]]],
      [
        ["c", ["-", "c1"]],
        ["b", ["b1", "DISCARD"]],
      ],
      [
        ["a", ["a1", "a2"]],
        ["b", ["-", "b2"]],
        ["c", ["c1", "c2"]],
      ],
    ]);
  });

  test("an abort before any epoch closed replays everything", async () => {
    const rec = new MemoryRecovery();
    const out: [string, Event][] = [];
    const flow = keepLastFlow([["a", "a1"], new ABORT(), ["a", "a2"]], out);
    expect(await rejection(runMain(flow, { store: rec.execution() }))).toBeInstanceOf(AbortExecution);
    expect(out).toEqual([["a", ["-", "a1"]]]);
    out.length = 0;
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([
      ["a", ["-", "a1"]],
      ["a", ["a1", "a2"]],
    ]);
  });

  test("only touched keys are snapshotted at each epoch close", async () => {
    const rec = new MemoryRecovery();
    const flow = keepLastFlow(
      // Pauses far longer than an epoch, so a stalled loop on a loaded machine still closes one in each.
      [["a", "a1"], ["b", "b1"], new PAUSE(200), ["a", "a2"], new PAUSE(200), ["c", "c1"], new PAUSE(200)],
      [],
    );
    await runMain(flow, { epochIntervalMs: 20, store: rec.execution() });
    const writes = rec.snapshots.filter((s) => s.step === "test_df.stateful.stateful_batch");
    const keysByEpoch = new Map<number, string[]>();
    for (const w of writes) keysByEpoch.set(w.epoch, [...(keysByEpoch.get(w.epoch) ?? []), w.key]);
    // onEof at the end touches every live key.
    expect([...keysByEpoch.values()].map((keys) => keys.sort())).toEqual([["a", "b"], ["a"], ["c"], ["a", "b", "c"]]);
    const epochs = [...keysByEpoch.keys()];
    expect(epochs).toEqual([...epochs].sort((x, y) => x - y));
    expect(rec.latest("test_df.stateful.stateful_batch")).toEqual({ a: "a2", b: "b1", c: "c1" });
  });

  test("the source snapshots its position; a rerun resumes after the last snapshot", async () => {
    const rec = new MemoryRecovery();
    const out: number[] = [];
    const flow = new Dataflow("pos");
    op.output("out", op.input("inp", flow, new TestingSource([1, 2, new EOF(), 3, 4])), new TestingSink(out));
    await runMain(flow, { store: rec.execution() });
    expect(rec.latest("pos.inp")).toEqual({ iterable: 3 });
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([1, 2, 3, 4]);
  });

  test("state resumes onto a different number of workers", async () => {
    const rec = new MemoryRecovery();
    const out: [string, number][] = [];
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    const flow = new Dataflow("rescale");
    const s = op.input("inp", flow, new TestingSource([...keys, new EOF(), ...keys]));
    const counts = op.statefulMap(
      "count",
      op.keyOn("key", s, (k) => k),
      (n: number | undefined) => [(n ?? 0) + 1, (n ?? 0) + 1],
    );
    op.output("out", counts, new TestingSink(out));
    await clusterMain(flow, { workersPerProcess: 3, store: rec.execution() });
    await clusterMain(flow, { workersPerProcess: 2, store: rec.execution() });
    expect(out.slice(12).sort()).toEqual(keys.map((k) => [k, 2]).sort());
  });

  test("resumed keys with a due notification are notified", async () => {
    const rec = new MemoryRecovery();
    const out: [string, string][] = [];
    const flow = new Dataflow("timer");
    const s = op.keyOn("k", op.input("inp", flow, new TestingSource(["x", new EOF(), new PAUSE(30)])), () => "k");
    op.output(
      "out",
      op.stateful("timer", s, (resume: number | undefined) => {
        let at = resume;
        return {
          onItem: (): op.LogicResult<string> => {
            at = Date.now() + 5;
            return [["item"], op.RETAIN];
          },
          onNotify: (): op.LogicResult<string> => [["notified"], op.DISCARD],
          notifyAt: () => (at === undefined ? undefined : new Date(at)),
          snapshot: () => at as number,
        };
      }),
      new TestingSink(out),
    );
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([["k", "item"]]);
    await runMain(flow, { store: rec.execution() });
    expect(out).toEqual([
      ["k", "item"],
      ["k", "notified"],
    ]);
  });
});

describe("types", () => {
  test("KeyedStream from a Stream of pairs", () => {
    const flow = new Dataflow("t");
    const s: Stream<[string, number]> = op.input("inp", flow, new TestingSource<[string, number]>([["a", 1]]));
    const k: KeyedStream<number> = s;
    expect(k.streamId).toBe("t.inp.down");
  });
});
