/**
 * File sinks move positions, not files: a resume truncates each output file back to its
 * snapshot position, so a partition whose position came from another process needs its
 * file where this process can see it. Checked once per process after the resume and
 * before its workers start, so a rescale onto per-process storage stops with one line
 * instead of failing inside a worker once data flows.
 */
import { statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Dataflow } from "../dataflow.ts";
import { partitionOwners } from "../engine/owners.ts";
import type { StateStore } from "../engine/state-store.ts";
import { StepError } from "../errors.ts";
import { isFixedPartitionedSink } from "../outputs.ts";

/** A sink whose partitions are files (FileSink, DirSink). */
interface FileOutput {
  listParts(): string[];
  outputFile(forPart: string): string;
}

function isFileOutput(sink: unknown): sink is FileOutput {
  return isFixedPartitionedSink(sink) && typeof (sink as Partial<FileOutput>).outputFile === "function";
}

/** Where a step writes files: what `waxctl df scale` compares with the pods' volumes. */
export interface StepFiles {
  readonly step: string;
  /** Absolute directories of its partitions' files. */
  readonly directories: readonly string[];
}

/** The directories each file-writing output step of `flow` writes to, resolved against `cwd`. */
export function fileOutputs(flow: Dataflow, cwd: string): StepFiles[] {
  return flow.steps.flatMap((step) => {
    if (step.kind !== "output" || !isFileOutput(step.sink)) return [];
    const sink = step.sink;
    try {
      const directories = new Set(sink.listParts().map((part) => dirname(resolve(cwd, sink.outputFile(part)))));
      return [{ step: step.stepId, directories: [...directories] }];
    } catch (err) {
      throw StepError.wrap(step.stepId, err);
    }
  });
}

export interface OutputFilesCheck {
  readonly flow: Dataflow;
  readonly store: Pick<StateStore, "load">;
  readonly processId: number;
  readonly workersPerProcess: number;
  readonly processCount: number;
  /** How many processes the execution resumed from ran. */
  readonly previousProcesses: number;
  /** Sink partitions whose positions came to this process from another one. */
  readonly movedHere: ReadonlyMap<string, ReadonlySet<string>>;
  /** The size of a file, undefined when it does not exist. */
  readonly fileSize?: (path: string) => number | undefined;
}

/** Throws, naming the step, the partition and the file, when an output file this process resumes is shorter than its snapshot. */
export function checkOutputFiles(check: OutputFilesCheck): void {
  const size = check.fileSize ?? existingSize;
  const workers = check.processCount * check.workersPerProcess;
  const first = check.processId * check.workersPerProcess;
  const mine = (worker: number | undefined): boolean =>
    worker !== undefined && worker >= first && worker < first + check.workersPerProcess;
  for (const step of check.flow.steps) {
    if (step.kind !== "output" || !isFileOutput(step.sink)) continue;
    const sink = step.sink;
    const owners = partitionOwners(sink.listParts(), workers);
    for (const [part, position] of check.store.load(step.stepId, (p) => mine(owners.get(p)))) {
      if (typeof position !== "number" || position === 0) continue;
      const path = sink.outputFile(part);
      const bytes = size(path);
      if (bytes !== undefined && bytes >= position) continue;
      const found = bytes === undefined ? "does not exist" : `is ${bytes} bytes`;
      const moved = check.movedHere.get(step.stepId)?.has(part) === true;
      const change =
        check.previousProcesses === check.processCount
          ? "the workers per process changed"
          : `the cluster went from ${check.previousProcesses} to ${check.processCount} process(es)`;
      const reason = moved
        ? `output file ${path} ${found}, but its snapshot position is ${position} bytes: the partition moved to process ` +
          `${check.processId} when ${change}, and its file stayed with the process that wrote it; ` +
          "file output across a rescale needs a shared volume (one directory every process mounts): " +
          "go back to the previous shape, or put the output directory on a shared volume"
        : `output file ${path} ${found}, shorter than its snapshot position ${position}: it was replaced or truncated ` +
          "since the snapshot; restore it, or delete the recovery data to write from the start";
      throw StepError.inPartition(step.stepId, new Error(reason), part);
    }
  }
}

function existingSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
