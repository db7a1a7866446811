import { describe, expect, test } from "vitest";
import { BuildError, Dataflow, type KeyedStream, Stream } from "waxflow";
import * as op from "waxflow/operators";
import { runMain, TestingSink, TestingSource } from "waxflow/testing";

function source(flow: Dataflow, id = "inp"): Stream<number> {
  return op.input(id, flow, new TestingSource([1, 2, 3]));
}

describe("step ids", () => {
  test("full ids nest under the dataflow and the enclosing step", () => {
    const flow = new Dataflow("flow");
    const s = source(flow);
    op.output(
      "out",
      op.map("double", s, (x) => x * 2),
      new TestingSink(),
    );
    op.countFinal("count", s, String);
    expect(flow.steps.map((step) => step.stepId)).toEqual([
      "flow.inp",
      "flow.double.flat_map_batch",
      "flow.out",
      "flow.count.key.flat_map_batch",
      "flow.count.init_count.flat_map_batch",
      "flow.count.sum.stateful_batch",
    ]);
  });

  test("duplicate step ids are a BuildError", () => {
    const flow = new Dataflow("flow");
    const s = source(flow);
    op.map("m", s, (x) => x);
    expect(() => op.map("m", s, (x) => x)).toThrow(BuildError);
    expect(() => op.filter("m", s, () => true)).toThrow(/duplicate step id "flow\.m"/);
    expect(() => source(flow)).toThrow(/duplicate step id "flow\.inp"/);
  });

  test("the same id may be used under different parents", () => {
    const flow = new Dataflow("flow");
    const s = source(flow);
    op.map(
      "map",
      op.mapValue("mv", op.keyOn("k", s, String), (v) => v),
      (x) => x,
    );
    expect(flow.steps.map((step) => step.stepId)).toContain("flow.mv.map.flat_map_batch");
    expect(flow.steps.map((step) => step.stepId)).toContain("flow.map.flat_map_batch");
  });

  test.each(["", "a.b", ".", " lead"])("step id %j is a BuildError", (id) => {
    const flow = new Dataflow("flow");
    const s = source(flow);
    expect(() => op.map(id, s, (x) => x)).toThrow(BuildError);
    expect(() => op.input(id, flow, new TestingSource([1]))).toThrow(BuildError);
  });

  test.each(["", "my.flow"])("dataflow id %j is a BuildError", (id) => {
    expect(() => new Dataflow(id)).toThrow(BuildError);
  });

  test("a failed step leaves no step behind", () => {
    const flow = new Dataflow("flow");
    const s = source(flow);
    expect(() => op.map("a.b", s, (x) => x)).toThrow(BuildError);
    expect(flow.steps.map((step) => step.stepId)).toEqual(["flow.inp"]);
  });
});

describe("streams from elsewhere", () => {
  test("a stream from another dataflow is a BuildError", () => {
    const a = new Dataflow("a");
    const b = new Dataflow("b");
    const sa = source(a);
    expect(() => op.map("m", sa, (x) => x).then(op.output, "out", new TestingSink())).not.toThrow();
    const sb = source(b);
    expect(() => op.merge("merge", sa, sb)).toThrow(/belongs to another dataflow/);
    expect(() => op.join("join", op.keyOn("ka", sa, String), op.keyOn("kb", sb, String))).toThrow(BuildError);
  });

  test("streams from different scopes in merge are a BuildError", () => {
    const flow = new Dataflow("flow");
    const s = source(flow);
    const inner = new Stream<number>("flow.x.down", { flow, id: "flow.other" });
    expect(() => op.merge("merge", s, inner)).toThrow(/different scopes/);
  });

  test("merge needs at least one upstream", () => {
    expect(() => op.merge("merge")).toThrow(BuildError);
  });

  test("a non-stream upstream is a BuildError", () => {
    expect(() => op.map("m", 5 as unknown as Stream<number>, (x) => x)).toThrow(BuildError);
  });

  test("awaiting a stream is caught at build time", async () => {
    const flow = new Dataflow("flow");
    const s = source(flow);
    await expect(
      (async () => {
        // A Stream has `then`; awaiting one would otherwise hang or misbehave.
        await (s as unknown as PromiseLike<unknown>);
      })(),
    ).rejects.toThrow(/not a promise/);
  });
});

describe("bad arguments are BuildErrors before any data flows", () => {
  test.each([0, -5, Number.NaN])("collect timeout %d", (timeout) => {
    const flow = new Dataflow("flow");
    const k = op.keyOn("k", source(flow), String);
    expect(() => op.collect("c", k, timeout, 3)).toThrow(/timeout must be > 0/);
  });

  test.each([0, 1.5])("collect maxSize %d", (maxSize) => {
    const flow = new Dataflow("flow");
    const k = op.keyOn("k", source(flow), String);
    expect(() => op.collect("c", k, 1000, maxSize)).toThrow(/maxSize/);
  });

  test("join with bad modes", () => {
    const flow = new Dataflow("flow");
    const a: KeyedStream<number> = op.keyOn("a", source(flow, "i1"), String);
    const b: KeyedStream<number> = op.keyOn("b", source(flow, "i2"), String);
    expect(() => op.join("j1", a, b, { insertMode: "middle" as "first" })).toThrow(/insertMode must be one of/);
    expect(() => op.join("j2", a, b, { emitMode: "sometimes" as "final" })).toThrow(/emitMode must be one of/);
    const untypedJoin = op.join as (stepId: string, ...args: unknown[]) => unknown;
    expect(() => untypedJoin("j3", a, { insertMode: "first" }, b)).toThrow(BuildError);
    expect(() => op.join("j4", { emitMode: "final" } as never)).toThrow(BuildError);
    // Nothing was added by the failed joins.
    expect(flow.steps.some((s) => s.stepId.startsWith("flow.j"))).toBe(false);
  });

  test("a non-function mapper", () => {
    const flow = new Dataflow("flow");
    expect(() => op.flatMapBatch("m", source(flow), 5 as never)).toThrow(/mapper must be a function/);
    expect(() => op.branch("b", source(flow, "i2"), "x" as never)).toThrow(/predicate must be a function/);
  });

  test("a non-object source or sink", () => {
    const flow = new Dataflow("flow");
    expect(() => op.input("inp", flow, null as never)).toThrow(BuildError);
    expect(() => op.output("out", source(flow, "i2"), undefined as never)).toThrow(BuildError);
  });

  test("a dataflow with no input is rejected", async () => {
    await expect(runMain(new Dataflow("empty"))).rejects.toThrow(BuildError);
    await expect(runMain(new Dataflow("empty"))).rejects.toThrow(/"empty" has no input/);
  });
});
