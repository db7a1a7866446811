/**
 * A dataflow that prints at once: each worker's source yields one line, `worker <i>`, and
 * ends. The thread-start case (bench/cases/thread-start.ts) times `waxflow run` to its
 * first line and to every worker's line.
 */
import { Dataflow } from "waxflow";
import { StdOutSink } from "waxflow/connectors/stdio";
import type { DynamicSource } from "waxflow/inputs";
import * as op from "waxflow/operators";

const once: DynamicSource<string> = {
  build: (_step, index) => {
    let sent = false;
    return {
      nextBatch: () => {
        if (sent) return null;
        sent = true;
        return [`worker ${index}`];
      },
    };
  },
};

export const flow = new Dataflow("bench_start");
op.output("out", op.input("inp", flow, once), new StdOutSink());
