// A map that fails on one item: the CLI must name the step and the item.
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

export const flow = new Dataflow("flow");
const words = op.input("inp", flow, new TestingSource(["ok", "bad", "ok"]));
op.inspect(
  "out",
  op.map("step", words, (w) => {
    if (w === "bad") throw new Error("cannot handle this word");
    return w.toUpperCase();
  }),
);
