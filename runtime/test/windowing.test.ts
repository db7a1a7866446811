import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { BuildError, Dataflow, type KeyedStream } from "waxflow";
import * as op from "waxflow/operators";
import { initRecoveryDirectory } from "waxflow/recovery";
import { AbortExecution, clusterMain, runMain, TestingSink, TestingSource } from "waxflow/testing";
import * as win from "waxflow/windowing";

const align = new Date("2022-01-01T00:00:00Z");
const at = (seconds: number) => new Date(align.getTime() + seconds * 1000);

interface Ev {
  readonly ts: Date;
  readonly value: string;
  readonly key?: string;
}
const ev = (seconds: number, value: string, key = "ALL"): Ev => ({ ts: at(seconds), value, key });
const byTs = (e: Ev) => e.ts;

/** Runs `build` on a keyed stream of `items` and returns what it writes to each output. */
async function run<O extends Record<string, KeyedStream<unknown>>>(
  items: (Ev | InstanceType<typeof TestingSource.PAUSE>)[],
  build: (keyed: KeyedStream<Ev>) => O,
): Promise<{ [P in keyof O]: unknown[] }> {
  const flow = new Dataflow("test_df");
  const inp = op.input("inp", flow, new TestingSource(items));
  const keyed = op.keyOn("key", inp, (e) => (e as Ev).key ?? "ALL");
  const outs = build(keyed);
  const result: Record<string, unknown[]> = {};
  for (const [name, stream] of Object.entries(outs)) {
    const sink: unknown[] = [];
    result[name] = sink;
    op.output(`out_${name}`, stream, new TestingSink(sink));
  }
  await runMain(flow);
  return result as { [P in keyof O]: unknown[] };
}

const values = (s: KeyedStream<[number, Ev[]]>) =>
  op.mapValue("values", s, ([id, evs]): [number, string[]] => [id, evs.map((e) => e.value)]);

test("tumbling 10s fold counts events per window", async () => {
  const items = [ev(0, "login"), ev(4, "post"), ev(8, "post"), ev(16, "post")];
  const { down } = await run(items, (keyed) => {
    const out = win.foldWindow(
      "count",
      keyed,
      new win.EventClock(byTs, 0),
      new win.TumblingWindower(10_000, align),
      (): Record<string, number> => ({}),
      (counts, e) => ({ ...counts, [e.value]: (counts[e.value] ?? 0) + 1 }),
      (a, b) => ({ ...a, ...b }),
    );
    return { down: out.down };
  });
  expect(down).toEqual([
    ["ALL", [0, { login: 1, post: 2 }]],
    ["ALL", [1, { post: 1 }]],
  ]);
});

test("session gap 5s splits sessions and sends late items to window -1", async () => {
  const items = [ev(1, "a"), ev(5, "b"), ev(11, "c"), ev(12, "d"), ev(13, "e"), ev(14, "f"), ev(20, "g"), ev(1, "h")];
  const { down, late, meta } = await run(items, (keyed) => {
    const out = win.collectWindow("collect", keyed, new win.EventClock(byTs, 0), new win.SessionWindower(5_000));
    return {
      down: values(out.down),
      late: op.mapValue("late_v", out.late, ([id, e]) => [id, e.value]),
      meta: out.meta,
    };
  });
  expect(down).toEqual([
    ["ALL", [0, ["a", "b"]]],
    ["ALL", [1, ["c", "d", "e", "f"]]],
    ["ALL", [2, ["g"]]],
  ]);
  expect(late).toEqual([["ALL", [win.LATE_SESSION_ID, "h"]]]);
  expect(meta).toEqual([
    ["ALL", [0, { openTime: at(1), closeTime: at(5), mergedIds: [] }]],
    ["ALL", [1, { openTime: at(11), closeTime: at(14), mergedIds: [] }]],
    ["ALL", [2, { openTime: at(20), closeTime: at(20), mergedIds: [] }]],
  ]);
});

test("an item exactly one gap away extends a session and merges the later one into it", async () => {
  // Unordered, so b is applied after c and bridges sessions 0 and 1.
  const items = [ev(0, "a"), ev(10, "c"), ev(5, "b"), ev(30, "x")];
  const { down, meta } = await run(items, (keyed) => {
    const out = win.collectWindow(
      "collect",
      keyed,
      new win.EventClock(byTs, 60_000),
      new win.SessionWindower(5_000),
      false,
    );
    return { down: values(out.down), meta: out.meta };
  });
  expect(down).toEqual([
    ["ALL", [0, ["a", "b", "c"]]],
    ["ALL", [2, ["x"]]],
  ]);
  expect(meta).toEqual([
    ["ALL", [0, { openTime: at(0), closeTime: at(10), mergedIds: [1] }]],
    ["ALL", [2, { openTime: at(30), closeTime: at(30), mergedIds: [] }]],
  ]);
});

