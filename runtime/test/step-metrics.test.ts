// Per-step metrics: what /steps and /metrics report for a run equals what the test
// computes from the run's input (items in and out per step, keys held per worker), on
// workers in this thread and on worker threads of a real `waxflow run` process.
import { resolve } from "node:path";
import { expect, test } from "vitest";
import { ProcessView, serveApi } from "../src/api/server.ts";
import { type StepsReport, stepsReport } from "../src/api/steps.ts";
import { workerForKey } from "../src/engine/hash.ts";
import { execute } from "../src/process/execute.ts";
import { dataflowGraph } from "../src/visualize.ts";
import { flow, kept, READINGS } from "./fixtures/step-metrics.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses } from "./support/processes.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const processes = childProcesses();

const N = READINGS.length;
const KEPT = READINGS.filter(kept);
const SENSORS = [...new Set(KEPT.map((r) => r.sensor))];

/** Each step's items in and out, summed over the workers. */
function totals(report: StepsReport): Record<string, [number, number]> {
  return Object.fromEntries(
    report.steps.map((s) => [
      s.step,
      [s.workers.reduce((n, w) => n + w.itemsIn, 0), s.workers.reduce((n, w) => n + w.itemsOut, 0)],
    ]),
  );
}

const EXPECTED_TOTALS: Record<string, [number, number]> = {
  "metrics.inp": [0, N],
  "metrics.high.flat_map_batch": [N, KEPT.length],
  "metrics.key.flat_map_batch": [KEPT.length, KEPT.length],
  "metrics.count.stateful_batch": [KEPT.length, KEPT.length],
  "metrics.out": [KEPT.length, 0],
};

/** Keys of the running count each of `workers` holds: the sensors it owns. */
function keysByWorker(workers: number): number[] {
  return Array.from({ length: workers }, (_, w) => SENSORS.filter((s) => workerForKey(s, workers) === w).length);
}

function step(report: StepsReport, id: string) {
  const found = report.steps.find((s) => s.step === id);
  if (found === undefined) throw new Error(`no step ${id} in ${report.steps.map((s) => s.step).join(", ")}`);
  return found;
}

async function getJson<T>(port: number, path: string): Promise<T> {
  return (await (await fetch(`http://127.0.0.1:${port}${path}`)).json()) as T;
}

test("a bounded run on 2 workers: /steps and /metrics count every step's items and keys as the input says", async () => {
  const view = new ProcessView(0, 1);
  view.runs(flow);
  const server = await serveApi(0, view);
  try {
    await execute(flow, { workers: 2, epochIntervalMs: 50, onStart: (run) => view.started(run) });
    const port = (server.address() as { port: number }).port;
    const report = await getJson<StepsReport>(port, "/steps");
    expect(report).toMatchObject({ process: 0, processes: 1, flow: "metrics" });
    expect(report.workers.map((w) => w.worker)).toEqual([0, 1]);
    expect(totals(report)).toMatchObject(EXPECTED_TOTALS);
    const count = step(report, "metrics.count.stateful_batch");
    expect(count).toMatchObject({
      kind: "statefulBatch",
      stateful: true,
      operator: { step: "metrics.count", kind: "statefulMap" },
    });
    expect(count.workers.map((w) => w.keys)).toEqual(keysByWorker(2));
    expect(step(report, "metrics.high.flat_map_batch").workers.map((w) => w.keys)).toEqual([null, null]);
    // The window's events end a minute ago (plus its 1 s wait): that is how far its watermark lags.
    const window = step(report, "metrics.per_second.sum.window.stateful_batch");
    const lags = window.workers.map((w) => w.watermarkLagSeconds).filter((l) => l !== null);
    expect(lags.length).toBeGreaterThan(0);
    for (const lag of lags) expect(lag).toBeGreaterThan(60);
    for (const lag of lags) expect(lag).toBeLessThan(300);

    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const [w, keys] of keysByWorker(2).entries()) {
      expect(metrics).toContain(`waxflow_step_state_keys{step="metrics.count.stateful_batch",worker="${w}"} ${keys}`);
    }
    const inTotal = [
      ...metrics.matchAll(/^waxflow_step_items_in_total\{step="metrics\.high\.flat_map_batch",worker="\d"\} (\d+)$/gm),
    ];
    expect(inTotal.reduce((n, m) => n + Number(m[1]), 0)).toBe(N);
    expect(metrics).toMatch(
      /^waxflow_step_watermark_lag_seconds\{step="metrics\.per_second\.sum\.window\.stateful_batch",worker="\d"\} \d+/m,
    );
  } finally {
    server.close();
  }
}, 30_000);

