// The resume protocol's frame orders, one at a time. Each connection of the mesh keeps its
// own order, but nothing orders one connection against another: a source's rows and its
// "resumed" may reach a process before process 0's plan does. Whatever the order, every row
// a source sends is kept, and a row nobody may send is refused.
import { serialize } from "node:v8";
import { expect, test } from "vitest";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSink, TestingSource } from "waxflow/testing";
import type { ControlMessage } from "../src/cluster/frames.ts";
import type { ControlHandler } from "../src/cluster/mesh.ts";
import { type ControlFrame, encodeControl, RECOVERY_TAG } from "../src/recovery/control.ts";
import { type ResumeMesh, type ResumeStore, type ResumeSummary, resumeProcess } from "../src/recovery/handoff.ts";
import type { ExecutionRecord, ResumePlan, SnapshotRow } from "../src/recovery/plan.ts";

function flow(): Dataflow {
  const df = new Dataflow("handoff");
  const items = op.input("inp", df, new TestingSource<[string, number]>([new TestingSource.EOF()]));
  op.output(
    "out",
    op.statefulMap("sum", items, (s: number | undefined, v: number) => [(s ?? 0) + v, v]),
    new TestingSink([]),
  );
  return df;
}

/** Process 1 of a cluster rescaled from 3 processes to 2: process 2's store is served by a holder. */
const PLAN: ResumePlan = {
  execution: 2,
  resumeEpoch: 7,
  resumedFrom: 1,
  sources: 3,
  processCount: 2,
  workersPerProcess: 1,
  stores: ["s0", "s1"],
};
const FROM_HOLDER: SnapshotRow[] = [["handoff.sum", "k2", 5, 20]];
const FROM_PROCESS_0: SnapshotRow[] = [["handoff.sum", "k0", 6, 10]];

interface Harness {
  readonly resumed: Promise<ResumeSummary>;
  deliver(from: number, frame: ControlFrame): void;
  /** Delivers a message as the mesh would: `from` beyond the cluster's 2 processes is a holder. */
  deliverMessage(from: number, message: ControlMessage): void;
  readonly written: SnapshotRow[];
  readonly refused: string[];
  /** The kind of each refusal, in order ("frame" or "role"). */
  readonly refusedAs: string[];
  readonly begun: ExecutionRecord[];
}

/** Runs process 1's side of the resume over a scripted mesh and a store that records what it is told. */
function processOne(): Harness {
  let handler: ControlHandler | undefined;
  const written: SnapshotRow[] = [];
  const refused: string[] = [];
  const refusedAs: string[] = [];
  const begun: ExecutionRecord[] = [];
  const mesh: ResumeMesh = {
    processId: 1,
    processCount: 2,
    onHolderLost: () => {},
    setControlHandler: (h) => {
      handler = h;
    },
    sendControl: () => {},
    broadcast: () => {},
    writable: async () => {},
    refuse: (_process, kind, detail) => {
      refused.push(detail);
      refusedAs.push(kind);
    },
    acceptHolders: () => {},
  };
  const store: ResumeStore = {
    dir: "/unused",
    records: (process) => ({ process, storeId: "s1", executions: [], frontiers: [] }),
    prepare: () => {},
    removedSteps: () => [],
    dropSteps: () => {},
    // This store's own rows all stay here.
    *newestBelow() {},
    handedOff: () => {},
    writeRows: (rows) => written.push(...rows),
    begin: (record) => begun.push(record),
    observeFrontier: () => {},
  };
  const resumed = resumeProcess({
    flow: flow(),
    mesh,
    store,
    workersPerProcess: 1,
    timeoutMs: 1000,
    signal: new AbortController().signal,
    fail: (err) => {
      throw err;
    },
  });
  return {
    resumed,
    deliver(from, frame) {
      this.deliverMessage(from, encodeControl(frame));
    },
    deliverMessage(from, message) {
      if (handler === undefined) throw new Error("the resume has not set its control handler yet");
      handler(from, message, from >= 2);
    },
    written,
    refused,
    refusedAs,
    begun,
  };
}

/** Lets resumeProcess reach its handler (it lists partitions first) and its sends settle. */
const settle = () => new Promise((r) => setTimeout(r, 10));

test("a holder's rows and its 'resumed' both before the plan: the rows are kept and the execution recorded after every source", async () => {
  const p1 = processOne();
  await settle();
  p1.deliver(2, { kind: "rows", rows: FROM_HOLDER });
  p1.deliver(2, { kind: "resumed" });
  p1.deliver(0, { kind: "plan", plan: PLAN });
  await settle();
  expect(p1.begun).toEqual([]);
  p1.deliver(0, { kind: "rows", rows: FROM_PROCESS_0 });
  p1.deliver(0, { kind: "resumed" });
  const summary = await p1.resumed;
  expect(p1.refused).toEqual([]);
  expect(p1.written).toEqual([...FROM_HOLDER, ...FROM_PROCESS_0]);
  expect(summary.rowsReceived).toBe(2);
  expect(p1.begun).toEqual([expect.objectContaining({ execution: 2, processIndex: 1, resumeEpoch: 7 })]);
});

