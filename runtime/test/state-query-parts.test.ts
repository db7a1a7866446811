// The pure parts of state queries: which step a name means, the state as JSON, the URL
// as a bounded query, the answer as a response, the token, and the mesh frames' shapes.
import { serialize } from "node:v8";
import { expect, test } from "vitest";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSink, TestingSource } from "waxflow/testing";
import { parseStateRequest, StateRouter, stateResponse } from "../src/api/state.ts";
import { stateQueryToken, tokenMatches } from "../src/api/state-token.ts";
import { BadFrame, encodeFrame, FrameDecoder, type StateFrame } from "../src/cluster/frames.ts";
import type { ProcessMesh } from "../src/cluster/mesh.ts";
import { workerForKey } from "../src/engine/hash.ts";
import { mergePages, pageOf, resolveStatefulStep, stateToJson, valueAnswer } from "../src/engine/state-query.ts";
import type { WorkerView } from "../src/process/threads.ts";

function flow(): Dataflow {
  const df = new Dataflow("shop");
  const keyed = op.keyOn("key", op.input("inp", df, new TestingSource(["a"])), (x: string) => x);
  const counts = op.countFinal("counts", keyed, (x: [string, string]) => x[0]);
  const sums = op.statefulMap("sums", keyed, (s: number | undefined) => [(s ?? 0) + 1, s] as const);
  op.output("out", op.merge("all", counts, sums), new TestingSink([]));
  return df;
}

test("a step is named by its core id, with or without the dataflow's id, or by the operator holding one stateful step", () => {
  const df = flow();
  const stateful = df.steps.flatMap((s) => (s.kind === "statefulBatch" ? [s.stepId] : []));
  const [countStep, sumStep] = stateful as [string, string];
  expect(resolveStatefulStep(df, "sums")).toEqual({ stepId: sumStep });
  expect(resolveStatefulStep(df, "sums.stateful_batch")).toEqual({ stepId: sumStep });
  expect(resolveStatefulStep(df, `shop.${sumStep.slice("shop.".length)}`)).toEqual({ stepId: sumStep });
  expect(resolveStatefulStep(df, countStep)).toEqual({ stepId: countStep });
  const missing = resolveStatefulStep(df, "inp");
  expect(missing).toEqual({
    error: `dataflow "shop" has no stateful step "inp"; its stateful steps are ${stateful.join(", ")}`,
  });
  // A hostile name is cut short in the line.
  const long = resolveStatefulStep(df, "x".repeat(5000));
  expect("error" in long && long.error.length).toBeLessThan(300);
});

test("states become JSON where JSON has a faithful form, and say what and where otherwise", () => {
  expect(stateToJson({ n: 1, at: new Date(0), tags: new Set(["a"]), bytes: new Uint8Array([1, 2]) })).toBe(
    '{"n":1,"at":"1970-01-01T00:00:00.000Z","tags":["a"],"bytes":[1,2]}',
  );
  expect(stateToJson(new Map([["x", [1, null]]]))).toBe('{"x":[1,null]}');
  expect(stateToJson(new Map([[1, "one"]]))).toBe('[[1,"one"]]');
  expect(stateToJson(2n ** 64n)).toBe('"18446744073709551616"');
  const shared = { v: 1 };
  expect(stateToJson([shared, shared])).toBe('[{"v":1},{"v":1}]');
  const cyclic: { self?: unknown } = {};
  cyclic.self = cyclic;
  const refused: Array<[unknown, string]> = [
    [Number.NaN, "the state is NaN, which JSON cannot express"],
    [{ a: [1, Number.POSITIVE_INFINITY] }, "the state.a[1] is Infinity, which JSON cannot express"],
    [{ f: () => 1 }, "the state.f is a function, which JSON cannot express"],
    [[undefined], "the state[0] is undefined, which JSON cannot express"],
    [cyclic, "the state.self refers back to itself, which JSON cannot express"],
    [new Date(Number.NaN), "the state is an invalid Date"],
  ];
  for (const [state, line] of refused)
    expect(valueAnswer(true, state)).toEqual({ kind: "error", status: 422, message: line });
  expect(valueAnswer(false, undefined, 4)).toEqual({ kind: "value", epoch: 4 });
});