test("session windower logic: exact gap extends, merges report [original, target]", () => {
  const logic = new win.SessionWindower(10_000).build(undefined);
  const t = (s: number) => at(s).getTime();
  expect(logic.openFor(t(0))).toEqual([0]);
  expect(logic.openFor(t(10))).toEqual([0]);
  expect(logic.openFor(t(30))).toEqual([1]);
  expect(logic.merged()).toEqual([]);
  expect(logic.openFor(t(20))).toEqual([0]);
  expect(logic.merged()).toEqual([[1, 0]]);
  expect(logic.lateFor(t(0))).toEqual([-1]);
  // Closes only once the watermark is strictly more than a gap past the close.
  expect(logic.closeFor(t(40))).toEqual([]);
  expect(logic.closeFor(t(40) + 1)).toEqual([[0, { open: t(0), close: t(30), mergedIds: [1] }]]);
  expect(logic.openFor(t(100))).toEqual([2]);
});

test("sliding length 10s offset 5s gives overlapping windows with negative ids", async () => {
  const items = [ev(1, "a"), ev(4, "b"), ev(8, "c"), ev(12, "d"), ev(13, "e"), ev(14, "f"), ev(16, "g"), ev(1, "h")];
  const { down, late } = await run(items, (keyed) => {
    const out = win.collectWindow(
      "collect",
      keyed,
      new win.EventClock(byTs, 0),
      new win.SlidingWindower(10_000, 5_000, align),
    );
    return { down: values(out.down), late: op.mapValue("late_v", out.late, ([id, e]) => [id, e.value]) };
  });
  expect(down).toEqual([
    ["ALL", [-1, ["a", "b"]]],
    ["ALL", [0, ["a", "b", "c"]]],
    ["ALL", [1, ["c", "d", "e", "f"]]],
    ["ALL", [2, ["d", "e", "f", "g"]]],
    ["ALL", [3, ["g"]]],
  ]);
  expect(late).toEqual([
    ["ALL", [-1, "h"]],
    ["ALL", [0, "h"]],
  ]);
});

test("sliding window ids use floor division", () => {
  const w = new win.SlidingWindower(10_000, 7_000, align);
  const t = (s: number) => at(s).getTime();
  expect(w.windowsOf(t(14))).toEqual([1, 2]);
  expect(w.windowsOf(t(-7))).toEqual([-2, -1]);
  expect(w.windowsOf(t(0))).toEqual([-1, 0]);
  expect(w.windowsOf(t(17))).toEqual([2]);
  expect(w.windowsOf(t(-4))).toEqual([-1]);
  expect(w.windowsOf(t(10))).toEqual([1]);
  const tumbling = new win.TumblingWindower(10_000, align);
  expect(tumbling.windowsOf(t(-5))).toEqual([-1]);
  expect(tumbling.windowsOf(t(-10))).toEqual([-1]);
  expect(tumbling.windowsOf(t(20))).toEqual([2]);
});

test("late means strictly behind the watermark", async () => {
  const items = [ev(0, "a"), ev(15, "b"), ev(15, "b2"), ev(3, "late"), ev(14, "late2")];
  const { down, late } = await run(items, (keyed) => {
    const out = win.collectWindow(
      "collect",
      keyed,
      // A frozen system clock: with a moving one, a millisecond between the activations
      // for b and b2 would push the watermark past 15 s and make b2 late.
      new win.EventClock(byTs, 0, { now: () => new Date(0) }),
      new win.TumblingWindower(10_000, align),
    );
    return { down: values(out.down), late: op.mapValue("late_v", out.late, ([id, e]) => [id, e.value]) };
  });
  expect(down).toEqual([
    ["ALL", [0, ["a"]]],
    ["ALL", [1, ["b", "b2"]]],
  ]);
  expect(late).toEqual([
    ["ALL", [0, "late"]],
    ["ALL", [1, "late2"]],
  ]);
});

