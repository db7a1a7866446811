/**
 * The per-step numbers of one process, as `GET /steps` serves them to `waxctl df describe`
 * and `df top`: a pure function of what the workers last reported, the dataflow's graph
 * and an earlier sample (for the rates), so it is tested without a running process.
 */
import type { PartitionLag } from "../connectors/kafka/metrics.ts";
import type { Commit, StepCount } from "../engine/worker.ts";

export type { PartitionLag };

import { allSteps, type DataflowGraph } from "../visualize.ts";

/** What a worker last reported. */
export interface WorkerReport {
  readonly index: number;
  readonly epoch: number;
  readonly lastCommit: Commit | undefined;
  readonly steps: readonly StepCount[];
}

/** Items in and out of each (worker, step) at one moment: the base of the rates. */
export interface CountSample {
  /** Milliseconds since the Unix epoch. */
  readonly at: number;
  readonly counts: ReadonlyMap<string, { readonly itemsIn: number; readonly itemsOut: number }>;
}

export interface StepsReport {
  readonly process: number;
  readonly processes: number;
  /** The dataflow's id; null before the module is loaded. */
  readonly flow: string | null;
  /** When the numbers were read (ISO 8601). */
  readonly at: string;
  readonly workers: readonly WorkerNumbers[];
  readonly steps: readonly StepNumbers[];
  /** Each Kafka source partition this process's workers read, with its lag; empty without Kafka sources. */
  readonly kafka: readonly PartitionLag[];
}

export interface WorkerNumbers {
  readonly worker: number;
  readonly epoch: number;
  /** The last epoch this worker made durable in its recovery store; null without recovery or before the first. */
  readonly committedEpoch: number | null;
  readonly committedAgeSeconds: number | null;
}

export interface StepNumbers {
  /** Full id of the core step, `flow.step.sub`. */
  readonly step: string;
  readonly kind: string;
  readonly stateful: boolean;
  /** The top-level step (the one the user wrote in the flow) this core step belongs to. */
  readonly operator: { readonly step: string; readonly kind: string };
  readonly workers: readonly StepOnWorker[];
}

export interface StepOnWorker {
  readonly worker: number;
  readonly itemsIn: number;
  readonly itemsOut: number;
  readonly inPerSecond: number;
  readonly outPerSecond: number;
  /** State keys held; null for a step without state. */
  readonly keys: number | null;
  /** Wall-clock time minus the furthest watermark of the step's keys; null unless windowed and under way. */
  readonly watermarkLagSeconds: number | null;
}

const sampleKey = (worker: number, step: string): string => `${worker}\u0000${step}`;

/** The counts of `workers` now, to compute rates against later. */
export function sampleCounts(workers: readonly WorkerReport[], at: number): CountSample {
  const counts = new Map<string, { itemsIn: number; itemsOut: number }>();
  for (const w of workers) {
    for (const s of w.steps) counts.set(sampleKey(w.index, s.stepId), { itemsIn: s.itemsIn, itemsOut: s.itemsOut });
  }
  return { at, counts };
}

/** Rounded for people and for JSON: three decimals are more than any reader of a rate needs. */
const round = (n: number): number => Math.round(n * 1000) / 1000;

export interface StepsInput {
  readonly process: number;
  readonly processes: number;
  readonly graph: DataflowGraph | undefined;
  readonly workers: readonly WorkerReport[];
  /** An earlier sample; rates are 0 without one. */
  readonly since: CountSample | undefined;
  readonly now: number;
  readonly kafka?: readonly PartitionLag[];
}

/** The report: one entry per core step, in the dataflow's order, each with its numbers on every worker. */
export function stepsReport({ process, processes, graph, workers, since, now, kafka = [] }: StepsInput): StepsReport {
  const info = new Map<string, { kind: string; stateful: boolean; operator: { step: string; kind: string } }>();
  for (const top of graph?.steps ?? []) {
    for (const step of allSteps([top])) {
      if (step.children.length === 0) {
        info.set(step.id, {
          kind: step.kind,
          stateful: step.stateful,
          operator: { step: top.id, kind: top.kind },
        });
      }
    }
  }
  const order = [...info.keys()];
  const byStep = new Map<string, StepOnWorker[]>();
  const seconds = since === undefined ? 0 : (now - since.at) / 1000;
  for (const w of workers) {
    for (const s of w.steps) {
      const before = since?.counts.get(sampleKey(w.index, s.stepId));
      const rate = (n: number, then: number | undefined): number =>
        seconds > 0 && then !== undefined ? round(Math.max(0, n - then) / seconds) : 0;
      const entry: StepOnWorker = {
        worker: w.index,
        itemsIn: s.itemsIn,
        itemsOut: s.itemsOut,
        inPerSecond: rate(s.itemsIn, before?.itemsIn),
        outPerSecond: rate(s.itemsOut, before?.itemsOut),
        keys: s.keys ?? null,
        watermarkLagSeconds: s.watermark === undefined ? null : round(Math.max(0, now - s.watermark) / 1000),
      };
      const list = byStep.get(s.stepId) ?? [];
      list.push(entry);
      byStep.set(s.stepId, list);
      if (!info.has(s.stepId)) order.push(s.stepId);
    }
  }
  return {
    process,
    processes,
    flow: graph?.flowId ?? null,
    at: new Date(now).toISOString(),
    workers: workers.map((w) => ({
      worker: w.index,
      epoch: w.epoch,
      committedEpoch: w.lastCommit?.epoch ?? null,
      committedAgeSeconds: w.lastCommit === undefined ? null : round(Math.max(0, now - w.lastCommit.at) / 1000),
    })),
    steps: order.map((step) => {
      const known = info.get(step);
      return {
        step,
        kind: known?.kind ?? "unknown",
        stateful: known?.stateful ?? false,
        operator: known?.operator ?? { step, kind: "unknown" },
        workers: byStep.get(step) ?? [],
      };
    }),
    kafka,
  };
}