test("WAXFLOW_STEP_METRICS=false's switch: no items counted into steps, no watermark followed", async () => {
  const view = new ProcessView(0, 1);
  view.runs(flow);
  await execute(flow, { workers: 1, epochIntervalMs: 50, stepMetrics: false, onStart: (run) => view.started(run) });
  const report = await view.steps(Date.now());
  expect(report.steps.every((s) => s.workers.every((w) => w.itemsIn === 0 && w.watermarkLagSeconds === null))).toBe(
    true,
  );
  // What costs nothing per batch stays: items out and keys held.
  expect(step(report, "metrics.count.stateful_batch").workers.map((w) => [w.itemsOut, w.keys])).toEqual([
    [KEPT.length, SENSORS.length],
  ]);
}, 30_000);

test("a running `waxflow run -w 2` (worker threads, with recovery) reports the same numbers and its commits", async () => {
  const [port] = (await freePorts(1)) as [number];
  const dir = processes.tempDir("waxflow-steps-");
  processes.start(
    [
      "--conditions=waxflow-source",
      resolve(ROOT, "runtime/src/cli.ts"),
      "run",
      "runtime/test/fixtures/step-metrics.ts:holding",
      "-w",
      "2",
      "-s",
      "0.2",
      "-r",
      dir,
      "--recovery-init",
    ],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: String(port), WAXFLOW_QUIET: "true" },
      stdio: "ignore",
    },
  );
  const read = async (): Promise<StepsReport | undefined> => {
    try {
      return await getJson<StepsReport>(port, "/steps");
    } catch {
      return undefined;
    }
  };
  // Threads report every 500 ms: wait until the last step has seen every item and some epoch is committed.
  await expect
    .poll(
      async () => {
        const r = await read();
        return (
          r !== undefined &&
          totals(r)["metrics.out"]?.[0] === KEPT.length &&
          r.workers.every((w) => w.committedEpoch !== null)
        );
      },
      { timeout: 20_000, interval: 200 },
    )
    .toBe(true);
  const report = (await read()) as StepsReport;
  expect(totals(report)).toMatchObject(EXPECTED_TOTALS);
  expect(step(report, "metrics.count.stateful_batch").workers.map((w) => w.keys)).toEqual(keysByWorker(2));
  for (const w of report.workers) {
    expect(w.committedEpoch).toBeGreaterThanOrEqual(1);
    expect(w.committedAgeSeconds).toBeLessThan(10);
  }
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  expect(metrics).toMatch(/^waxflow_worker_committed_epoch\{worker="1"\} [1-9]\d*$/m);
  expect(metrics).toMatch(/^waxflow_worker_committed_timestamp_seconds\{worker="0"\} \d+/m);
}, 40_000);

test("rates come from the counts a sample earlier; lag and commit age from the clock", () => {
  const graph = dataflowGraph(flow);
  const workers = [
    {
      index: 3,
      epoch: 7,
      lastCommit: { epoch: 6, at: 9_000 },
      steps: [{ stepId: "metrics.count.stateful_batch", itemsIn: 500, itemsOut: 450, keys: 4, watermark: 7_500 }],
    },
  ];
  const since = {
    at: 8_000,
    counts: new Map([["3\u0000metrics.count.stateful_batch", { itemsIn: 300, itemsOut: 450 }]]),
  };
  const report = stepsReport({ process: 1, processes: 2, graph, workers, since, now: 10_000 });
  expect(report.workers).toEqual([{ worker: 3, epoch: 7, committedEpoch: 6, committedAgeSeconds: 1 }]);
  expect(step(report, "metrics.count.stateful_batch").workers).toEqual([
    { worker: 3, itemsIn: 500, itemsOut: 450, inPerSecond: 100, outPerSecond: 0, keys: 4, watermarkLagSeconds: 2.5 },
  ]);
  // Steps no worker reported yet are listed, in the dataflow's order, with no numbers.
  expect(report.steps.map((s) => s.step).slice(0, 2)).toEqual(["metrics.inp", "metrics.high.flat_map_batch"]);
  expect(step(report, "metrics.inp").workers).toEqual([]);
  expect(
    stepsReport({ process: 0, processes: 1, graph: undefined, workers: [], since: undefined, now: 0 }).flow,
  ).toBeNull();
});
