// upgrade: how state crosses a roll (spec.upgradeMode) and what happens when a roll's new
// processes do not become Ready in time (spec.rollback), as the Flink operator does them:
// where the new processes start from (WAXFLOW_START_FROM), the savepoint taken before
// anything stops, the last spec that became Ready, and the rollback to it. Pure.
import {
  CONTAINER,
  type Dataflow,
  type DataflowStatus,
  type DefaultedDataflowSpec,
  durationMs,
  replacesProcesses,
  withDefaults,
} from "@waxflow/crds";
import type { SavepointRecord } from "../kube/savepoints.ts";
import { diagnosePods, progressMessage } from "./diagnosis.ts";
import type { ClusterFacts } from "./facts.ts";
import { diagnoseFailures } from "./failures.ts";

/** What the executor learned about the savepoint a roll waits for (status.rollout.savepoint). */
export type SavepointObservation =
  | SavepointRecord
  /** Process 0 knows no savepoint of that id: not requested yet, or lost with a restarted process 0. */
  | { readonly state: "absent" }
  /** Process 0 could not be asked (not running, no route, API server refused): asked again on the next pass. */
  | { readonly state: "unreachable"; readonly error: string }
  /** The request itself was refused (no backups, another savepoint of that id): the roll is held. */
  | { readonly state: "refused"; readonly error: string };

/**
 * A savepoint id chosen before it is requested, so the write-ahead record names it:
 * `sp-<UTC date>-<time>-g<generation>`, within the contract's `[a-z0-9-]` and 63 characters.
 */
export function savepointId(now: Date, generation: number): string {
  const t = now.toISOString();
  const stamp = `${t.slice(0, 10).replaceAll("-", "")}-${t.slice(11, 19).replaceAll(":", "")}`;
  return `sp-${stamp}-g${generation}`;
}

/** The spec the pods are rendered from, and where their processes start from. */
export interface Source {
  readonly spec: DefaultedDataflowSpec;
  readonly startFrom: string | undefined;
  /** The generation a rollback in effect rolled back (its pods run lastStableSpec). */
  readonly rolledBack?: number;
}

function parsed(text: string): DefaultedDataflowSpec | undefined {
  try {
    return withDefaults(JSON.parse(text) as DefaultedDataflowSpec);
  } catch {
    return undefined;
  }
}

/**
 * The spec as written, or status.lastStableSpec while a rollback of this generation is in
 * effect (any edit of the spec, a new generation, ends it: the newest spec always wins).
 * The user's suspend/resume applies to a rolled back spec too.
 */
export function sourceOf(df: Dataflow, status: DataflowStatus = df.status ?? {}): Source {
  const spec = withDefaults(df.spec);
  const gen = df.metadata?.generation;
  const rb = status.rolledBack;
  const stable = rb !== undefined && rb.generation === gen ? parsed(status.lastStableSpec ?? "") : undefined;
  if (rb !== undefined && stable !== undefined) {
    // The savepoint taken before the upgrade; otherwise the processes keep what they have.
    const startFrom = rb.startFrom ?? status.startFrom;
    return { spec: { ...stable, state: spec.state }, startFrom, rolledBack: rb.generation };
  }
  return { spec, startFrom: status.rollout?.startFrom ?? status.startFrom };
}

/** What the readiness timer says about the newest generation's roll. */
export type Verdict =
  | { readonly kind: "none"; readonly wakeInMs?: number }
  /** Roll back now: status.rolledBack is this record. */
  | { readonly kind: "rollBack"; readonly record: NonNullable<DataflowStatus["rolledBack"]> }
  /** A rollback is in effect (the message says why); failed: its processes did not become Ready either. */
  | { readonly kind: "rolledBack"; readonly failed: boolean; readonly message: string; readonly wakeInMs?: number }
  /** Not Ready in time and nothing to roll back to (or rollback disabled): Progressing False, UpgradeStuck. */
  | { readonly kind: "stuck"; readonly message: string };

/** Why the processes are not Ready, from pod status and the failures recorded so far. */
function whyNotReady(facts: ClusterFacts, processes: number, now: Date): string {
  const rollout = facts.prev.rollout;
  if (rollout?.stage === "Savepointing") {
    return `savepoint ${rollout.savepoint?.id ?? "?"} of the running processes is not complete, so nothing was stopped`;
  }
  const failure = diagnoseFailures(facts.prev.failures ?? []);
  return (
    failure?.message ?? diagnosePods(facts.live, now)?.message ?? progressMessage(facts.told, processes, CONTAINER)
  );
}

