/**
 * Where a cluster resumes from, decided from the execution records of every process's
 * recovery store: a pure function, so one process (process 0) can decide for all and
 * the decision can be tested without processes.
 *
 * A process records an execution in its store only after it has received every
 * snapshot it needs for it. So an execution is complete when each of its processes'
 * stores records it, and then those stores alone hold everything needed to resume
 * it. An execution whose start was interrupted is incomplete: an intact store of one of
 * its processes lacks the record. Nothing was committed for it that the resume keeps
 * (every store drops snapshots at or after the resume epoch), so the cluster resumes
 * from the execution before it instead. A store that is missing, or that is not the
 * store its process ran with (its volume was emptied or replaced), cannot prove
 * anything: the start waits for it or fails rather than drop state.
 */
import type { StoredState } from "./state-codec.ts";

/** A snapshot as stored and sent: `ser` is the encoded state (state-codec.ts), null for a deleted key. */
export type SnapshotRow = readonly [stepId: string, key: string, epoch: number, ser: StoredState | null];

/** One process's record of one execution, kept in its store. */
export interface ExecutionRecord {
  readonly execution: number;
  readonly processIndex: number;
  readonly processCount: number;
  readonly workersPerProcess: number;
  /** The epoch the execution started at. */
  readonly resumeEpoch: number;
  /** The store id of each process of the execution, by process index. */
  readonly stores: readonly string[];
}

export interface WorkerFrontier {
  readonly execution: number;
  readonly worker: number;
  readonly frontier: number;
}

/** What a store tells the planner about itself. */
export interface StoreRecords {
  /** The process index the store is offered under (a holder's index for a holder). */
  readonly process: number;
  /** Random, made when the store is created: tells a store from an empty replacement. */
  readonly storeId: string;
  readonly executions: readonly ExecutionRecord[];
  /** Committed frontiers of this store's workers. */
  readonly frontiers: readonly WorkerFrontier[];
}

export interface ResumePlan {
  /** The number of the execution about to start. */
  readonly execution: number;
  readonly resumeEpoch: number;
  /** The execution resumed from; 0 on a fresh start. Records before it are never needed again. */
  readonly resumedFrom: number;
  /** The stores of processes 0..sources-1 hold the state to resume; 0 on a fresh start. */
  readonly sources: number;
  /** The shape of the cluster about to start, which decides who owns what. */
  readonly processCount: number;
  readonly workersPerProcess: number;
  /** Store ids of the processes about to start, recorded with the execution. */
  readonly stores: readonly string[];
}

export type PlanOutcome =
  | { readonly kind: "plan"; readonly plan: ResumePlan }
  /** Execution `execution` (of `processCount` processes) needs stores that are not offered, or not the ones it ran with. */
  | {
      readonly kind: "blocked";
      readonly execution: number;
      readonly processCount: number;
      readonly missing: readonly number[];
      readonly replaced: readonly number[];
    };

type Verdict = "complete" | "incomplete" | { readonly missing: number[]; readonly replaced: number[] };

/** `offered` must hold the store of every process of the cluster about to start. */
export function planResume(
  offered: ReadonlyMap<number, StoreRecords>,
  cluster: { readonly processCount: number; readonly workersPerProcess: number },
): PlanOutcome {
  const stores = Array.from({ length: cluster.processCount }, (_, i) => {
    const store = offered.get(i);
    if (store === undefined) throw new Error(`the store of cluster process ${i} is not offered`);
    return store.storeId;
  });
  const all = [...offered.values()];
  const execution = Math.max(0, ...all.flatMap((s) => s.executions.map((r) => r.execution))) + 1;
  const start = (resumedFrom: number, resumeEpoch: number, sources: number): PlanOutcome => ({
    kind: "plan",
    plan: { execution, resumeEpoch, resumedFrom, sources, ...cluster, stores },
  });
  const candidates = [...new Set(all.flatMap((s) => s.executions.map((r) => r.execution)))].sort((a, b) => b - a);
  for (const ex of candidates) {
    // Every store has one record per execution, so different records of one number
    // can only come from stores that never ran together; judge each on its own.
    const variants = new Map<string, ExecutionRecord>();
    for (const s of all) {
      const r = s.executions.find((x) => x.execution === ex);
      if (r !== undefined) variants.set(recordKey(r), r);
    }
    let blocked: { missing: number[]; replaced: number[]; record: ExecutionRecord } | undefined;
    for (const record of variants.values()) {
      const verdict = judge(record, offered);
      if (verdict === "complete") return start(ex, resumeEpoch(record, offered), record.processCount);
      if (verdict !== "incomplete" && (blocked === undefined || verdict.missing.length > 0)) {
        blocked = { ...verdict, record };
      }
    }
    if (blocked !== undefined) {
      return {
        kind: "blocked",
        execution: ex,
        processCount: blocked.record.processCount,
        missing: blocked.missing,
        replaced: blocked.replaced,
      };
    }
  }
  return start(0, 1, 0);
}

function recordKey(r: ExecutionRecord): string {
  return JSON.stringify([r.execution, r.processCount, r.workersPerProcess, r.resumeEpoch, r.stores]);
}

function judge(record: ExecutionRecord, offered: ReadonlyMap<number, StoreRecords>): Verdict {
  const missing: number[] = [];
  const replaced: number[] = [];
  const key = recordKey(record);
  for (let i = 0; i < record.processCount; i++) {
    const store = offered.get(i);
    if (store === undefined) missing.push(i);
    else if (store.storeId !== record.stores[i]) replaced.push(i);
    // An intact store of the execution without its record: its start never finished.
    else if (!store.executions.some((r) => recordKey(r) === key)) return "incomplete";
  }
  return missing.length === 0 && replaced.length === 0 ? "complete" : { missing, replaced };
}

/** The minimum committed frontier over the execution's workers; a worker that never committed counts at the start. */
function resumeEpoch(record: ExecutionRecord, offered: ReadonlyMap<number, StoreRecords>): number {
  let resume = Number.POSITIVE_INFINITY;
  const workers = record.processCount * record.workersPerProcess;
  for (let w = 0; w < workers; w++) {
    const store = offered.get(Math.floor(w / record.workersPerProcess));
    const f = store?.frontiers.find((x) => x.execution === record.execution && x.worker === w);
    resume = Math.min(resume, f?.frontier ?? record.resumeEpoch);
  }
  return Number.isFinite(resume) ? resume : record.resumeEpoch;
}
