/**
 * Count words: read a text file line by line, split each line into lowercase words
 * (flatMap) and count each word once the file is read (countFinal).
 *
 *   npm start    # or: npx node --conditions=waxflow-source runtime/src/cli.ts run examples/wordcount.ts
 */
import { join } from "node:path";
import { Dataflow } from "waxflow";
import { FileSource } from "waxflow/connectors/files";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";

export const flow = new Dataflow("wordcount");
const lines = op.input("inp", flow, new FileSource(join(import.meta.dirname, "data", "wordcount.txt")));
const words = op.flatMap("split", lines, (line) => line.toLowerCase().match(/[a-z']+/g) ?? []);
const counts = op.countFinal("count", words, (word) => word);
op.output(
  "out",
  op.map("format", counts, ([word, n]) => `${word}: ${n}`),
  new StdOutSink(),
);
