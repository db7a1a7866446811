// A factory export (`factory.ts:makeFlow`) and a default export, no `flow`.
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

function build(id: string, items: string[]): Dataflow {
  const flow = new Dataflow(id);
  op.inspect("out", op.input("inp", flow, new TestingSource(items)));
  return flow;
}

export function makeFlow(): Dataflow {
  return build("made", ["from", "factory"]);
}

export default build("default", ["from", "default"]);
