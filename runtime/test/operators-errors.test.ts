import { describe, expect, test } from "vitest";
import { Dataflow, type KeyedStream, StepError, type Stream } from "waxflow";
import * as op from "waxflow/operators";
import { runMain, TestingSink, TestingSource } from "waxflow/testing";

/** Runs a one-input flow through `body` and returns the error the run rejected with. */
async function failure<X>(items: X[], body: (s: Stream<X>) => Stream<unknown> | undefined): Promise<StepError> {
  const flow = new Dataflow("flow");
  const out = body(op.input("inp", flow, new TestingSource(items)));
  if (out !== undefined) op.output("out", out, new TestingSink());
  const err = await runMain(flow).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StepError);
  return err as StepError;
}

function boom(): never {
  throw new Error("boom");
}

const keyed = (s: Stream<number>): KeyedStream<number> => op.keyOn("key", s, () => "k");

describe("a user function that throws names the full step id and the item", () => {
  test("map", async () => {
    const err = await failure([1, 2, 3], (s) => op.map("double", s, (x) => (x === 2 ? boom() : x * 2)));
    expect(err.message).toContain('"flow.double"');
    expect(err.message).toContain("on item 2");
    expect(err.message).toContain("Error: boom");
    expect(err.stepId).toBe("flow.double");
    expect(err.item).toBe(2);
    expect((err.cause as Error).message).toBe("boom");
  });

  test.each([
    ["filter", (s: Stream<number>) => op.filter("step", s, boom)],
    ["filterMap", (s: Stream<number>) => op.filterMap("step", s, boom)],
    ["flatMap", (s: Stream<number>) => op.flatMap("step", s, boom)],
    ["keyOn", (s: Stream<number>) => op.keyOn("step", s, boom)],
    ["branch", (s: Stream<number>) => op.branch("step", s, boom).trues],
    ["inspect", (s: Stream<number>) => op.inspect("step", s, boom)],
    ["inspectDebug", (s: Stream<number>) => op.inspectDebug("step", s, boom)],
    ["enrichCached", (s: Stream<number>) => op.enrichCached("step", s, boom, (c, x: number) => c.get(x))],
  ])("%s", async (_name, body) => {
    const err = await failure([7], body);
    expect(err.message).toMatch(/"flow\.step(\.[a-z_]+)?" failed on item 7: Error: boom/);
  });

  test("flatMapBatch names its step", async () => {
    const err = await failure([7], (s) => op.flatMapBatch("step", s, boom));
    expect(err.message).toContain('"flow.step"');
    expect(err.message).toContain("boom");
  });

  test.each([
    ["mapValue", (s: Stream<number>) => op.mapValue("step", keyed(s), boom)],
    ["filterValue", (s: Stream<number>) => op.filterValue("step", keyed(s), boom)],
    ["filterMapValue", (s: Stream<number>) => op.filterMapValue("step", keyed(s), boom)],
    ["flatMapValue", (s: Stream<number>) => op.flatMapValue("step", keyed(s), boom)],
    ["statefulMap", (s: Stream<number>) => op.statefulMap("step", keyed(s), boom)],
    ["statefulFlatMap", (s: Stream<number>) => op.statefulFlatMap("step", keyed(s), boom)],
    ["foldFinal", (s: Stream<number>) => op.foldFinal("step", keyed(s), () => 0, boom)],
    [
      "reduceFinal",
      (s: Stream<number>) =>
        op.reduceFinal(
          "step",
          op.map("dup", keyed(s), (kv) => kv),
          boom,
        ),
    ],
    ["stateful", (s: Stream<number>) => op.stateful("step", keyed(s), () => ({ onItem: boom, snapshot: boom }))],
  ])("%s", async (_name, body) => {
    const err = await failure([7, 7], body);
    expect(err.message).toMatch(/"flow\.step[.a-z_]*" failed on item .*7.*Error: boom/);
  });

  test.each([
    ["statefulMap", (s: Stream<number>) => op.statefulMap("step", keyed(s), boom)],
    ["statefulFlatMap", (s: Stream<number>) => op.statefulFlatMap("step", keyed(s), boom)],
    ["foldFinal", (s: Stream<number>) => op.foldFinal("step", keyed(s), () => 0, boom)],
    ["stateful", (s: Stream<number>) => op.stateful("step", keyed(s), () => ({ onItem: boom, snapshot: boom }))],
  ])("%s names the user's step, not its inner core step, and the value", async (_name, body) => {
    const err = await failure([7], body);
    expect(err.message).toMatch(/^step "flow\.step" failed on item 7: Error: boom/);
  });

  test("a throwing stateful builder names the step and the key", async () => {
    const err = await failure([7], (s) => op.stateful("step", keyed(s), boom));
    expect(err.message).toMatch(/"flow\.step[.a-z_]*" failed on item 'k': Error: boom/);
  });

  // branch and inspectDebug wrap a whole batch at once (engine/user-code.ts): the report names the item being handled.
  test.each([
    ["branch", (s: Stream<number>) => op.branch("step", s, (x) => (x === 2 ? boom() : true)).trues],
    ["inspectDebug", (s: Stream<number>) => op.inspectDebug("step", s, (_id, x) => (x === 2 ? boom() : undefined))],
  ])("%s names the item of its batch that failed", async (_name, body) => {
    const flow = new Dataflow("flow");
    op.output("out", body(op.input("inp", flow, new TestingSource([1, 2, 3], 3))), new TestingSink());
    const err = await runMain(flow).then(
      () => expect.unreachable("the run should fail"),
      (e: unknown) => e as StepError,
    );
    expect(err.message).toBe(`step "flow.step" failed on item 2: Error: boom`);
  });

  // statefulBatch wraps a whole run of keys at once (engine/user-code.ts): the report
  // must still name the key being handled, with its values when the logic was given them.
  describe("statefulBatch reports the key it was handling", () => {
    type Logic = op.StatefulBatchLogic<number, number, number>;
    /** Keys a (1, 2), b (3, 4) and c (5) in one batch; `override` sees the values its key was given. */
    const run = async (override: (seen: number[]) => Partial<Logic>) => {
      const flow = new Dataflow("flow");
      const items = op.input("inp", flow, new TestingSource([1, 2, 3, 4, 5], 5));
      const byKey = op.keyOn("key", items, (x) => (x < 3 ? "a" : x < 5 ? "b" : "c"));
      const logic = (): Logic => {
        const seen: number[] = [];
        return {
          onBatch: (values) => {
            seen.push(...values);
            return [values, op.RETAIN];
          },
          onNotify: () => [[], op.RETAIN],
          onEof: () => [[], op.RETAIN],
          notifyAt: () => undefined,
          snapshot: () => 0,
          ...override(seen),
        };
      };
      op.output("out", op.statefulBatch("sb", byKey, logic), new TestingSink());
      return runMain(flow).then(
        () => expect.unreachable("the run should fail"),
        (e: unknown) => e as StepError,
      );
    };
    test("onBatch: the key and its values", async () => {
      const err = await run(() => ({ onBatch: (values) => (values.includes(3) ? boom() : [values, op.RETAIN]) }));
      expect(err.message).toBe(`step "flow.sb" failed on item [ 'b', [ 3, 4 ] ]: Error: boom`);
    });
    test("notifyAt, after onBatch: the key alone", async () => {
      const err = await run((seen) => ({
        notifyAt: () => (seen.includes(3) ? boom() : undefined),
      }));
      expect(err.message).toBe(`step "flow.sb" failed on item 'b': Error: boom`);
    });
    test("onEof: the key alone", async () => {
      const err = await run((seen) => ({ onEof: () => (seen.includes(5) ? boom() : [[], op.RETAIN]) }));
      expect(err.message).toBe(`step "flow.sb" failed on item 'c': Error: boom`);
    });
  });

  test("a nested failure is reported once, by the innermost step", async () => {
    const err = await failure([1], (s) => op.mapValue("outer", keyed(s), boom));
    expect(err.message.match(/failed/g)).toHaveLength(1);
    expect(err.message).toContain("flow.outer");
  });

  test("long items are truncated in the message", async () => {
    const big = "x".repeat(10_000);
    const err = await failure([big], (s) => op.map("m", s, boom));
    expect(err.message.length).toBeLessThan(400);
    expect(err.item).toBe(big);
  });

  test("a throwing source names the input step", async () => {
    const flow = new Dataflow("flow");
    op.output(
      "out",
      op.input("inp", flow, {
        listParts: () => ["p"],
        buildPart: () => ({ nextBatch: boom, snapshot: () => undefined }),
      }),
      new TestingSink(),
    );
    await expect(runMain(flow)).rejects.toThrow(/"flow\.inp".*boom/);
  });

  test("a throwing sink names the output step", async () => {
    const flow = new Dataflow("flow");
    op.output("out", op.input("inp", flow, new TestingSource([1])), { build: () => ({ writeBatch: boom }) });
    await expect(runMain(flow)).rejects.toThrow(/"flow\.out".*boom/);
  });

  test("a rejecting async sink names the output step", async () => {
    const flow = new Dataflow("flow");
    op.output("out", op.input("inp", flow, new TestingSource([1])), {
      build: () => ({ writeBatch: async () => boom() }),
    });
    await expect(runMain(flow)).rejects.toThrow(/"flow\.out".*boom/);
  });
});

