// What `df describe` and `df top` make of the processes' /steps reports: pure, from
// reports written here as two processes of a word count would answer.
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, test } from "vitest";
import type { StepsReport } from "waxflow/steps";
import {
  asStepsReport,
  describeKafkaRows,
  describeStepRows,
  type ProcessReading,
  sortSteps,
  sparkline,
  stepsView,
  topFrame,
} from "../src/ui/steps.ts";
import { withThroughput } from "../src/ui/top.ts";

function pod(name: string, restarts: number, ready = true): V1Pod {
  return {
    metadata: { name },
    status: {
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
      containerStatuses: [
        { name: "waxflow", restartCount: restarts, ready, image: "i", imageID: "i", state: { running: {} } },
      ],
    },
  };
}

const worker = (
  worker: number,
  itemsIn: number,
  itemsOut: number,
  extra: Partial<StepsReport["steps"][number]["workers"][number]> = {},
) => ({
  worker,
  itemsIn,
  itemsOut,
  inPerSecond: itemsIn / 10,
  outPerSecond: itemsOut / 10,
  keys: null,
  watermarkLagSeconds: null,
  ...extra,
});

function report(process: number, w: number, scale: number, kafka: StepsReport["kafka"] = []): StepsReport {
  return {
    process,
    processes: 2,
    flow: "wordcount",
    at: "2026-12-05T01:00:00.000Z",
    workers: [{ worker: w, epoch: 12 + process, committedEpoch: 10 + process, committedAgeSeconds: 1.5 + process }],
    steps: [
      {
        step: "wordcount.inp",
        kind: "input",
        stateful: false,
        operator: { step: "wordcount.inp", kind: "input" },
        workers: [worker(w, 0, 100 * scale)],
      },
      {
        step: "wordcount.count.sum.stateful_batch",
        kind: "statefulBatch",
        stateful: true,
        operator: { step: "wordcount.count", kind: "countFinal" },
        workers: [worker(w, 300 * scale, 0, { keys: 40 * scale, watermarkLagSeconds: scale === 1 ? 2.5 : 4 })],
      },
      {
        step: "wordcount.out",
        kind: "output",
        stateful: false,
        operator: { step: "wordcount.out", kind: "output" },
        workers: [worker(w, 0, 0)],
      },
    ],
    kafka,
  };
}

const MiB = 2 ** 20;
const lag = (partition: number, worker: number, lag: number) => ({
  step: "wordcount.inp",
  topic: "words",
  partition,
  worker,
  lag,
});
const readings: ProcessReading[] = [
  {
    pod: pod("counts-0", 0),
    report: report(0, 0, 1, [lag(0, 0, 5), lag(2, 0, 40)]),
    figures: { cpuSeconds: 12.5, residentBytes: 150 * MiB, at: 10_000 },
  },
  {
    pod: pod("counts-1", 2),
    report: report(1, 1, 2, [lag(1, 1, 7)]),
    figures: { cpuSeconds: 3, residentBytes: 80 * MiB, at: 10_000 },
  },
  { pod: pod("counts-2", 1, false), error: "no answer within 5 s" },
];
/** The refresh before: counts-0 used half a core since; counts-1's CPU time went down, a new process. */
const before: ProcessReading[] = [
  { pod: pod("counts-0", 0), figures: { cpuSeconds: 12, residentBytes: 140 * MiB, at: 9_000 } },
  { pod: pod("counts-1", 2), figures: { cpuSeconds: 4, residentBytes: 80 * MiB, at: 9_000 } },
];

describe("stepsView: every process's numbers per step, one row per pod", () => {
  const view = stepsView(readings, before);

  test("steps are summed over processes and workers, named without the dataflow's id", () => {
    expect(view.flow).toBe("wordcount");
    expect(view.steps).toEqual([
      {
        step: "inp",
        kind: "input",
        operator: { step: "inp", kind: "input" },
        stateful: false,
        itemsIn: 0,
        itemsOut: 300,
        throughput: 30, // an input's throughput is what it emits
        keys: null,
        watermarkLagSeconds: null,
      },
      {
        step: "count.sum.stateful_batch",
        kind: "statefulBatch",
        operator: { step: "count", kind: "countFinal" },
        stateful: true,
        itemsIn: 900,
        itemsOut: 0,
        throughput: 90, // any other step's is what it receives
        keys: 120,
        watermarkLagSeconds: 4, // the worst worker's
      },
      {
        step: "out",
        kind: "output",
        operator: { step: "out", kind: "output" },
        stateful: false,
        itemsIn: 0,
        itemsOut: 0,
        throughput: 0,
        keys: null,
        watermarkLagSeconds: null,
      },
    ]);
  });

  test("a pod whose process did not answer is still a row, with why", () => {
    expect(view.pods).toEqual([
      {
        pod: "counts-0",
        process: 0,
        ready: true,
        restarts: 0,
        epoch: 12,
        committedEpoch: 10,
        snapshotAgeSeconds: 1.5,
        error: null,
        cpuCores: 0.5,
        memoryMiB: 150,
        resourcesFrom: "process",
      },
      {
        pod: "counts-1",
        process: 1,
        ready: true,
        restarts: 2,
        epoch: 13,
        committedEpoch: 11,
        snapshotAgeSeconds: 2.5,
        error: null,
        cpuCores: null,
        memoryMiB: 80,
        resourcesFrom: "process",
      },
      {
        pod: "counts-2",
        process: null,
        ready: false,
        restarts: 1,
        epoch: null,
        committedEpoch: null,
        snapshotAgeSeconds: null,
        error: "no answer within 5 s",
        cpuCores: null,
        memoryMiB: null,
        resourcesFrom: null,
      },
    ]);
  });

  test("Kafka: each partition with its pod and worker, and per topic the total and the worst partition", () => {
    expect(view.kafka.partitions).toEqual([
      { step: "inp", topic: "words", partition: 0, lag: 5, pod: "counts-0", worker: 0 },
      { step: "inp", topic: "words", partition: 1, lag: 7, pod: "counts-1", worker: 1 },
      { step: "inp", topic: "words", partition: 2, lag: 40, pod: "counts-0", worker: 0 },
    ]);
    expect(view.kafka.topics).toEqual([
      { step: "inp", topic: "words", partitions: 3, totalLag: 52, maxLag: 40, maxLagPartition: 2 },
    ]);
    expect(describeKafkaRows(view)).toEqual([
      ["inp", "words", "0", "5", "counts-0", "0"],
      ["inp", "words", "1", "7", "counts-1", "1"],
      ["inp", "words", "2", "40", "counts-0", "0"],
    ]);
  });

  test("a runtime that reports no Kafka lag (older than it, or no Kafka source) shows none", () => {
    const { kafka: _, ...old } = report(0, 0, 1);
    const parsed = asStepsReport(old, "counts-0");
    expect(parsed.kafka).toEqual([]);
    expect(stepsView([{ pod: pod("counts-0", 0), report: parsed }]).kafka).toEqual({ partitions: [], topics: [] });
  });

  test("describe lists each step with the operator it belongs to", () => {
    expect(describeStepRows(view)).toEqual([
      ["inp", "input", "no", "0", "300", "-"],
      ["count.sum.stateful_batch", "statefulBatch in count (countFinal)", "yes", "900", "0", "120"],
      ["out", "output", "no", "0", "0", "-"],
    ]);
  });

  test("an answer that is not a steps report is refused with the pod's name", () => {
    expect(() => asStepsReport({ ready: true }, "counts-0")).toThrow(
      "pod counts-0 answered /steps with something else than a steps report (a waxflow runtime before /steps?)",
    );
    expect(asStepsReport(report(0, 0, 1), "counts-0").process).toBe(0);
  });
});