test("pages: keys after `after` with the prefix, sorted, at most `limit`; owners' pages merge in order", () => {
  expect(pageOf(["b2", "a1", "b1", "b3", "c1"], { prefix: "b", after: "b1", limit: 5 })).toEqual(["b2", "b3"]);
  expect(pageOf(["b2", "a1", "b1"], { prefix: "", after: "", limit: 2 })).toEqual(["a1", "b1"]);
  expect(mergePages([["a", "d"], ["b", "c"], []], 3)).toEqual(["a", "b", "c"]);
  // Many more keys than the page: trimmed on the way, still the first ones in order.
  const many = Array.from({ length: 5000 }, (_, i) => `k${String((i * 7919) % 5000).padStart(4, "0")}`);
  expect(pageOf(many, { prefix: "k", after: "k0100", limit: 7 })).toEqual([
    "k0101",
    "k0102",
    "k0103",
    "k0104",
    "k0105",
    "k0106",
    "k0107",
  ]);
});

test("a URL becomes a bounded query, or one line saying what is wrong", () => {
  const df = flow();
  const step = (resolveStatefulStep(df, "sums") as { stepId: string }).stepId;
  expect(parseStateRequest("/state/sums?key=a%20b", df)).toEqual({
    query: { kind: "get", stepId: step, key: "a b", consistency: "live" },
  });
  expect(parseStateRequest("/state/sums?prefix=a&limit=5&after=a1&consistency=committed", df)).toEqual({
    query: { kind: "list", stepId: step, prefix: "a", after: "a1", limit: 5, consistency: "committed" },
  });
  expect(parseStateRequest("/state/sums", df)).toMatchObject({ query: { kind: "list", limit: 100, prefix: "" } });
  const refusals: Array<[string, number, string]> = [
    ["/state/sums?key=a&limit=3", 400, "give either key, or prefix/limit/after to list keys, not both"],
    ["/state/sums?limit=0", 400, 'limit must be a whole number from 1 to 1000, got "0"'],
    ["/state/sums?limit=1e2", 400, 'limit must be a whole number from 1 to 1000, got "1e2"'],
    [`/state/sums?prefix=${"p".repeat(4097)}`, 414, "prefix is longer than 4096 bytes; no key is that long"],
    [`/state/${"s".repeat(4097)}`, 414, "the step name is too long"],
  ];
  for (const [url, status, message] of refusals) expect(parseStateRequest(url, df), url).toEqual({ status, message });
});

test("answers become JSON bodies, a missing key a 404 line", () => {
  const get = { kind: "get", stepId: "shop.sums.stateful_batch", key: "k", consistency: "committed" } as const;
  expect(stateResponse(get, { kind: "value", json: '{"a":1}', epoch: 7 })).toEqual({
    status: 200,
    type: "application/json",
    body: '{"step":"shop.sums.stateful_batch","consistency":"committed","key":"k","epoch":7,"value":{"a":1}}\n',
  });
  expect(stateResponse(get, { kind: "value", epoch: 7 })).toEqual({
    status: 404,
    type: "text/plain",
    body: 'key "k" has no state in step "shop.sums.stateful_batch" in its last committed epoch\n',
  });
  const list = { kind: "list", stepId: "s", prefix: "", after: "", limit: 2, consistency: "live" } as const;
  expect(JSON.parse(stateResponse(list, { kind: "keys", keys: ["a", "b"] }).body)).toMatchObject({ next: "b" });
  expect(JSON.parse(stateResponse(list, { kind: "keys", keys: ["a"] }).body)).toMatchObject({ next: null });
});

test("the token is a stable derivation of the secret, compared whatever the length of what was sent", () => {
  const token = stateQueryToken(Buffer.from("s".repeat(32)));
  expect(token).toMatch(/^[0-9a-f]{64}$/);
  expect(stateQueryToken(Buffer.from("s".repeat(32)))).toBe(token);
  expect(stateQueryToken(Buffer.from("t".repeat(32)))).not.toBe(token);
  expect(tokenMatches(token, token)).toBe(true);
  expect(tokenMatches(token.slice(1), token)).toBe(false);
  expect(tokenMatches("", token)).toBe(false);
});

