// User code that never returns: its worker thread cannot hear a stop, so the process must
// terminate it rather than hang.
import { isMainThread } from "node:worker_threads";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

export const flow = new Dataflow("spins");
const items = op.input("inp", flow, new TestingSource(["a"]));
op.inspect(
  "tick",
  op.map("spin", items, (x) => {
    process.stdout.write("spinning\n");
    while (!isMainThread) {}
    return x;
  }),
);
