// Doubles 1..5 and prints each result: the CLI's happy path.
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

export const flow = new Dataflow("numbers");
const nums = op.input("inp", flow, new TestingSource([1, 2, 3, 4, 5]));
op.inspect(
  "out",
  op.map("double", nums, (x) => x * 2),
);
