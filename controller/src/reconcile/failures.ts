// Crash loops, told from pod status: a process whose runs keep failing the same way will
// not heal by waiting. The kubelet shows only a container's current and previous run, so
// what each process's failed runs looked like is remembered in the Dataflow's status
// (status.failures): two failed runs in a row with the same exit code and last line
// make a crash loop.
import type { V1ContainerStateTerminated, V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { type DataflowProcessFailure, isPodReady } from "@waxflow/crds";

/** A termination message line longer than this is cut: it goes into conditions, events and a table column. */
const MAX_LINE = 300;
/** Failed runs in a row, the same way, that make a crash loop. */
export const CRASH_LOOP_RUNS = 2;

/** The last non-empty line of a termination message: the runtime's `error: ...` line, or the log's last. */
export function lastLine(message: string | undefined): string {
  const line =
    (message ?? "")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "")
      .at(-1) ?? "";
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE - 1)}…` : line;
}

interface FailedRun {
  readonly run: string;
  readonly exitCode: number;
  readonly line: string;
}

function failedRun(t: V1ContainerStateTerminated | undefined): FailedRun | undefined {
  if (t === undefined || t.exitCode === 0) return undefined;
  const when = t.finishedAt ?? t.startedAt;
  const run = t.containerID ?? (when === undefined ? undefined : new Date(when).toISOString());
  if (run === undefined) return undefined;
  const line = lastLine(t.message) || (t.reason === undefined ? "" : `(${t.reason}, no message)`);
  return { run, exitCode: t.exitCode, line };
}

/** The container's failed runs that pod status still shows, oldest first. */
function failedRuns(status: V1ContainerStatus): FailedRun[] {
  return [failedRun(status.lastState?.terminated), failedRun(status.state?.terminated)].filter(
    (r): r is FailedRun => r !== undefined,
  );
}

type Way = Pick<DataflowProcessFailure, "exitCode" | "line">;
const sameWay = (a: Way, b: Way) => a.exitCode === b.exitCode && (a.line ?? "") === (b.line ?? "");

/**
 * Each process's failure record, updated with what its pod shows now. `pods` are the live
 * pods of the current template: a ready pod, a replaced one (another UID) and a pod
 * that is gone start over.
 */
export function trackFailures(
  previous: readonly DataflowProcessFailure[],
  pods: readonly V1Pod[],
  container: string,
): DataflowProcessFailure[] {
  const records: DataflowProcessFailure[] = [];
  for (const pod of pods) {
    const name = pod.metadata?.name;
    const status = pod.status?.containerStatuses?.find((c) => c.name === container);
    const ready = isPodReady(pod);
    if (name === undefined || status === undefined || status.ready || ready) continue;
    const uid = pod.metadata?.uid;
    let record = previous.find((r) => r.pod === name && r.podUID === uid);
    const runs = failedRuns(status);
    const seen = record === undefined ? -1 : runs.findIndex((r) => r.run === record?.run);
    for (const run of runs.slice(seen + 1)) {
      const times = record !== undefined && sameWay(record, run) ? record.times + 1 : 1;
      record = { pod: name, ...(uid === undefined ? {} : { podUID: uid }), ...run, times };
    }
    if (record !== undefined) records.push(record);
  }
  return records.sort((a, b) => a.pod.localeCompare(b.pod, "en", { numeric: true }));
}

export interface Diagnosis {
  readonly reason: string;
  readonly message: string;
}

/**
 * What the failure records say: a crash loop (the first process in one), else a process
 * that failed once and is being restarted; undefined when none failed.
 */
export function diagnoseFailures(records: readonly DataflowProcessFailure[]): Diagnosis | undefined {
  const looping = records.find((r) => r.times >= CRASH_LOOP_RUNS);
  if (looping !== undefined) {
    return {
      reason: "CrashLoop",
      message: `process ${looping.pod} failed ${looping.times} times in a row with exit code ${looping.exitCode}: ${looping.line || "(no message)"}`,
    };
  }
  const failed = records[0];
  if (failed === undefined) return undefined;
  return {
    reason: "ProcessFailed",
    message: `process ${failed.pod} exited with code ${failed.exitCode} and is restarting: ${failed.line || "(no message)"}`,
  };
}