test("ordered mode applies out-of-order items in timestamp order", async () => {
  const items = [ev(0, "1"), ev(8, "3"), ev(4, "2"), ev(13, "5"), ev(12, "4")];
  const collect = (ordered: boolean) =>
    run(items, (keyed) => {
      const clock = new win.EventClock(byTs, Number.POSITIVE_INFINITY);
      const out = win.collectWindow("collect", keyed, clock, new win.TumblingWindower(10_000, align), ordered);
      return { down: values(out.down) };
    });
  expect((await collect(true)).down).toEqual([
    ["ALL", [0, ["1", "2", "3"]]],
    ["ALL", [1, ["4", "5"]]],
  ]);
  expect((await collect(false)).down).toEqual([
    ["ALL", [0, ["1", "3", "2"]]],
    ["ALL", [1, ["5", "4"]]],
  ]);
});

test("watermarks are per key", async () => {
  // Key b's item would be late against key a's watermark.
  const items = [ev(0, "a0", "a"), ev(30, "a30", "a"), ev(5, "b5", "b")];
  const { down, late } = await run(items, (keyed) => {
    const out = win.collectWindow(
      "collect",
      keyed,
      new win.EventClock(byTs, 0),
      new win.TumblingWindower(10_000, align),
    );
    return { down: values(out.down), late: out.late };
  });
  expect(late).toEqual([]);
  expect(down).toEqual([
    ["a", [0, ["a0"]]],
    ["a", [3, ["a30"]]],
    ["b", [0, ["b5"]]],
  ]);
});

/** An item's timestamp and the watermark after it. */
function stamp<V>(logic: win.ClockLogic<V, unknown>, value: V): [timestamp: number, watermark: number] {
  return [logic.onItem(value), logic.watermark()];
}

test("EventClock watermark arithmetic with an injected clock", () => {
  let now = new Date("2024-01-01T00:00:00Z").getTime();
  const t = (s: number) => new Date("2024-01-01T00:00:00Z").getTime() + s * 1000;
  const clock = new win.EventClock((x: Date) => x, 5_000, { now: () => new Date(now) });
  const logic = clock.build(undefined);
  expect(logic.onNotify()).toBe(Number.NEGATIVE_INFINITY);
  expect(logic.toSystemTime(t(100))).toBeUndefined();

  logic.beforeBatch();
  expect(stamp(logic, new Date(t(7)))).toEqual([t(7), t(2)]);
  // Advances within a batch, never reverses.
  expect(stamp(logic, new Date(t(10)))[1]).toBe(t(5));
  expect(stamp(logic, new Date(t(3)))[1]).toBe(t(5));
  // Advances with system time.
  now += 2_000;
  expect(logic.onNotify()).toBe(t(7));
  // The watermark (t(7)) reaches t(10) three seconds from now.
  expect(logic.toSystemTime(t(10))).toBe(now + 3_000);
  // An item whose ts - wait is behind the advanced watermark leaves it alone.
  logic.beforeBatch();
  expect(stamp(logic, new Date(t(11)))[1]).toBe(t(7));
  expect(stamp(logic, new Date(t(13)))[1]).toBe(t(8));
  expect(logic.onEof()).toBe(Number.POSITIVE_INFINITY);

  // The state survives a snapshot round trip; system time passed meanwhile counts.
  const snap = structuredClone(logic.snapshot());
  now += 1_000;
  const resumed = clock.build(snap);
  expect(resumed.onNotify()).toBe(t(9));

  // A system clock going back holds the watermark.
  now -= 10_000;
  expect(resumed.onNotify()).toBe(t(9));

  const never = new win.EventClock((x: Date) => x, Number.POSITIVE_INFINITY, { now: () => new Date(now) }).build(
    undefined,
  );
  never.beforeBatch();
  expect(stamp(never, new Date(t(7)))[1]).toBe(Number.NEGATIVE_INFINITY);
});

test("SystemClock stamps items with now and ends at +infinity", () => {
  const logic = new win.SystemClock().build(undefined);
  const before = Date.now();
  logic.beforeBatch();
  const [ts, wm] = stamp(logic, "x");
  expect(ts).toBe(wm);
  expect(ts).toBeGreaterThanOrEqual(before);
  // Its watermark is the system time, so it reaches any finite time at that time.
  expect(logic.toSystemTime(ts + 50)).toBe(ts + 50);
  expect(logic.toSystemTime(Number.POSITIVE_INFINITY)).toBeUndefined();
  expect(logic.onEof()).toBe(Number.POSITIVE_INFINITY);
  expect(logic.snapshot()).toBeNull();
});

