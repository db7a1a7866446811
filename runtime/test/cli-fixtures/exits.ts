// User code that ends its worker thread with process.exit (in a worker thread, exit ends
// the thread only): the process must fail, not wait for that worker forever.
import { isMainThread } from "node:worker_threads";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

export const flow = new Dataflow("flow");
const words = op.input("inp", flow, new TestingSource(["a", "b", "c"]));
op.inspect(
  "out",
  op.map("step", words, (w) => {
    if (!isMainThread) process.exit(3);
    return w;
  }),
);
