/**
 * A dataflow that waits for input that never comes: what `waxflow run` holds when idle,
 * for the memory case's baseline (bench/cases/memory.ts).
 */
import { Dataflow } from "waxflow";
import { StdOutSink } from "waxflow/connectors/stdio";
import type { DynamicSource } from "waxflow/inputs";
import * as op from "waxflow/operators";

const nothing: DynamicSource<string> = {
  build: () => ({ nextBatch: () => [], nextAwake: () => new Date(Date.now() + 1_000) }),
};

export const flow = new Dataflow("bench_idle");
op.output(
  "out",
  op.statefulMap(
    "count",
    op.keyOn("key", op.input("inp", flow, nothing), (k) => k),
    (s: number | undefined) => [(s ?? 0) + 1, s] as const,
  ),
  new StdOutSink(),
);
