// What `df describe` and `df top` show of a running dataflow's steps and processes: pure
// functions of what each pod's /steps answered (runtime/src/api/steps.ts) and of the pods.
import type { V1Pod } from "@kubernetes/client-node";
import { isPodReady } from "@waxflow/crds";
import type { StepsReport } from "waxflow/steps";
import { podRestarts } from "../deploy/status.ts";
import { table } from "./format.ts";
import { type PodResources, type PodUsage, type ProcessFigures, podResources } from "./resources.ts";

/** One pod and what its process answered on /steps, or why it did not. */
export interface ProcessReading {
  readonly pod: V1Pod;
  readonly report?: StepsReport;
  readonly error?: string;
  /** What metrics-server measured of the pod (df top, when the cluster serves metrics.k8s.io). */
  readonly usage?: PodUsage;
  /** The process's own CPU time and memory from its /metrics (df top, without metrics-server). */
  readonly figures?: ProcessFigures;
}

export interface StepRow {
  /** The core step's id without the dataflow's: `count.sum.stateful_batch`. */
  readonly step: string;
  readonly kind: string;
  /** The top-level step it belongs to, and the operator that made that. */
  readonly operator: { readonly step: string; readonly kind: string };
  readonly stateful: boolean;
  readonly itemsIn: number;
  readonly itemsOut: number;
  /** Items per second through the step: out of an input, into any other step. */
  readonly throughput: number;
  /** State keys held over every worker; null for a step without state. */
  readonly keys: number | null;
  /** The largest watermark lag over the workers; null unless windowed and under way. */
  readonly watermarkLagSeconds: number | null;
}

export interface PodRow extends PodResources {
  readonly pod: string;
  readonly process: number | null;
  readonly ready: boolean;
  readonly restarts: number;
  /** The highest epoch of its workers. */
  readonly epoch: number | null;
  /** The lowest epoch its workers committed, and the longest since a worker committed. */
  readonly committedEpoch: number | null;
  readonly snapshotAgeSeconds: number | null;
  /** Why the process did not answer. */
  readonly error: string | null;
}

/** A Kafka source partition as the worker reading it reports it. */
export interface KafkaPartitionRow {
  /** The input step, named without the dataflow's id. */
  readonly step: string;
  readonly topic: string;
  readonly partition: number;
  /** Messages not yet read into the dataflow. */
  readonly lag: number;
  readonly pod: string;
  readonly worker: number | null;
}

/** One topic an input step reads: its partitions' lag summed, and the worst partition. */
export interface KafkaTopicRow {
  readonly step: string;
  readonly topic: string;
  readonly partitions: number;
  readonly totalLag: number;
  readonly maxLag: number;
  readonly maxLagPartition: number;
}

export interface StepsView {
  readonly flow: string | null;
  readonly steps: readonly StepRow[];
  readonly pods: readonly PodRow[];
  /** Empty for a dataflow without Kafka sources. */
  readonly kafka: { readonly partitions: readonly KafkaPartitionRow[]; readonly topics: readonly KafkaTopicRow[] };
}

export const EMPTY_VIEW: StepsView = { flow: null, steps: [], pods: [], kafka: { partitions: [], topics: [] } };

/** Checks that a pod's answer is a /steps report before anything reads it. */
export function asStepsReport(body: unknown, pod: string): StepsReport {
  const candidate = body as Partial<StepsReport> | null;
  if (
    typeof candidate !== "object" ||
    candidate === null ||
    !Array.isArray(candidate.steps) ||
    !Array.isArray(candidate.workers)
  ) {
    throw new Error(
      `pod ${pod} answered /steps with something else than a steps report (a waxflow runtime before /steps?)`,
    );
  }
  // A runtime before Kafka lag in /steps reports none.
  return { ...(candidate as StepsReport), kafka: Array.isArray(candidate.kafka) ? candidate.kafka : [] };
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const maxOrNull = (values: readonly (number | null)[]): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.max(...known);
};
const minOrNull = (values: readonly (number | null)[]): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : Math.min(...known);
};

/**
 * Every process's numbers summed per step (in the dataflow's order), one row per pod and
 * each Kafka partition's lag. `before`, the previous refresh's readings, rates the CPU
 * time of processes read without metrics-server.
 */
