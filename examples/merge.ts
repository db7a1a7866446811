/**
 * Merge two sources: the logs of two servers are read side by side, merged into one
 * stream and counted by level (INFO, WARN, ERROR) once both files are read.
 *
 *   npx node --conditions=waxflow-source runtime/src/cli.ts run examples/merge.ts
 */
import { join } from "node:path";
import { Dataflow } from "waxflow";
import { FileSource } from "waxflow/connectors/files";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";

const data = (file: string) => new FileSource(join(import.meta.dirname, "data", file));

export const flow = new Dataflow("merge");
const a = op.input("server_a", flow, data("server-a.txt"));
const b = op.input("server_b", flow, data("server-b.txt"));
const lines = op.merge("merge", a, b);
const counts = op.countFinal("by_level", lines, (line) => line.split(" ", 1)[0] ?? "");
op.output(
  "out",
  op.map("format", counts, ([level, n]) => `${level}: ${n}`),
  new StdOutSink(),
);