test("the plan first, then each source's rows and 'resumed': every row is kept", async () => {
  const p1 = processOne();
  await settle();
  p1.deliver(0, { kind: "plan", plan: PLAN });
  p1.deliver(2, { kind: "rows", rows: FROM_HOLDER });
  p1.deliver(0, { kind: "rows", rows: FROM_PROCESS_0 });
  p1.deliver(0, { kind: "resumed" });
  p1.deliver(2, { kind: "resumed" });
  const summary = await p1.resumed;
  expect(p1.refused).toEqual([]);
  expect(summary.rowsReceived).toBe(2);
  expect(p1.begun).toHaveLength(1);
});

test("rows after their sender said 'resumed', or from a store the plan does not resume from, are refused and not written", async () => {
  const p1 = processOne();
  await settle();
  p1.deliver(0, { kind: "plan", plan: { ...PLAN, sources: 2 } });
  p1.deliver(2, { kind: "rows", rows: FROM_HOLDER });
  p1.deliver(0, { kind: "resumed" });
  p1.deliver(0, { kind: "rows", rows: FROM_PROCESS_0 });
  await p1.resumed;
  expect(p1.written).toEqual([]);
  expect(p1.refused).toEqual([
    "holder 2 sent snapshot rows it does not hold for execution 2",
    "process 0 sent snapshot rows it does not hold for execution 2",
  ]);
});

test("a malformed control payload is refused with one line naming the frame, and nothing of it is used", async () => {
  const p1 = processOne();
  await settle();
  const payloads: Array<[ControlMessage, RegExp]> = [
    [
      { tag: RECOVERY_TAG, payload: serialize({ kind: "plan", plan: { ...PLAN, stores: "s0" } }) },
      /^process 0 sent a malformed recovery control frame "plan"$/,
    ],
    [
      { tag: RECOVERY_TAG, payload: serialize({ kind: "rows", rows: [["handoff.sum", "k0", 6]] }) },
      /^process 0 sent a malformed recovery control frame "rows"$/,
    ],
    [
      { tag: RECOVERY_TAG, payload: serialize({ kind: "committed", worker: -1, frontier: 3 }) },
      /^process 0 sent a malformed recovery control frame "committed"$/,
    ],
    [
      { tag: RECOVERY_TAG, payload: serialize({ kind: "toString" }) },
      /^process 0 sent a recovery control frame of unknown kind "toString"$/,
    ],
    [
      { tag: RECOVERY_TAG, payload: Buffer.from([0xff, 0x0f, 0x6f, 0x22, 0x03]) },
      /^process 0 sent a recovery control frame of 5 bytes that does not decode: .+$/,
    ],
    [
      { tag: "backup", payload: encodeControl({ kind: "resumed" }).payload },
      /^process 0 sent a control message tagged "backup", not recovery's$/,
    ],
  ];
  for (const [message] of payloads) p1.deliverMessage(0, message);
  expect(p1.refused).toHaveLength(payloads.length);
  payloads.forEach(([, line], i) => {
    expect(p1.refused[i]).toMatch(line);
  });
  expect(p1.refusedAs).toEqual(payloads.map(() => "frame"));
  // None of them was taken for a plan: the well-formed one still is, and the resume completes.
  p1.deliver(0, { kind: "plan", plan: { ...PLAN, sources: 1 } });
  p1.deliver(0, { kind: "resumed" });
  const summary = await p1.resumed;
  expect(summary.plan.sources).toBe(1);
});

test("a well-formed control frame its sender's role may not send is refused as a role violation", async () => {
  const p1 = processOne();
  await settle();
  p1.deliver(2, { kind: "plan", plan: PLAN });
  p1.deliver(0, { kind: "committed", worker: 1, frontier: 4 });
  p1.deliver(2, { kind: "committed", worker: 2, frontier: 4 });
  p1.deliver(0, { kind: "records", records: { process: 0, storeId: "s0", executions: [], frontiers: [] } });
  p1.deliver(0, { kind: "released" });
  expect(p1.refused).toEqual([
    "holder 2 sent a resume plan not from process 0",
    "process 0 sent a commit for worker 1",
    "holder 2 sent a commit involving a holder",
    "process 0 sent records sent to a process other than 0",
    "process 0 sent released sent to a cluster process",
  ]);
  expect(p1.refusedAs).toEqual(["role", "role", "role", "role", "role"]);
});
