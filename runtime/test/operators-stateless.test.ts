import { afterEach, describe, expect, test, vi } from "vitest";
import { Dataflow, type KeyedStream, type Stream } from "waxflow";
import * as op from "waxflow/operators";
import { runMain, TestingSink, TestingSource } from "waxflow/testing";

/** Builds `flow` with one input of `items`, applies `body`, and returns what reached the sink. */
async function run<X, Y>(items: X[], body: (s: Stream<X>) => Stream<Y>, batchSize = 1): Promise<Y[]> {
  const flow = new Dataflow("test_df");
  const out: Y[] = [];
  op.output("out", body(op.input("inp", flow, new TestingSource(items, batchSize))), new TestingSink(out));
  await runMain(flow);
  return out;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("map, filter, filterMap", () => {
  test("map transforms each item", async () => {
    expect(await run([0, 1, 2], (s) => op.map("add_one", s, (x) => x + 1))).toEqual([1, 2, 3]);
  });

  test("chained form", async () => {
    const out = await run([1, 2, 3], (s) => s.then(op.map, "double", (x: number) => x * 2));
    expect(out).toEqual([2, 4, 6]);
  });

  test("filter keeps items whose predicate is true", async () => {
    const out = await run([1, 2, 3, 4, 5, 6], (s) => op.filter("evens", s, (x) => x % 2 === 0), 4);
    expect(out).toEqual([2, 4, 6]);
  });

  test("filterMap drops null and undefined but keeps other falsy values", async () => {
    const out = await run([0, 1, 2, 3, 4], (s) =>
      op.filterMap("f", s, (x) => (x === 1 ? null : x === 2 ? undefined : x === 3 ? "" : x)),
    );
    expect(out).toEqual([0, "", 4]);
  });
});

describe("flatMap, flatten, flatMapBatch", () => {
  test("flatMap emits every element of the mapper's iterable", async () => {
    const out = await run(["split this", "and that"], (s) => op.flatMap("split", s, (x) => x.split(" ")));
    expect(out).toEqual(["split", "this", "and", "that"]);
  });

  test("flatMap accepts any iterable, generators included", async () => {
    const out = await run([2, 3], (s) =>
      op.flatMap("range", s, function* (n) {
        for (let i = 0; i < n; i++) yield i;
      }),
    );
    expect(out).toEqual([0, 1, 0, 1, 2]);
  });

  test("flatten emits the elements of each item", async () => {
    const out = await run<Iterable<number | string>, number | string>([[1, 2], new Set([3]), [], "ab"], (s) =>
      op.flatten("flat", s),
    );
    expect(out).toEqual([1, 2, 3, "a", "b"]);
  });

  test("flatMapBatch sees whole batches", async () => {
    const sizes: number[] = [];
    const out = await run(
      [1, 2, 3, 4, 5],
      (s) =>
        op.flatMapBatch("batch", s, (batch) => {
          sizes.push(batch.length);
          return batch.map((x) => x * 10);
        }),
      2,
    );
    expect(out).toEqual([10, 20, 30, 40, 50]);
    expect(sizes).toEqual([2, 2, 1]);
  });

  test("flatMapBatch may emit more or fewer items than it receives", async () => {
    const out = await run(
      [1, 2, 3, 4],
      (s) => op.flatMapBatch("sum", s, (batch) => [batch.reduce((a, b) => a + b)]),
      2,
    );
    expect(out).toEqual([3, 7]);
  });
});

describe("keyed variants", () => {
  const pairs: [string, number][] = [
    ["a", 1],
    ["b", 2],
    ["a", 3],
  ];

  test("mapValue keeps the key", async () => {
    expect(await run(pairs, (s) => op.mapValue("mv", s, (v) => v * 10))).toEqual([
      ["a", 10],
      ["b", 20],
      ["a", 30],
    ]);
  });

  test("filterValue filters on the value", async () => {
    expect(await run(pairs, (s) => op.filterValue("fv", s, (v) => v !== 2))).toEqual([
      ["a", 1],
      ["a", 3],
    ]);
  });

  test("filterMapValue drops null results and keeps the key", async () => {
    expect(await run(pairs, (s) => op.filterMapValue("fmv", s, (v) => (v > 1 ? `v${v}` : null)))).toEqual([
      ["b", "v2"],
      ["a", "v3"],
    ]);
  });

  test("flatMapValue pairs each emitted value with the key", async () => {
    expect(await run(pairs.slice(0, 2), (s) => op.flatMapValue("fmv", s, (v) => [v, -v]))).toEqual([
      ["a", 1],
      ["a", -1],
      ["b", 2],
      ["b", -2],
    ]);
  });

  test("keyOn pairs each item with its key; keyRm drops it", async () => {
    const keyed: [string, number][] = [];
    const out = await run([1, 2, 3], (s) => {
      const k = op.keyOn("key", s, (x) => String(x));
      op.output("keyed", k, new TestingSink(keyed));
      return op.keyRm(
        "unkey",
        op.mapValue("m", k, (v) => v * 2),
      );
    });
    expect(keyed).toEqual([
      ["1", 1],
      ["2", 2],
      ["3", 3],
    ]);
    expect(out).toEqual([2, 4, 6]);
  });
});

describe("branch, merge, redistribute", () => {
  test("branch splits on the predicate", async () => {
    const flow = new Dataflow("test_df");
    const odds: number[] = [];
    const evens: number[] = [];
    const s = op.input("inp", flow, new TestingSource([1, 2, 3], 2));
    const b = op.branch("branch", s, (x) => x % 2 !== 0);
    op.output("out_odds", b.trues, new TestingSink(odds));
    op.output("out_evens", b.falses, new TestingSink(evens));
    await runMain(flow);
    expect(odds).toEqual([1, 3]);
    expect(evens).toEqual([2]);
  });

  test("branch with a type guard narrows both sides", async () => {
    const flow = new Dataflow("test_df");
    const nums: number[] = [];
    const strs: string[] = [];
    const s = op.input("inp", flow, new TestingSource<number | string>([1, "a", 2, "b"]));
    const b = op.branch("branch", s, (x): x is number => typeof x === "number");
    op.output(
      "nums",
      op.map("inc", b.trues, (n) => n + 1),
      new TestingSink(nums),
    );
    op.output(
      "strs",
      op.map("up", b.falses, (t) => t.toUpperCase()),
      new TestingSink(strs),
    );
    await runMain(flow);
    expect(nums).toEqual([2, 3]);
    expect(strs).toEqual(["A", "B"]);
  });

  test("merge combines every upstream", async () => {
    const flow = new Dataflow("test_df");
    const out: number[] = [];
    const a = op.input("a", flow, new TestingSource([1, 2]));
    const b = op.input("b", flow, new TestingSource([3, 4, 5]));
    const c = op.input("c", flow, new TestingSource<number>([]));
    op.output("out", op.merge("merge", a, b, c), new TestingSink(out));
    await runMain(flow);
    expect([...out].sort()).toEqual([1, 2, 3, 4, 5]);
  });

  test("merge emits its first argument's items first, whichever upstream was defined first (as Bytewax 0.21.1)", async () => {
    // Bytewax 0.21.1, `b` defined before `a`, both TestingSource batch_size=10:
    // merge("m", a, b) printed ['a1', 'a2', 'b1', 'b2'].
    const flow = new Dataflow("test_df");
    const out: string[] = [];
    const b = op.input("b", flow, new TestingSource(["b1", "b2"], 10));
    const a = op.input("a", flow, new TestingSource(["a1", "a2"], 10));
    op.output("out", op.merge("merge", a, b), new TestingSink(out));
    await runMain(flow);
    expect(out).toEqual(["a1", "a2", "b1", "b2"]);
  });

  test("merge of a single stream passes it through", async () => {
    expect(await run([1, 2], (s) => op.merge("merge", s))).toEqual([1, 2]);
  });

  test("redistribute on one worker passes every item", async () => {
    expect(await run([1, 2, 3], (s) => op.redistribute("redist", s))).toEqual([1, 2, 3]);
  });
});

describe("inspect, inspectDebug, raises", () => {
  test("inspect calls the inspector with the full step id", async () => {
    const seen: [string, string][] = [];
    const out = await run(["a"], (s) => op.inspect("insp", s, (id, item) => seen.push([id, item])));
    expect(seen).toEqual([["test_df.insp", "a"]]);
    expect(out).toEqual(["a"]);
  });

  test("inspect prints `<full step id>: <item>` to stdout by default", async () => {
    const lines: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    await run(["a", 1, { b: [2] }], (s) => op.inspect("insp", s));
    vi.restoreAllMocks();
    expect(lines).toEqual(["test_df.insp: 'a'\n", "test_df.insp: 1\n", "test_df.insp: { b: [ 2 ] }\n"]);
  });

  test("inspectDebug gets the epoch and the worker", async () => {
    const seen: [string, string, number, number][] = [];
    await run(["a"], (s) =>
      op.inspectDebug("insp", s, (id, item, epoch, worker) => seen.push([id, item, epoch, worker])),
    );
    expect(seen).toEqual([["test_df.insp", "a", 1, 0]]);
  });

  test("inspectDebug prints step, worker and epoch by default", async () => {
    const lines: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    await run(["a"], (s) => op.inspectDebug("insp", s));
    vi.restoreAllMocks();
    expect(lines).toEqual(["test_df.insp W0 @1: 'a'\n"]);
  });

  test("raises fails the run on the first item, naming the step", async () => {
    const flow = new Dataflow("test_df");
    const s = op.input("inp", flow, new TestingSource([1, 2]));
    op.raises("must_be_empty", s);
    await expect(runMain(flow)).rejects.toThrow(/test_df\.must_be_empty.*1/);
  });

  test("raises on an empty stream lets the run finish", async () => {
    const flow = new Dataflow("test_df");
    const out: number[] = [];
    const s = op.input("inp", flow, new TestingSource([1, 2]));
    const b = op.branch("b", s, (x) => x > 5);
    op.raises("none_big", b.trues);
    op.output("out", b.falses, new TestingSink(out));
    await runMain(flow);
    expect(out).toEqual([1, 2]);
  });
});

describe("enrichCached", () => {
  test("looks each key up once while the entry is fresh", async () => {
    const lookups: string[] = [];
    const table: Record<string, number> = { a: 1, b: 2 };
    const out = await run(["a", "b", "a"], (s) =>
      op.enrichCached(
        "enrich",
        s,
        (k: string) => {
          lookups.push(k);
          return table[k];
        },
        (cache, item) => cache.get(item),
      ),
    );
    expect(out).toEqual([1, 2, 1]);
    expect(lookups).toEqual(["a", "b"]);
  });

  test("entries expire after the TTL of the injected clock", async () => {
    let now = Date.UTC(2024, 4, 10, 10);
    const table: Record<string, number> = { a: 1 };
    const lookups: string[] = [];
    const out = await run(["a", "tick30", "a", "tick40", "a", "a"], (s) =>
      op.enrichCached(
        "enrich",
        s,
        (k: string) => {
          lookups.push(k);
          return table[k];
        },
        (cache, item) => {
          if (item.startsWith("tick")) {
            now += Number(item.slice(4)) * 1000;
            table.a = (table.a ?? 0) + 10;
            return undefined;
          }
          return cache.get(item);
        },
        60_000,
        () => now,
      ),
    );
    // Fetched at 0 s; still fresh at 30 s; expired at 70 s and fetched again.
    expect(out).toEqual([1, undefined, 1, undefined, 21, 21]);
    expect(lookups).toEqual(["a", "a"]);
  });

  test("TTLCache refetches once the TTL has passed and after remove", () => {
    let now = 0;
    let version = 0;
    const cache = new op.TTLCache(
      (k: string) => `${k}${++version}`,
      1000,
      () => now,
    );
    expect(cache.get("a")).toBe("a1");
    now = 999;
    expect(cache.get("a")).toBe("a1");
    now = 1000;
    expect(cache.get("a")).toBe("a2");
    cache.remove("a");
    expect(cache.get("a")).toBe("a3");
  });
});

describe("typing of keyed streams", () => {
  test("KeyedStream is a stream of [key, value] pairs", async () => {
    const out = await run([1], (s): KeyedStream<number> => op.keyOn("k", s, () => "x"));
    expect(out).toEqual([["x", 1]]);
  });
});
