// Every item is a new key with 2 KB of state: the recovery store grows until its disk is full.
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";

function* keys(): Generator<string> {
  for (let i = 0; ; i++) yield `k${i}`;
}

export const flow = new Dataflow("grows");
const keyed = op.keyOn("key", op.input("inp", flow, new TestingSource(keys(), 200)), (k) => k);
op.statefulMap("hold", keyed, (_: string | undefined, k: string): [string, string] => [k.padEnd(2048, "x"), k]);
