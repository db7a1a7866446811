/**
 * waxflow: stateful stream processing with Bytewax's semantics, in TypeScript.
 *
 *   const flow = new Dataflow("wordcount");
 *   const lines = op.input("read", flow, new FileSource("words.txt"));
 *   ...
 */
export { Dataflow, type KeyedStream, Stream } from "./dataflow.ts";
export { BuildError, StepError, UsageError } from "./errors.ts";
export { DISCARD, type LogicResult, RETAIN, type StatefulBatchLogic } from "./graph.ts";
