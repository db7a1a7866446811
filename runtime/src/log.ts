/**
 * What a running process tells its operator on stderr (what `kubectl logs` and
 * `waxctl df logs` show), one line per event: the start, the cluster formed, the resume
 * and its hand-off, progress at an interval, the end. stdout stays the dataflow's own
 * (StdOutSink). The lines are built by pure functions, so their wording is tested
 * without processes; `stderrLog` adds the time and the process.
 */
import { readFileSync } from "node:fs";
import type { StepCount } from "./engine/worker.ts";

/** The runtime's version, from the package it ships in (runtime/package.json, beside src/ and dist/). */
export const VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

/** Seconds between progress lines unless configured: proof of life without flooding a log. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 30_000;

export type LogLine = (line: string) => void;

/** Writes `<ISO time> process <i>: <line>` to stderr: a merged log of several processes stays readable. */
export function stderrLog(processId: number, role: "process" | "holder" = "process"): LogLine {
  return (line) => process.stderr.write(`${new Date().toISOString()} ${role} ${processId}: ${line}\n`);
}

export interface StartFacts {
  readonly flowId: string;
  readonly processId: number;
  readonly processes: number;
  readonly workersPerProcess: number;
  readonly epochIntervalMs: number;
  /** The recovery directory; undefined with recovery off. */
  readonly recovery: string | undefined;
}

export function startLine(f: StartFacts): string {
  const shape = `process ${f.processId} of ${f.processes} x ${count(f.workersPerProcess, "worker")} (${f.processes * f.workersPerProcess} in all)`;
  const recovery =
    f.recovery === undefined
      ? `recovery off, epochs every ${seconds(f.epochIntervalMs)}`
      : `recovery on in ${f.recovery}, snapshots every ${seconds(f.epochIntervalMs)}`;
  return `waxflow ${VERSION} starting dataflow "${f.flowId}": ${shape}; ${recovery}`;
}

export function clusterFormedLine(processes: number, elapsedMs: number): string {
  return processes === 1
    ? "cluster formed: a single process, no peers to wait for"
    : `cluster formed: all ${processes} processes connected after ${seconds(elapsedMs)}`;
}

/** What this process's part of the resume protocol did (recovery/handoff.ts). */
export interface ResumeFacts {
  /** The execution about to run and the epoch it starts at. */
  readonly execution: number;
  readonly resumeEpoch: number;
  /** The execution resumed from, 0 on a fresh start, and how many processes it ran. */
  readonly resumedFrom: number;
  readonly previousProcesses: number;
  readonly processes: number;
  /** Snapshots this process sent to other processes, and received from them. */
  readonly rowsSent: number;
  readonly rowsReceived: number;
}

export function resumeLine(f: ResumeFacts): string {
  if (f.resumedFrom === 0) {
    return `recovery: no earlier execution in the stores, starting fresh at epoch ${f.resumeEpoch} (execution ${f.execution})`;
  }
  const shape =
    f.previousProcesses === f.processes
      ? count(f.processes, "process")
      : `rescaled from ${f.previousProcesses} to ${count(f.processes, "process")}`;
  const handoff =
    f.rowsSent === 0 && f.rowsReceived === 0
      ? "no snapshots changed process"
      : `handed ${count(f.rowsSent, "snapshot")} over to other processes, received ${f.rowsReceived}`;
  return `resuming from epoch ${f.resumeEpoch} (execution ${f.resumedFrom} -> ${f.execution}, ${shape}); ${handoff}`;
}

/** Items read from the sources and written to the sinks, over this process's workers. */
export interface Progress {
  readonly epoch: number;
  readonly itemsIn: number;
  readonly itemsOut: number;
}

export function progressLine(now: Progress, before: Progress, intervalMs: number): string {
  return (
    `progress: epoch ${now.epoch}, ${count(now.itemsIn, "item")} in, ${now.itemsOut} out ` +
    `(+${now.itemsIn - before.itemsIn} in, +${now.itemsOut - before.itemsOut} out in the last ${seconds(intervalMs)})`
  );
}

export function finishedLine(p: Progress, elapsedMs: number): string {
  return `finished: every input reached its end after ${seconds(elapsedMs)}: ${count(p.itemsIn, "item")} in, ${p.itemsOut} out, epoch ${p.epoch}`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : noun.endsWith("s") ? "es" : "s"}`;
}

/**
 * Progress over a process's workers: items the input steps emitted and items delivered
 * to the output steps, at the epoch of its slowest worker.
 */
export function progressOf(
  workers: readonly { readonly epoch: number; stepCounts(): readonly StepCount[] }[],
  inputs: ReadonlySet<string>,
  outputs: ReadonlySet<string>,
): Progress {
  let itemsIn = 0;
  let itemsOut = 0;
  for (const worker of workers) {
    for (const step of worker.stepCounts()) {
      if (inputs.has(step.stepId)) itemsIn += step.itemsOut;
      if (outputs.has(step.stepId)) itemsOut += step.itemsIn;
    }
  }
  const epoch = workers.length === 0 ? 0 : Math.min(...workers.map((w) => w.epoch));
  return { epoch, itemsIn, itemsOut };
}