test("meta reports each closed window once", async () => {
  const items = [ev(0, "a"), ev(4, "b"), ev(16, "c")];
  const { meta } = await run(items, (keyed) => {
    const out = win.collectWindow(
      "collect",
      keyed,
      new win.EventClock(byTs, 0),
      new win.TumblingWindower(10_000, align),
    );
    return { meta: out.meta };
  });
  expect(meta).toEqual([
    ["ALL", [0, { openTime: at(0), closeTime: at(10), mergedIds: [] }]],
    ["ALL", [1, { openTime: at(10), closeTime: at(20), mergedIds: [] }]],
  ]);
});

test("count, reduce, max and min windows", async () => {
  const items = [ev(0, "b"), ev(1, "a"), ev(2, "c"), ev(3, "a"), ev(12, "z")];
  const clock = new win.EventClock(byTs, 0);
  const windower = new win.TumblingWindower(10_000, align);
  const flow = new Dataflow("test_df");
  const inp = op.input("inp", flow, new TestingSource(items));
  const keyed = op.keyOn("key", inp, () => "ALL");
  const counts: unknown[] = [];
  const joined: unknown[] = [];
  const maxes: unknown[] = [];
  const mins: unknown[] = [];
  op.output("out_counts", win.countWindow("count", inp, clock, windower, (e) => e.value).down, new TestingSink(counts));
  op.output(
    "out_joined",
    op.mapValue(
      "values",
      win.reduceWindow("reduce", keyed, clock, windower, (a, b) => ({ ...b, value: a.value + b.value })).down,
      ([id, e]) => [id, e.value],
    ),
    new TestingSink(joined),
  );
  op.output("out_max", win.maxWindow("max", keyed, clock, windower, (e) => e.value).down, new TestingSink(maxes));
  op.output("out_min", win.minWindow("min", keyed, clock, windower, (e) => e.value).down, new TestingSink(mins));
  await runMain(flow);
  expect(counts).toEqual(
    expect.arrayContaining([
      ["a", [0, 2]],
      ["b", [0, 1]],
      ["c", [0, 1]],
      ["z", [1, 1]],
    ]),
  );
  expect(counts).toHaveLength(4);
  expect(joined).toEqual([
    ["ALL", [0, "baca"]],
    ["ALL", [1, "z"]],
  ]);
  expect(maxes).toEqual([
    ["ALL", [0, ev(2, "c")]],
    ["ALL", [1, ev(12, "z")]],
  ]);
  expect(mins).toEqual([
    ["ALL", [0, ev(1, "a")]],
    ["ALL", [1, ev(12, "z")]],
  ]);
});

async function joinRun(options: win.JoinWindowOptions, right: Ev[] = [ev(2, "R1")]): Promise<unknown[]> {
  const flow = new Dataflow("test_df");
  const l = op.keyOn(
    "kl",
    op.input("left", flow, new TestingSource([ev(1, "L1"), ev(3, "L2"), ev(12, "L3")])),
    () => "k",
  );
  const r = op.keyOn("kr", op.input("right", flow, new TestingSource(right)), () => "k");
  // Waiting forever makes every item wait for EOF, so arrival order across inputs does not matter.
  const clock = new win.EventClock(byTs, Number.POSITIVE_INFINITY);
  const out = win.joinWindow("join", clock, new win.TumblingWindower(10_000, align), l, r, options);
  const rows: unknown[] = [];
  const named = op.mapValue("names", out.down, ([id, row]) => [id, row.map((e) => e?.value ?? null)]);
  op.output("out", named, new TestingSink(rows));
  await runMain(flow);
  return rows;
}

test("joinWindow final emits each window's row at close", async () => {
  expect(await joinRun({})).toEqual([
    ["k", [0, ["L2", "R1"]]],
    ["k", [1, ["L3", null]]],
  ]);
  expect(await joinRun({ insertMode: "first" })).toEqual([
    ["k", [0, ["L1", "R1"]]],
    ["k", [1, ["L3", null]]],
  ]);
  expect(await joinRun({ insertMode: "product" })).toEqual([
    ["k", [0, ["L1", "R1"]]],
    ["k", [0, ["L2", "R1"]]],
    ["k", [1, ["L3", null]]],
  ]);
});

test("joinWindow complete emits once every side has a value, then starts over", async () => {
  expect(await joinRun({ emitMode: "complete" })).toEqual([["k", [0, ["L1", "R1"]]]]);
  expect(await joinRun({ emitMode: "complete" }, [ev(2, "R1"), ev(4, "R2")])).toEqual([
    ["k", [0, ["L1", "R1"]]],
    ["k", [0, ["L2", "R2"]]],
  ]);
});

