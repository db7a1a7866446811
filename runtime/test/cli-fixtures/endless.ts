// Never reaches EOF: only a signal stops it.
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

function* forever(): Generator<number | InstanceType<typeof TestingSource.PAUSE>> {
  for (let i = 0; ; i++) {
    yield i;
    yield new TestingSource.PAUSE(20);
  }
}

export const flow = new Dataflow("endless");
op.inspect("tick", op.input("inp", flow, new TestingSource(forever())));