const since = (iso: string | undefined, now: Date): number =>
  iso === undefined ? 0 : now.getTime() - new Date(iso).getTime();

/**
 * The readiness timer: a roll's generation has spec.rollback.readyTimeout from the roll's
 * start (status.lastRoll) to become Ready. `ready`: every process of the rendered spec is
 * Ready now. Settings are the spec's as written, also while rolled back.
 */
export function judge(df: Dataflow, source: Source, facts: ClusterFacts, ready: boolean, now: Date): Verdict {
  const { prev, gen } = facts;
  const { enabled, readyTimeout } = withDefaults(df.spec).rollback;
  const timeoutMs = durationMs(readyTimeout);
  const rb = prev.rolledBack;
  if (source.rolledBack !== undefined && rb !== undefined) {
    const late = !ready && since(rb.at, now) >= timeoutMs;
    const message = late
      ? `rolled back to generation ${rb.toGeneration}, which is not Ready ${readyTimeout} after the rollback started either: ${whyNotReady(facts, source.spec.processes, now)}; generation ${rb.generation} failed: ${rb.message}`
      : `rolled back to generation ${rb.toGeneration} (status.lastStableSpec): ${rb.message}; edit the spec to roll forward again`;
    return {
      kind: "rolledBack",
      failed: late,
      message,
      ...(ready || late ? {} : { wakeInMs: timeoutMs - since(rb.at, now) }),
    };
  }
  const roll = prev.lastRoll;
  if (ready || roll === undefined || gen === undefined || roll.generation <= (prev.lastStableGeneration ?? -1)) {
    return { kind: "none" };
  }
  // Held by a failed savepoint: nothing was stopped, and SavepointFailed already says what to do.
  if (prev.rollout?.savepoint?.error !== undefined) return { kind: "none" };
  // A newer spec that replaces the processes wins: its own roll starts (or goes on) now. A
  // newer one that does not (say rollback turned on) leaves the roll's timer running.
  if (gen > roll.generation && (prev.rollout !== undefined || replacesProcesses(facts.diff.class))) {
    return { kind: "none" };
  }
  const elapsed = since(roll.startedAt, now);
  if (elapsed < timeoutMs) return { kind: "none", wakeInMs: timeoutMs - elapsed };
  const why = `generation ${roll.generation} is not Ready ${readyTimeout} after its roll started: ${whyNotReady(facts, source.spec.processes, now)}`;
  const stable = prev.lastStableSpec !== undefined ? prev.lastStableGeneration : undefined;
  if (enabled && stable !== undefined) {
    return {
      kind: "rollBack",
      record: {
        generation: gen,
        toGeneration: stable,
        at: now.toISOString(),
        message: why,
        // A new value, so processes that already applied the savepoint (the failed roll's) apply it again.
        ...(roll.savepoint === undefined ? {} : { startFrom: `savepoint:${roll.savepoint}@rollback-${gen}` }),
      },
    };
  }
  const next = enabled
    ? "no generation became Ready before, so there is nothing to roll back to"
    : "spec.rollback.enabled would roll back to the last spec that became Ready";
  return { kind: "stuck", message: `${why}; fix the spec (an edit starts a new roll): ${next}` };
}

/** status.lastStableSpec and lastStableGeneration: the spec of a generation once all its processes are Ready. */
export function stableOf(
  prev: DataflowStatus,
  source: Source,
  gen: number | undefined,
  ready: boolean,
): Pick<DataflowStatus, "lastStableSpec" | "lastStableGeneration"> {
  const kept = {
    ...(prev.lastStableSpec === undefined ? {} : { lastStableSpec: prev.lastStableSpec }),
    ...(prev.lastStableGeneration === undefined ? {} : { lastStableGeneration: prev.lastStableGeneration }),
  };
  // A rolled back generation is not stable: its pods run the stable spec, not its own.
  if (!ready || source.rolledBack !== undefined || gen === undefined) return kept;
  return { lastStableSpec: JSON.stringify(source.spec), lastStableGeneration: gen };
}