test("joinWindow late values keep their side tag", async () => {
  const flow = new Dataflow("test_df");
  const l = op.keyOn(
    "kl",
    op.input("left", flow, new TestingSource([ev(1, "L1"), ev(15, "L2"), ev(2, "L3")])),
    () => "k",
  );
  const r = op.keyOn("kr", op.input("right", flow, new TestingSource<Ev>([])), () => "k");
  const out = win.joinWindow("join", new win.EventClock(byTs, 0), new win.TumblingWindower(10_000, align), l, r);
  const late: unknown[] = [];
  op.output(
    "late",
    op.mapValue("v", out.late, ([id, [side, e]]) => [id, side, e.value]),
    new TestingSink(late),
  );
  await runMain(flow);
  expect(late).toEqual([["k", [0, 0, "L3"]]]);
});

test("bad windower and clock parameters fail at build time", () => {
  expect(() => new win.TumblingWindower(0, align)).toThrow(BuildError);
  expect(() => new win.TumblingWindower(-5, align)).toThrow(/lengthMs must be > 0/);
  expect(() => new win.SlidingWindower(10_000, 0, align)).toThrow(BuildError);
  expect(() => new win.SlidingWindower(10_000, 20_000, align)).toThrow(/must not be longer than lengthMs/);
  expect(() => new win.SlidingWindower(10_000, 5_000, new Date("nope"))).toThrow(BuildError);
  expect(() => new win.SessionWindower(-1)).toThrow(/must not be negative/);
  expect(() => new win.SessionWindower(Number.NaN)).toThrow(BuildError);
  expect(() => new win.EventClock(byTs, -1)).toThrow(BuildError);
  expect(() => new win.SessionWindower(0)).not.toThrow();

  const flow = new Dataflow("test_df");
  const keyed = op.keyOn("key", op.input("inp", flow, new TestingSource<Ev>([])), () => "k");
  const notAWindower = { length: 10 } as unknown as win.Windower;
  expect(() => win.collectWindow("c", keyed, new win.SystemClock(), notAWindower)).toThrow(BuildError);
  expect(() =>
    win.joinWindow("j", new win.SystemClock(), new win.TumblingWindower(1_000, align), keyed, {
      emitMode: "sometimes" as "final",
    }),
  ).toThrow(BuildError);
});

test("a SystemClock window closes as time passes, without new items", async () => {
  const log: string[] = [];
  const flow = new Dataflow("test_df");
  const inp = op.input("inp", flow, new TestingSource(["a", new TestingSource.PAUSE(400), "b"]));
  const seen = op.inspect("seen", inp, (_id, x) => log.push(`in ${x}`));
  const keyed = op.keyOn("key", seen, () => "k");
  const out = win.collectWindow("collect", keyed, new win.SystemClock(), new win.TumblingWindower(50, new Date(0)));
  op.inspect("closed", out.down, (_id, [, [, xs]]) => log.push(`closed ${xs.join()}`));
  await runMain(flow);
  expect(log).toEqual(["in a", "closed a", "in b", "closed b"]);
});

test("an EventClock watermark advances with system time and closes windows", async () => {
  const start = new Date();
  const log: string[] = [];
  const flow = new Dataflow("test_df");
  const items: (Ev | InstanceType<typeof TestingSource.PAUSE>)[] = [
    { ts: start, value: "a" },
    new TestingSource.PAUSE(500),
    { ts: new Date(start.getTime() + 10_000), value: "b" },
  ];
  const inp = op.input("inp", flow, new TestingSource(items));
  const seen = op.inspect("seen", inp, (_id, x) => log.push(`in ${(x as Ev).value}`));
  const keyed = op.keyOn("key", seen, () => "k");
  const clock = new win.EventClock(byTs, 100);
  const out = win.collectWindow("collect", keyed, clock, new win.TumblingWindower(100, start));
  op.inspect("closed", out.down, (_id, [, [, xs]]) => log.push(`closed ${xs.map((e) => e.value).join()}`));
  await runMain(flow);
  expect(log).toEqual(["in a", "closed a", "in b", "closed b"]);
});

