// User code that holds its worker for BUSY_MS (default 3000) once, on the first key it
// sees, as a slow step or a large snapshot does: the process must still answer its
// peers' heartbeats meanwhile. Keys spread over both workers of a 2-process cluster, and
// every count then goes to worker 0, so process 0 waits on process 1 while it is busy.
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";
import { workerForKey } from "../../src/engine/hash.ts";

const busyMs = Number(process.env.BUSY_MS ?? "3000");
const TOTAL = ["a", "b", "c", "d"].find((k) => workerForKey(k, 2) === 0) ?? "a";
let held = false;
export const flow = new Dataflow("busy");
const keyed = op.keyOn(
  "key",
  op.input("inp", flow, new TestingSource(Array.from({ length: 40 }, (_, i) => i))),
  String,
);
const counts = op.statefulMap("hold", keyed, (n: number | undefined, _x: number): [number, number] => {
  const until = held ? 0 : Date.now() + busyMs;
  held = true;
  while (Date.now() < until) {}
  return [(n ?? 0) + 1, (n ?? 0) + 1];
});
const total = op.countFinal("total", counts, () => TOTAL);
op.inspect("out", total);
