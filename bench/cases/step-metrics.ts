/**
 * What the per-step metrics cost: the same dataflow with them on (the default) and off
 * (`stepMetrics: false`, what WAXFLOW_STEP_METRICS=false sets), in one bench run. The
 * "engine" side is on, the "loop" side off, so the ratio is on / off.
 *
 * The target (at most 3% slower) is within the machine's spread from run to run: on the
 * 2-CPU machine a tenth of the keyed runs came 5% or more under their median and a tenth
 * 5% over, and medians of 17 runs of each side gave ratios of 0.98–1.04 where 133 runs
 * gave 1.005. So each side runs for 15 s: ~50 keyed runs.
 */
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { runMain } from "waxflow/testing";
import { type BenchCase, expectEqual } from "../harness.ts";
import { ArraySource, CountingSink } from "../io.ts";

/** What each side's runs take in all, at least. */
const MIN_SECONDS = 15;
const N = 1_000_000;
const KEYS = 10_000;

async function mapRun(stepMetrics: boolean): Promise<number> {
  const items = Array.from({ length: N }, (_, i) => i);
  const sink = new CountingSink<number>();
  const flow = new Dataflow("bench_metrics_map");
  const mapped = op.map("map", op.input("inp", flow, new ArraySource(items)), (x: number) => x * 3 + 1);
  op.output(
    "out",
    op.filter("filter", mapped, (x) => x % 5 !== 0),
    sink,
  );
  await runMain(flow, { stepMetrics });
  expectEqual("step-metrics-map count", sink.count, N - N / 5);
  return N;
}

async function keyedRun(stepMetrics: boolean): Promise<number> {
  const items = Array.from({ length: N }, (_, n) => ({ user: `u${n % KEYS}`, n }));
  const sink = new CountingSink<[string, number]>();
  const flow = new Dataflow("bench_metrics_keyed");
  const keyed = op.keyOn("key", op.input("inp", flow, new ArraySource(items)), (c) => c.user);
  op.output(
    "out",
    op.statefulMap("count", keyed, (n: number | undefined) => [(n ?? 0) + 1, (n ?? 0) + 1] as const),
    sink,
  );
  await runMain(flow, { stepMetrics });
  expectEqual("step-metrics-keyed [count, last count]", [sink.count, sink.last?.[1]], [N, N / KEYS]);
  return N;
}

export const stepMetricsMap: BenchCase = {
  title: "map + filter, 1M items: per-step metrics on vs off",
  targets: { minRatio: 0.97 },
  minSeconds: MIN_SECONDS,
  async prepare() {
    return { engine: () => mapRun(true), loop: () => mapRun(false) };
  },
};

export const stepMetricsKeyed: BenchCase = {
  title: "keyOn + statefulMap count, 1M items, 10k keys: per-step metrics on vs off",
  targets: { minRatio: 0.97 },
  minSeconds: MIN_SECONDS,
  async prepare() {
    return { engine: () => keyedRun(true), loop: () => keyedRun(false) };
  },
};