test("window state is plain data that survives a snapshot round trip", () => {
  const windower = new win.SessionWindower(5_000);
  const logic = windower.build(undefined);
  logic.openFor(at(0).getTime());
  logic.openFor(at(20).getTime());
  const resumed = windower.build(structuredClone(logic.snapshot()));
  expect(resumed.openFor(at(3).getTime())).toEqual([0]);
  expect(resumed.openFor(at(40).getTime())).toEqual([2]);

  const sliding = new win.TumblingWindower(10_000, align);
  const s = sliding.build(undefined);
  s.openFor(at(3).getTime());
  const s2 = sliding.build(structuredClone(s.snapshot()));
  expect(s2.closeFor(at(10).getTime())).toEqual([
    [0, { open: at(0).getTime(), close: at(10).getTime(), mergedIds: [] }],
  ]);
  expect(s2.isEmpty()).toBe(true);
});

test("clock, windows and the ordered queue resume after an abort", async () => {
  const dir = mkdtempSync(join(tmpdir(), "waxflow-windowing-"));
  try {
    initRecoveryDirectory(dir, 1);
    // With a 5s wait: a is applied, c still queued when the abort hits; b is on time
    // after it, d closes window 0, e is late.
    const items = [ev(1, "a"), ev(8, "c"), new TestingSource.ABORT(), ev(4, "b"), ev(16, "d"), ev(2, "e")];
    const build = (down: unknown[], late: unknown[]) => {
      const flow = new Dataflow("test_df");
      const keyed = op.keyOn("key", op.input("inp", flow, new TestingSource(items)), () => "k");
      const out = win.collectWindow(
        "collect",
        keyed,
        new win.EventClock(byTs, 5_000),
        new win.TumblingWindower(10_000, align),
      );
      op.output("down", values(out.down), new TestingSink(down));
      op.output(
        "late",
        op.mapValue("late_v", out.late, ([id, e]) => [id, e.value]),
        new TestingSink(late),
      );
      return flow;
    };
    const down: unknown[] = [];
    const late: unknown[] = [];
    await expect(runMain(build(down, late), { epochIntervalMs: 1, recovery: { dbDir: dir } })).rejects.toThrow(
      AbortExecution,
    );
    expect(down).toEqual([]);
    await runMain(build(down, late), { epochIntervalMs: 1, recovery: { dbDir: dir } });
    expect(down).toEqual([
      ["k", [0, ["a", "b", "c"]]],
      ["k", [1, ["d"]]],
    ]);
    expect(late).toEqual([["k", [0, "e"]]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("windows are per key across a cluster of workers", async () => {
  const items = Array.from({ length: 300 }, (_, i) => ev(i % 30, `v${i}`, `k${i % 7}`));
  const flow = new Dataflow("test_df");
  const inp = op.input("inp", flow, new TestingSource(items, 10));
  const clock = new win.EventClock(byTs, Number.POSITIVE_INFINITY);
  const out = win.countWindow("count", inp, clock, new win.TumblingWindower(10_000, align), (e) => e.key ?? "");
  const counts: [string, [number, number]][] = [];
  op.output("out", out.down, new TestingSink(counts));
  await clusterMain(flow, { workersPerProcess: 3, epochIntervalMs: 5 });
  const expected = new Map<string, number>();
  for (const e of items) {
    const id = `${e.key}/${Math.floor((e.ts.getTime() - align.getTime()) / 10_000)}`;
    expected.set(id, (expected.get(id) ?? 0) + 1);
  }
  expect(new Map(counts.map(([k, [id, n]]) => [`${k}/${id}`, n]))).toEqual(expected);
  expect(counts).toHaveLength(expected.size);
});

test.each([
  [
    "foldWindow",
    (s: KeyedStream<number>, clock: win.Clock<number>) =>
      win.foldWindow(
        "mine",
        s,
        clock,
        new win.TumblingWindower(1000, align),
        () => 0,
        (a, b) => a + b,
        (a, b) => a + b,
      ),
  ],
  [
    "collectWindow",
    (s: KeyedStream<number>, clock: win.Clock<number>) =>
      win.collectWindow("mine", s, clock, new win.TumblingWindower(1000, align)),
  ],
  [
    "reduceWindow",
    (s: KeyedStream<number>, clock: win.Clock<number>) =>
      win.reduceWindow("mine", s, clock, new win.TumblingWindower(1000, align), (a, b) => a + b),
  ],
  [
    "maxWindow",
    (s: KeyedStream<number>, clock: win.Clock<number>) =>
      win.maxWindow("mine", s, clock, new win.TumblingWindower(1000, align)),
  ],
])("%s with a bad clock names the user's step, not its inner window step", (_name, build) => {
  const flow = new Dataflow("flow");
  const keyed = op.keyOn("k", op.input("inp", flow, new TestingSource([1])), () => "k");
  expect(() => build(keyed, {} as win.Clock<number>)).toThrow(/step "mine"/);
});
