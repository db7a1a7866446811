// A running count per key of three keys; COUNT_STEP renames the stateful step, as an
// edited dataflow would. Prints "key n" for each item.
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

export const flow = new Dataflow("counts");
const keyed = op.keyOn("key", op.input("inp", flow, new TestingSource(["a", "b", "c", "a", "b", "a"])), (k) => k);
const counts = op.statefulMap(
  process.env.COUNT_STEP ?? "count",
  keyed,
  (n: number | undefined, _: string): [number, number] => [(n ?? 0) + 1, (n ?? 0) + 1],
);
op.inspect("out", counts, (_id, [key, n]) => process.stdout.write(`${key} ${n}\n`));