export function stepsView(readings: readonly ProcessReading[], before: readonly ProcessReading[] = []): StepsView {
  const reports = readings.flatMap((r) => (r.report === undefined ? [] : [r.report]));
  const flow = reports.find((r) => r.flow !== null)?.flow ?? null;
  const prefix = flow === null ? "" : `${flow}.`;
  const short = (id: string): string => (id.startsWith(prefix) ? id.slice(prefix.length) : id);
  const order: string[] = [];
  const byStep = new Map<string, StepsReport["steps"][number][]>();
  for (const report of reports) {
    for (const step of report.steps) {
      const seen = byStep.get(step.step);
      if (seen === undefined) {
        order.push(step.step);
        byStep.set(step.step, [step]);
      } else seen.push(step);
    }
  }
  const steps = order.map((id): StepRow => {
    const entries = byStep.get(id) ?? [];
    const first = entries[0] as StepsReport["steps"][number];
    const workers = entries.flatMap((e) => e.workers);
    const input = first.kind === "input";
    const keys = workers.map((w) => w.keys).filter((k): k is number => k !== null);
    return {
      step: short(id),
      kind: first.kind,
      operator: { step: short(first.operator.step), kind: first.operator.kind },
      stateful: first.stateful,
      itemsIn: sum(workers.map((w) => w.itemsIn)),
      itemsOut: sum(workers.map((w) => w.itemsOut)),
      throughput: sum(workers.map((w) => (input ? w.outPerSecond : w.inPerSecond))),
      keys: first.stateful || keys.length > 0 ? sum(keys) : null,
      watermarkLagSeconds: maxOrNull(workers.map((w) => w.watermarkLagSeconds)),
    };
  });
  const previous = new Map(before.map((r) => [r.pod.metadata?.name ?? "", r.figures]));
  const pods = readings.map(({ pod, report, error, usage, figures }): PodRow => {
    const workers = report?.workers ?? [];
    const name = pod.metadata?.name ?? "";
    return {
      pod: pod.metadata?.name ?? "",
      process: report?.process ?? null,
      ready: isPodReady(pod),
      restarts: podRestarts(pod),
      epoch: maxOrNull(workers.map((w) => w.epoch)),
      committedEpoch: minOrNull(workers.map((w) => w.committedEpoch)),
      snapshotAgeSeconds: maxOrNull(workers.map((w) => w.committedAgeSeconds)),
      error: error ?? null,
      ...podResources(usage, figures, previous.get(name)),
    };
  });
  return { flow, steps, pods, kafka: kafkaRows(readings, short) };
}

function kafkaRows(readings: readonly ProcessReading[], short: (id: string) => string): StepsView["kafka"] {
  const partitions = readings
    .flatMap(({ pod, report }) =>
      (report?.kafka ?? []).map(
        (p): KafkaPartitionRow => ({
          step: short(p.step),
          topic: p.topic,
          partition: p.partition,
          lag: p.lag,
          pod: pod.metadata?.name ?? "",
          worker: p.worker,
        }),
      ),
    )
    .sort((a, b) => a.step.localeCompare(b.step) || a.topic.localeCompare(b.topic) || a.partition - b.partition);
  const topics: KafkaTopicRow[] = [];
  for (const p of partitions) {
    const last = topics.at(-1);
    if (last !== undefined && last.step === p.step && last.topic === p.topic) {
      const worse = p.lag > last.maxLag;
      topics[topics.length - 1] = {
        ...last,
        partitions: last.partitions + 1,
        totalLag: last.totalLag + p.lag,
        maxLag: worse ? p.lag : last.maxLag,
        maxLagPartition: worse ? p.partition : last.maxLagPartition,
      };
    } else {
      topics.push({
        step: p.step,
        topic: p.topic,
        partitions: 1,
        totalLag: p.lag,
        maxLag: p.lag,
        maxLagPartition: p.partition,
      });
    }
  }
  return { partitions, topics };
}

