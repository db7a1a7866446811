import { expect, test } from "vitest";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { clusterMain, runMain, TestingSink, TestingSource } from "waxflow/testing";

test("map filter keyOn statefulMap", async () => {
  const flow = new Dataflow("smoke");
  const out: [string, number][] = [];
  const nums = op.input("inp", flow, new TestingSource([1, 2, 3, 4, 5, 6], 2));
  const counts = nums
    .then(op.map, "double", (x: number) => x * 2)
    .then(op.filter, "big", (x: number) => x > 4)
    .then(op.keyOn, "parity", (x: number) => (x % 4 === 0 ? "four" : "two"))
    .then(op.statefulMap, "sum", (acc: number | undefined, x: number): [number, number] => [
      (acc ?? 0) + x,
      (acc ?? 0) + x,
    ]);
  op.output("out", counts, new TestingSink(out));
  await runMain(flow);
  // Keys within one activation are processed in sorted order.
  expect(out).toEqual([
    ["four", 8],
    ["two", 6],
    ["four", 20],
    ["two", 16],
  ]);
});

test("cluster of 3 workers routes keys", async () => {
  const flow = new Dataflow("smoke");
  const out: [string, number][] = [];
  const items = Array.from({ length: 1000 }, (_, i) => i);
  const s = op.input("inp", flow, new TestingSource(items, 10));
  const k = op.keyOn("k", s, (x) => String(x % 7));
  const c = op.countFinal("count", op.keyRm("rm", k), (x) => String(x % 7));
  op.output("out", c, new TestingSink(out));
  await clusterMain(flow, { workersPerProcess: 3, epochIntervalMs: 5 });
  // Sorted pairs, not an object: a key emitted twice must fail the test.
  expect(out.sort()).toEqual(Array.from({ length: 7 }, (_, i) => [String(i), items.filter((x) => x % 7 === i).length]));
});