describe("the df top frame", () => {
  const view = stepsView(readings, before);

  test("one frame, as --once prints it", () => {
    const frame = topFrame(view, {
      dataflow: "counts",
      namespace: "streams",
      now: new Date("2026-12-05T01:02:03Z"),
      sort: "dataflow",
      history: new Map(),
      interactive: false,
    });
    expect(frame).toBe(
      [
        "waxctl df top counts -n streams   3 pod(s)   01:02:03 UTC   sort: dataflow",
        "",
        "  STEP                       KIND            ITEMS/S   KEYS   WM LAG   IN    OUT   TREND",
        "  inp                        input           30        -      -        0     300   █",
        "  count.sum.stateful_batch   statefulBatch   90        120    4.0s     900   0     █",
        "  out                        output          0         -      -        0     0     ▁",
        "",
        "KAFKA TOPIC   STEP   PARTITIONS   LAG   MAX PARTITION LAG",
        "words         inp    3            52    40 (partition 2)",
        "",
        "POD        PROCESS   READY   EPOCH   COMMITTED   SNAPSHOT AGE   CPU    MEMORY   RESTARTS   PROBLEM",
        "counts-0   0         yes     12      10          1.5s           0.50   150Mi    0",
        "counts-1   1         yes     13      11          2.5s           -      80Mi     2",
        "counts-2   -         no      -       -           -              -      -        1          no answer within 5 s",
      ].join("\n"),
    );
  });

  test("live: the keys, the selected step marked and described, sorted by throughput, with a sparkline", () => {
    let history = new Map<string, readonly number[]>();
    for (const scale of [0, 1, 2, 4]) {
      const scaled = stepsView([{ pod: pod("counts-0", 0), report: report(0, 0, scale) }]);
      history = withThroughput(history, scaled);
    }
    const frame = topFrame(view, {
      dataflow: "counts",
      namespace: "streams",
      now: new Date("2026-12-05T01:02:03Z"),
      sort: "throughput",
      selected: "count.sum.stateful_batch",
      history,
      interactive: true,
    });
    const lines = frame.split("\n");
    expect(lines[1]).toBe("q quit   s sort   ↑/↓ select a step");
    expect(lines[4]).toMatch(/^> count\.sum\.stateful_batch .* ▁▂▄█$/);
    expect(lines[5]).toMatch(/^ {2}inp /);
    expect(frame).toContain("count.sum.stateful_batch: statefulBatch, holds state, part of count (countFinal)");
  });

  test("a frame before any process answered says so", () => {
    const frame = topFrame(stepsView([{ pod: pod("counts-0", 0), error: "not running" }]), {
      dataflow: "counts",
      namespace: "default",
      now: new Date(0),
      sort: "dataflow",
      history: new Map(),
      interactive: false,
    });
    expect(frame).toContain("  no step reported yet: no process answered");
    expect(frame).toContain(
      "counts-0   -         yes     -       -           -              -     -        0          not running",
    );
    expect(frame).not.toContain("KAFKA TOPIC");
  });

  test("sparklines scale to the largest value; sorts keep the dataflow's order on ties", () => {
    expect(sparkline([0, 0, 0])).toBe("▁▁▁");
    expect(sparkline([1, 2, 4, 8])).toBe("▁▂▄█");
    expect(
      sparkline(
        Array.from({ length: 40 }, (_, i) => i),
        4,
      ),
    ).toHaveLength(4);
    expect(sortSteps(view.steps, "keys").map((s) => s.step)).toEqual(["count.sum.stateful_batch", "inp", "out"]);
    expect(sortSteps(view.steps, "lag").map((s) => s.step)).toEqual(["count.sum.stateful_batch", "inp", "out"]);
  });
});