/** A count or rate as people read it: 950, 12.3k, 4.1M. */
export function quantity(n: number): string {
  if (n < 1000) return Number.isInteger(n) ? String(n) : n.toFixed(1);
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

const orDash = (n: number | null, show: (n: number) => string = quantity): string => (n === null ? "-" : show(n));
const secondsText = (s: number): string => (s < 100 ? `${s.toFixed(1)}s` : `${Math.round(s)}s`);

/** The steps section of `df describe`: what each step is and what it has done so far. */
export function describeStepRows(view: StepsView): string[][] {
  return view.steps.map((s) => [
    s.step,
    s.operator.step === s.step ? s.kind : `${s.kind} in ${s.operator.step} (${s.operator.kind})`,
    s.stateful ? "yes" : "no",
    quantity(s.itemsIn),
    quantity(s.itemsOut),
    orDash(s.keys),
  ]);
}

export const DESCRIBE_STEP_HEADERS = ["step", "kind", "state", "items in", "items out", "keys"];

/** The Kafka section of `df describe`: every source partition, its lag and who reads it. */
export function describeKafkaRows(view: StepsView): string[][] {
  return view.kafka.partitions.map((p) => [
    p.step,
    p.topic,
    String(p.partition),
    String(p.lag),
    p.pod,
    orDash(p.worker, String),
  ]);
}

export const DESCRIBE_KAFKA_HEADERS = ["step", "topic", "partition", "lag", "pod", "worker"];

const SPARKS = "▁▂▃▄▅▆▇█";

/** The last `width` values as a bar per value, scaled to the largest (all low when every value is 0). */
export function sparkline(values: readonly number[], width = 16): string {
  const shown = values.slice(-width);
  const top = Math.max(0, ...shown);
  return shown
    .map((v) =>
      top === 0 ? SPARKS[0] : SPARKS[Math.min(SPARKS.length - 1, Math.floor((v / top) * (SPARKS.length - 1)))],
    )
    .join("");
}

export const SORTS = ["dataflow", "throughput", "keys", "lag"] as const;
export type Sort = (typeof SORTS)[number];

/** The steps in the order the sort asks (the dataflow's own order breaks ties). */
export function sortSteps(steps: readonly StepRow[], sort: Sort): StepRow[] {
  const by: Record<Sort, (s: StepRow) => number> = {
    dataflow: () => 0,
    throughput: (s) => s.throughput,
    keys: (s) => s.keys ?? -1,
    lag: (s) => s.watermarkLagSeconds ?? -1,
  };
  const key = by[sort];
  return steps
    .map((s, i) => ({ s, i }))
    .sort((a, b) => key(b.s) - key(a.s) || a.i - b.i)
    .map(({ s }) => s);
}

export interface FrameOptions {
  readonly dataflow: string;
  readonly namespace: string;
  readonly now: Date;
  readonly sort: Sort;
  /** The selected step's id (as shown), if any. */
  readonly selected?: string;
  /** Each step's throughput at the last refreshes, oldest first. */
  readonly history: ReadonlyMap<string, readonly number[]>;
  /** Shows the keys that work only in the live view. */
  readonly interactive: boolean;
}

/** One frame of `df top` as text: a title, one row per step, one row per pod. */
export function topFrame(view: StepsView, opts: FrameOptions): string {
  const time = opts.now.toISOString().slice(11, 19);
  const title = `waxctl df top ${opts.dataflow} -n ${opts.namespace}   ${view.pods.length} pod(s)   ${time} UTC   sort: ${opts.sort}`;
  const keys = opts.interactive ? ["q quit   s sort   ↑/↓ select a step"] : [];
  const steps = sortSteps(view.steps, opts.sort);
  const stepRows = steps.map((s) => [
    `${s.step === opts.selected ? ">" : " "} ${s.step}`,
    s.kind,
    quantity(s.throughput),
    orDash(s.keys),
    orDash(s.watermarkLagSeconds, secondsText),
    quantity(s.itemsIn),
    quantity(s.itemsOut),
    sparkline(opts.history.get(s.step) ?? [s.throughput]),
  ]);
  const podRows = view.pods.map((p) => [
    p.pod,
    orDash(p.process, String),
    p.ready ? "yes" : "no",
    orDash(p.epoch, String),
    orDash(p.committedEpoch, String),
    orDash(p.snapshotAgeSeconds, secondsText),
    orDash(p.cpuCores, (c) => c.toFixed(2)),
    orDash(p.memoryMiB, (m) => `${Math.round(m)}Mi`),
    String(p.restarts),
    p.error ?? "",
  ]);
  const kafkaRows = view.kafka.topics.map((t) => [
    t.topic,
    t.step,
    String(t.partitions),
    quantity(t.totalLag),
    `${quantity(t.maxLag)} (partition ${t.maxLagPartition})`,
  ]);
  const selected = steps.find((s) => s.step === opts.selected);
  const detail =
    selected === undefined
      ? []
      : [
          "",
          `${selected.step}: ${selected.kind}${selected.stateful ? ", holds state" : ""}, part of ${selected.operator.step} (${selected.operator.kind})`,
        ];
  return [
    title,
    ...keys,
    "",
    steps.length === 0
      ? "  no step reported yet: no process answered"
      : table(["  step", "kind", "items/s", "keys", "wm lag", "in", "out", "trend"], stepRows),
    ...detail,
    ...(kafkaRows.length === 0
      ? []
      : ["", table(["kafka topic", "step", "partitions", "lag", "max partition lag"], kafkaRows)]),
    "",
    table(
      ["pod", "process", "ready", "epoch", "committed", "snapshot age", "cpu", "memory", "restarts", "problem"],
      podRows,
    ),
  ].join("\n");
}