describe("wrong result types are TypeErrors naming the step", () => {
  function expectTypeError(err: StepError, stepId: string, what: RegExp): void {
    expect(err.cause).toBeInstanceOf(TypeError);
    expect(err.message).toContain(stepId);
    expect(err.message).toMatch(what);
  }

  test("keyOn returning a non-string", async () => {
    const err = await failure([1, 2], (s) => op.keyOn("key", s, (x) => x as unknown as string));
    expectTypeError(err, '"flow.key"', /key must be a string, got number/);
    expect(err.item).toBe(1);
  });

  test("filter returning a non-boolean", async () => {
    const err = await failure([1], (s) => op.filter("f", s, (x) => x as unknown as boolean));
    expectTypeError(err, '"flow.f"', /must return a boolean, got number/);
  });

  test("filterValue returning a non-boolean", async () => {
    const err = await failure([1], (s) => op.filterValue("fv", keyed(s), () => "yes" as unknown as boolean));
    expectTypeError(err, "flow.fv", /must return a boolean, got string/);
  });

  test("branch predicate returning a non-boolean", async () => {
    const err = await failure([1], (s) => op.branch("b", s, () => "not a bool" as unknown as boolean).trues);
    expectTypeError(err, '"flow.b"', /must return a boolean, got string/);
  });

  test("flatten of a non-iterable item", async () => {
    const err = await failure<unknown>([[1], 5], (s) => op.flatten("flat", s as Stream<Iterable<unknown>>));
    expectTypeError(err, '"flow.flat"', /iterable/);
    expect(err.item).toBe(5);
  });

  test("flatMap returning a non-iterable", async () => {
    const err = await failure([1], (s) => op.flatMap("fm", s, (x) => x as unknown as Iterable<number>));
    expectTypeError(err, '"flow.fm"', /iterable/);
  });

  test("flatMapValue returning a non-iterable", async () => {
    const err = await failure([1], (s) => op.flatMapValue("fmv", keyed(s), (x) => x as unknown as Iterable<number>));
    expectTypeError(err, "flow.fmv", /iterable/);
  });

  test("flatMapBatch returning a non-iterable", async () => {
    const err = await failure([1], (s) => op.flatMapBatch("fmb", s, () => 5 as unknown as Iterable<number>));
    expectTypeError(err, '"flow.fmb"', /iterable/);
  });

  test("a source returning a non-iterable batch", async () => {
    const flow = new Dataflow("flow");
    const source = {
      listParts: () => ["p"],
      buildPart: () => ({ nextBatch: () => 5 as unknown as number[], snapshot: () => undefined }),
    };
    op.output("out", op.input("inp", flow, source), new TestingSink());
    const err = await runMain(flow).then(
      () => undefined,
      (e: unknown) => e as StepError,
    );
    expect(err).toBeInstanceOf(StepError);
    expectTypeError(err as StepError, '"flow.inp"', /nextBatch of partition p must return an iterable, got number/);
  });

  test("statefulMap returning a non-pair", async () => {
    const err = await failure([1, 2], (s) =>
      op.statefulMap("sm", keyed(s), (_state, v) => v as unknown as [number, number]),
    );
    expectTypeError(err, '"flow.sm"', /\[state, emit\]/);
  });

  test("statefulFlatMap returning a non-iterable emit", async () => {
    const err = await failure([1], (s) =>
      op.statefulFlatMap("sfm", keyed(s), (_state, v) => [v, v] as unknown as [number, number[]]),
    );
    expectTypeError(err, '"flow.sfm"', /iterable/);
  });

  test("stateful logic returning a non-pair", async () => {
    const err = await failure([1], (s) =>
      op.stateful("st", keyed(s), () => ({
        onItem: (v: number) => [v] as unknown as op.LogicResult<number>,
        snapshot: () => undefined,
      })),
    );
    expectTypeError(err, '"flow.st"', /\[emits, discard\]/);
  });

  test("a stateful step fed unkeyed items", async () => {
    const err = await failure([1], (s) =>
      op.statefulMap("sm", s as unknown as KeyedStream<number>, (st: number | undefined, v: number) => [st, v]),
    );
    expectTypeError(err, "flow.sm", /\[key, value\] pair/);
  });

  test("a stateful step fed a non-string key", async () => {
    const err = await failure([1], (s) =>
      op.countFinal(
        "count",
        op.map("pair", s, (x) => [x, x] as unknown as [string, number]),
        (kv) => kv[0],
      ),
    );
    expectTypeError(err, "flow.count", /string/);
  });

  test("notifyAt returning a non-Date", async () => {
    const err = await failure([1], (s) =>
      op.stateful("st", keyed(s), () => ({
        onItem: (): op.LogicResult<number> => [[], op.RETAIN],
        notifyAt: () => 5 as unknown as Date,
        snapshot: () => undefined,
      })),
    );
    expectTypeError(err, "flow.st", /notifyAt must return a Date/);
  });
});