test("query and answer frames round-trip; unbounded or malformed ones are BadFrame", () => {
  const query = { kind: "query", id: 3, query: { kind: "get", stepId: "s", key: "k", consistency: "live" } } as const;
  const answer = { kind: "answer", id: 3, answer: { kind: "error", status: 504, message: "late" } } as const;
  expect(new FrameDecoder().push(Buffer.concat([encodeFrame(query), encodeFrame(answer)]))).toEqual([query, answer]);
  const framed = (value: unknown): Buffer => {
    const body = serialize(value);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    return Buffer.concat([header, body]);
  };
  const hostile = [
    { kind: "query", id: 1, query: { kind: "get", stepId: "s", key: 7, consistency: "live" } },
    { kind: "query", id: 1, query: { kind: "get", stepId: "s", key: "k", consistency: "eventual" } },
    {
      kind: "query",
      id: 1,
      query: { kind: "list", stepId: "s", prefix: "", after: "", limit: 0, consistency: "live" },
    },
    { kind: "query", id: 1, query: { kind: "drop", stepId: "s" } },
    { kind: "answer", id: 1, answer: { kind: "value", json: 1 } },
    { kind: "answer", id: 1, answer: { kind: "keys", keys: Array(1001).fill("k") } },
    { kind: "answer", id: 1, answer: { kind: "error", status: 200, message: "ok" } },
    { kind: "answer", id: 1.5, answer: { kind: "value" } },
  ];
  for (const value of hostile) {
    expect(() => new FrameDecoder().push(framed(value)), JSON.stringify(value).slice(0, 80)).toThrow(BadFrame);
  }
});

/** A mesh of `processes` for the router, whose frames to peers the test sees and answers. */
function fakeMesh(processes: number, processId: number) {
  const sent: Array<[number, StateFrame]> = [];
  let handler: ((from: number, frame: StateFrame) => void) | undefined;
  const mesh = {
    processCount: processes,
    processId,
    setStateHandler: (h: (from: number, frame: StateFrame) => void) => {
      handler = h;
    },
    sendState: (to: number, frame: StateFrame) => sent.push([to, frame]),
  };
  return { mesh: mesh as unknown as ProcessMesh, sent, deliver: (from: number, f: StateFrame) => handler?.(from, f) };
}

function view(index: number, query: WorkerView["query"]): WorkerView {
  return { index, epoch: 1, lastCommit: undefined, stepCounts: () => [], query };
}

test("the router asks the owner's process over the mesh, answers peers from its workers, and bounds every wait", async () => {
  const get = (key: string) => ({ kind: "get", stepId: "s", key, consistency: "live" }) as const;
  // Two processes of one worker: keys hash to worker 0 (here) or 1 (the peer).
  const mine = ["a", "b", "c", "d", "e", "f"].find((k) => workerForKey(k, 2) === 0) as string;
  const theirs = ["a", "b", "c", "d", "e", "f"].find((k) => workerForKey(k, 2) === 1) as string;
  const { mesh, sent, deliver } = fakeMesh(2, 0);
  const stuck = new StateRouter({
    mesh,
    workers: [view(0, () => new Promise(() => undefined))],
    workersPerProcess: 1,
    timeoutMs: 50,
  });
  expect(await stuck.answer(get(mine))).toEqual({
    kind: "error",
    status: 504,
    message: "worker 0 did not answer within 50 ms",
  });
  expect(await stuck.answer(get(theirs))).toEqual({
    kind: "error",
    status: 504,
    message: "process 1 did not answer within 50 ms",
  });
  const remote = stuck.answer(get(theirs));
  const [to, frame] = sent.at(-1) as [number, StateFrame];
  expect([to, frame]).toMatchObject([1, { kind: "query", query: get(theirs) }]);
  deliver(1, { kind: "answer", id: frame.id, answer: { kind: "value", json: "3" } });
  expect(await remote).toEqual({ kind: "value", json: "3" });
  // A peer's query for a key this process does not own is refused, not answered from nothing.
  deliver(1, { kind: "query", id: 9, query: get(theirs) });
  await new Promise((r) => setTimeout(r, 10));
  expect(sent.at(-1)).toEqual([
    1,
    {
      kind: "answer",
      id: 9,
      answer: { kind: "error", status: 421, message: `process 0 does not own key "${theirs}"` },
    },
  ]);
  stuck.close();
  expect(await stuck.answer(get(mine))).toMatchObject({ status: 503 });
});
