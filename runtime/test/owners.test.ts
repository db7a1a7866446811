// Routing has one owner (engine/owners.ts): the rules the steps route and load their state
// by are the rules a resume sends snapshots by, for every kind of step that keeps state.
import { expect, test } from "vitest";
import { Dataflow } from "waxflow";
import { DirSink } from "waxflow/connectors/files";
import * as op from "waxflow/operators";
import type { TransactionalSink } from "waxflow/outputs";
import { TestingSink, TestingSource } from "waxflow/testing";
import {
  keyOwner,
  listPartitions,
  partitionOwners,
  routingOf,
  slotKey,
  slotOwner,
  statefulSteps,
  stateOwners,
} from "../src/engine/owners.ts";

/** Only its shape matters here: routing never builds a sink. */
const transactional = {
  build: () => ({ writeBatch: () => {} }),
  buildTransactional: () => {
    throw new Error("not built in this test");
  },
} as unknown as TransactionalSink<[string, number], unknown>;

function flow(): Dataflow {
  const df = new Dataflow("owners");
  const items = op.input("inp", df, new TestingSource([1, 2, 3]));
  const keyed = op.keyOn("key", items, (x) => `k${x}`);
  const counts = op.statefulMap("count", keyed, (s: number | undefined, v: number) => [(s ?? 0) + v, v]);
  op.output("files", op.mapValue("text", counts, String), new DirSink("/unused", 5));
  op.output("tx", counts, transactional);
  op.output("plain", counts, new TestingSink());
  return df;
}

test("each kind of step keeps its state by one rule, and a resume routes it by the same", async () => {
  const df = flow();
  const routing = Object.fromEntries(df.steps.map((s) => [s.stepId, routingOf(s)]));
  expect(routing).toMatchObject({
    "owners.inp": "partition",
    "owners.count.stateful_batch": "key",
    "owners.files": "partition",
    "owners.tx": "slot",
    "owners.plain": undefined,
  });
  expect([...statefulSteps(df)].sort()).toEqual(
    ["owners.count.stateful_batch", "owners.files", "owners.inp", "owners.tx"].sort(),
  );

  const partitions = await listPartitions(df);
  for (const workers of [1, 3, 4]) {
    const owner = stateOwners(df, partitions, workers);
    for (const key of ["k1", "k2", "k3", "another key"]) {
      expect(owner("owners.count.stateful_batch", key)).toBe(keyOwner(key, workers));
    }
    const files = partitionOwners(partitions.get("owners.files") ?? [], workers);
    expect(files.size).toBe(5);
    for (const [part, worker] of files) expect(owner("owners.files", part)).toBe(worker);
    for (const slot of [0, 1, 5]) expect(owner("owners.tx", slotKey(slot))).toBe(slotOwner(slotKey(slot), workers));
    expect(owner("owners.inp", "no-such-partition")).toBeUndefined();
    expect(owner("owners.plain", "k1")).toBeUndefined();
    expect(owner("owners.removed_step", "k1")).toBeUndefined();
  }
});
