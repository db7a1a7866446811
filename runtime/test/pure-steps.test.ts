/**
 * Pure steps: the engine's own effect-free steps (a window's unwraps) are not run when
 * nothing reads their output; every other step is, whether read or not.
 */
import { expect, test } from "vitest";
import { Dataflow, type Stream } from "waxflow";
import * as op from "waxflow/operators";
import { runMain, TestingSink, TestingSource } from "waxflow/testing";
import * as win from "waxflow/windowing";
import { pure } from "../src/dataflow.ts";
import { stepsToRun } from "../src/graph.ts";

const align = new Date("2022-01-01T00:00:00Z");
interface Ev {
  readonly user: string;
  readonly at: Date;
}
const ev = (user: string, seconds: number): Ev => ({ user, at: new Date(align.getTime() + seconds * 1000) });
const EVENTS = [ev("a", 0), ev("b", 1), ev("a", 4), ev("a", 12), ev("b", 3)];

function counted(read: readonly ("down" | "late" | "meta")[]): { flow: Dataflow; outs: Record<string, unknown[]> } {
  const flow = new Dataflow("df");
  const inp = op.input("inp", flow, new TestingSource(EVENTS));
  const out = win.countWindow(
    "count",
    inp,
    new win.EventClock((e: Ev) => e.at, 0),
    new win.TumblingWindower(10_000, align),
    (e) => e.user,
  );
  const outs: Record<string, unknown[]> = {};
  for (const name of read) {
    outs[name] = [];
    op.output(`out_${name}`, out[name] as Stream<unknown>, new TestingSink(outs[name]));
  }
  return { flow, outs };
}

const unwraps = (flow: Dataflow): string[] =>
  stepsToRun(flow.steps)
    .map((s) => s.stepId)
    .filter((id) => id.includes(".unwrap_"))
    .map((id) => id.replace("df.count.sum.window.", "").replace(".filter_map.flat_map_batch", ""));

test("a window's unwraps run only for the outputs something reads", () => {
  expect(unwraps(counted(["down"]).flow)).toEqual(["unwrap_down"]);
  expect(unwraps(counted(["meta"]).flow)).toEqual(["unwrap_meta"]);
  expect(unwraps(counted(["down", "late", "meta"]).flow)).toEqual(["unwrap_down", "unwrap_late", "unwrap_meta"]);
  // Every step of the graph is still there to show (waxflow graph, the process's API).
  expect(counted(["down"]).flow.steps.filter((s) => s.stepId.includes(".unwrap_"))).toHaveLength(3);
});

test("down is the same whether or not meta is read, and meta is whole when it is", async () => {
  const alone = counted(["down"]);
  await runMain(alone.flow);
  const both = counted(["down", "meta"]);
  await runMain(both.flow);
  // a's first window closes when its item at 12 s arrives; the rest at the end, keys in order.
  const down = [
    ["a", [0, 2]],
    ["a", [1, 1]],
    ["b", [0, 2]],
  ];
  expect(alone.outs.down).toEqual(down);
  expect(both.outs.down).toEqual(down);
  const meta = (id: number, open: number) => [
    id,
    { openTime: new Date(align.getTime() + open), closeTime: new Date(align.getTime() + open + 10_000), mergedIds: [] },
  ];
  expect(both.outs.meta).toEqual([
    ["a", meta(0, 0)],
    ["a", meta(1, 10_000)],
    ["b", meta(0, 0)],
  ]);
});

test("a chain of pure steps nothing reads is dropped as a whole; a pure step read by another step runs", () => {
  const flow = new Dataflow("df");
  const inp = op.input("inp", flow, new TestingSource([1, 2, 3]));
  const first = op.map("first", pure(inp), (x) => x + 1);
  op.map("second", pure(first), (x) => x * 2);
  const read = op.map("read", pure(inp), (x) => x - 1);
  op.output("out", read, new TestingSink([]));
  expect(stepsToRun(flow.steps).map((s) => s.stepId)).toEqual(["df.inp", "df.read.flat_map_batch", "df.out"]);
});

test("a user's step runs even when nothing reads its output: it may have effects", async () => {
  const flow = new Dataflow("df");
  const inp = op.input("inp", flow, new TestingSource([1, 2, 3]));
  const seen: number[] = [];
  op.map("effect", inp, (x) => seen.push(x));
  op.filterMapValue("unread", op.keyOn("k", inp, String), (x) => {
    seen.push(-x);
    return x;
  });
  op.output("out", inp, new TestingSink([]));
  await runMain(flow);
  expect(seen.sort()).toEqual([-1, -2, -3, 1, 2, 3].sort());
});
