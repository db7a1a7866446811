// What `waxflow run` tells its operator on stderr: the wording of each line, then the
// lines real processes write (one process, two over TCP with recovery), and the check
// that stops a rescale whose output files stayed on another process's disk.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, test } from "vitest";
import { ProcessView } from "../src/api/server.ts";
import { DirSink, FileSink } from "../src/connectors/files.ts";
import { Dataflow } from "../src/dataflow.ts";
import {
  clusterFormedLine,
  finishedLine,
  progressLine,
  progressOf,
  resumeLine,
  startLine,
  VERSION,
} from "../src/log.ts";
import * as op from "../src/operators/index.ts";
import { checkOutputFiles, fileOutputs } from "../src/recovery/output-files.ts";
import { TestingSource } from "../src/testing.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses, type Exit, type Run } from "./support/processes.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const processes = childProcesses();

/** A log line without its time: `process 0: cluster formed: ...`, `holder 2: ...`. */
const LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ((?:process|holder) \d+: .*)$/;

function logLines(stderr: string): string[] {
  return stderr
    .split("\n")
    .map((l) => LINE.exec(l)?.[1])
    .filter((l): l is string => l !== undefined);
}

describe("the lines", () => {
  test("start: version, shape, recovery and its interval", () => {
    const base = { flowId: "counts", processId: 1, processes: 3, workersPerProcess: 2, epochIntervalMs: 10_000 };
    expect(startLine({ ...base, recovery: "/var/lib/waxflow/recovery" })).toBe(
      `waxflow ${VERSION} starting dataflow "counts": process 1 of 3 x 2 workers (6 in all); recovery on in /var/lib/waxflow/recovery, snapshots every 10 s`,
    );
    expect(startLine({ ...base, processId: 0, processes: 1, workersPerProcess: 1, recovery: undefined })).toBe(
      `waxflow ${VERSION} starting dataflow "counts": process 0 of 1 x 1 worker (1 in all); recovery off, epochs every 10 s`,
    );
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  test("cluster formed", () => {
    expect(clusterFormedLine(1, 3)).toBe("cluster formed: a single process, no peers to wait for");
    expect(clusterFormedLine(3, 1234)).toBe("cluster formed: all 3 processes connected after 1.2 s");
  });

  test("resume: fresh, same shape, rescaled with the hand-off", () => {
    const facts = { execution: 1, resumeEpoch: 1, resumedFrom: 0, previousProcesses: 0, processes: 2 };
    expect(resumeLine({ ...facts, rowsSent: 0, rowsReceived: 0 })).toBe(
      "recovery: no earlier execution in the stores, starting fresh at epoch 1 (execution 1)",
    );
    const again = { execution: 4, resumeEpoch: 42, resumedFrom: 3, previousProcesses: 2, processes: 2 };
    expect(resumeLine({ ...again, rowsSent: 0, rowsReceived: 0 })).toBe(
      "resuming from epoch 42 (execution 3 -> 4, 2 processes); no snapshots changed process",
    );
    expect(resumeLine({ ...again, previousProcesses: 3, rowsSent: 1, rowsReceived: 120 })).toBe(
      "resuming from epoch 42 (execution 3 -> 4, rescaled from 3 to 2 processes); handed 1 snapshot over to other processes, received 120",
    );
  });

  test("progress and the end: totals, and what changed in the interval", () => {
    const workers = [
      {
        epoch: 7,
        stepCounts: () => [
          { stepId: "f.inp", itemsIn: 0, itemsOut: 10 },
          { stepId: "f.double", itemsIn: 10, itemsOut: 10 },
          { stepId: "f.out", itemsIn: 8, itemsOut: 0 },
        ],
      },
      { epoch: 6, stepCounts: () => [{ stepId: "f.out", itemsIn: 2, itemsOut: 0 }] },
    ];
    const now = progressOf(workers, new Set(["f.inp"]), new Set(["f.out"]));
    expect(now).toEqual({ epoch: 6, itemsIn: 10, itemsOut: 10 });
    expect(progressLine(now, { epoch: 5, itemsIn: 4, itemsOut: 1 }, 30_000)).toBe(
      "progress: epoch 6, 10 items in, 10 out (+6 in, +9 out in the last 30 s)",
    );
    expect(finishedLine({ epoch: 9, itemsIn: 1, itemsOut: 0 }, 65_000)).toBe(
      "finished: every input reached its end after 65 s: 1 item in, 0 out, epoch 9",
    );
  });
});

describe("the output files a resumed process needs", () => {
  const dirFlow = (dir: string): Dataflow => {
    const flow = new Dataflow("f");
    const items = op.input("inp", flow, new TestingSource<[string, string]>([]));
    op.output("out", items, new DirSink(dir, 2));
    return flow;
  };
  const positions = new Map([
    ["part_0", 5],
    ["part_1", 7],
  ]);
  /** The store of a process resuming both partitions of `f.out` (2 processes x 1 worker: one each). */
  const store = {
    load: (stepId: string, owns: (key: string) => boolean) =>
      stepId === "f.out" ? [...positions].filter(([part]) => owns(part)) : [],
  };
  const check = (dir: string, movedHere: ReadonlyMap<string, ReadonlySet<string>>) => () =>
    checkOutputFiles({
      flow: dirFlow(dir),
      store,
      processId: 1,
      workersPerProcess: 1,
      processCount: 2,
      previousProcesses: 3,
      movedHere,
    });

  test("a partition moved here whose file is elsewhere: the step, the partition, the file, a shared volume", () => {
    const dir = processes.tempDir("waxflow-log-files-");
    writeFileSync(join(dir, "part_0"), "12345");
    expect(check(dir, new Map([["f.out", new Set(["part_1"])]]))).toThrow(
      `step "f.out" failed in partition "part_1": Error: output file ${dir}/part_1 does not exist, but its snapshot ` +
        "position is 7 bytes: the partition moved to process 1 when the cluster went from 3 to 2 process(es), and its " +
        "file stayed with the process that wrote it; file output across a rescale needs a shared volume (one directory " +
        "every process mounts): go back to the previous shape, or put the output directory on a shared volume",
    );
  });

  test("the directories file sinks write to, absolute, for /status (what df scale compares with the pods' volumes)", () => {
    const flow = dirFlow("out/counts");
    op.output("all", op.input("more", flow, new TestingSource<[string, string]>([])), new FileSink("/data/all.txt"));
    const outputs = fileOutputs(flow, "/app");
    expect(outputs).toEqual([
      { step: "f.out", directories: ["/app/out/counts"] },
      { step: "f.all", directories: ["/data"] },
    ]);
    const view = new ProcessView(0, 1);
    view.writesFiles(outputs);
    expect(view.status().fileOutputs).toEqual(outputs);
  });

  test("a file of its own that is short: replaced or truncated; long enough (a shared volume): no complaint", () => {
    const dir = processes.tempDir("waxflow-log-files-");
    writeFileSync(join(dir, "part_1"), "123");
    expect(check(dir, new Map())).toThrow(
      `step "f.out" failed in partition "part_1": Error: output file ${dir}/part_1 is 3 bytes, shorter than its snapshot position 7`,
    );
    writeFileSync(join(dir, "part_1"), "1234567 and more");
    expect(check(dir, new Map([["f.out", new Set(["part_1"])]]))).not.toThrow();
  });
});

function waxflow(args: readonly string[], env: Record<string, string>, onStderr?: (soFar: string) => void): Run {
  return processes.start(
    [CLI, "run", ...args],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: "0", WAXFLOW_CLUSTER_SECRET: TEST_SECRET, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
    onStderr,
  );
}

test("one process: start, cluster, progress at the interval on stderr; stdout stays the dataflow's", async () => {
  let stderr = "";
  const run = waxflow(["runtime/test/cli-fixtures/endless.ts", "--progress-interval", "0.3"], {}, (soFar) => {
    stderr = soFar;
  });
  let stdout = "";
  run.child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  await expect.poll(() => stderr.match(/progress:/g)?.length ?? 0, { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
  run.child.kill("SIGTERM");
  const exit = await run.exit;
  expect(exit.code).toBe(143);
  const lines = logLines(exit.stderr);
  expect(lines.slice(0, 2)).toEqual([
    `process 0: waxflow ${VERSION} starting dataflow "endless": process 0 of 1 x 1 worker (1 in all); recovery off, epochs every 10 s`,
    "process 0: cluster formed: a single process, no peers to wait for",
  ]);
  // endless.ts has no output step: items in grow, none go out.
  const totals = lines.slice(2).map((line) => {
    const m = /^process 0: progress: epoch 1, (\d+) items in, 0 out \(\+(\d+) in, \+0 out in the last 0\.3 s\)$/.exec(
      line,
    );
    expect(m, line).not.toBeNull();
    return Number(m?.[1]);
  });
  expect(
    totals.every((n, i) => i === 0 || n > (totals[i - 1] ?? 0)),
    totals.join(", "),
  ).toBe(true);
  expect(stdout).toMatch(/^(endless\.tick: \d+\n)+$/);
}, 30_000);

/** Two processes of the recovery fixture, each with its own store and its own output directory. */
async function pair(root: string, until: number, ports: readonly number[]): Promise<Exit[]> {
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const runs = [0, 1].map((i) =>
    waxflow(["runtime/test/fixtures/recovery-flow.ts", "-i", String(i), "-a", addresses], {
      ...storeOf(root, i),
      RF_UNTIL: String(until),
    }),
  );
  return Promise.all(runs.map((r) => r.exit));
}

function storeOf(root: string, i: number): Record<string, string> {
  const out = join(root, `out-${i}`);
  mkdirSync(out, { recursive: true });
  return {
    RF_OUT: out,
    WAXFLOW_RECOVERY_DIRECTORY: join(root, `store-${i}`),
    WAXFLOW_RECOVERY_INIT: "true",
    WAXFLOW_SNAPSHOT_INTERVAL: "0.1",
  };
}

test("two processes with recovery: the start, the cluster, the resume; a rescale onto per-process output stops before data flows", async () => {
  const root = processes.tempDir("waxflow-log-cluster-");
  const ports = await freePorts(2);
  const first = await pair(root, 100, ports);
  for (const [i, exit] of first.entries()) {
    expect(exit.code, exit.stderr).toBe(0);
    const lines = logLines(exit.stderr);
    expect(lines.slice(0, 3)).toEqual([
      `process ${i}: waxflow ${VERSION} starting dataflow "recovery_cluster": process ${i} of 2 x 1 worker (2 in all); recovery on in ${root}/store-${i}, snapshots every 0.1 s`,
      expect.stringMatching(new RegExp(`^process ${i}: cluster formed: all 2 processes connected after \\d+\\.\\d s$`)),
      `process ${i}: recovery: no earlier execution in the stores, starting fresh at epoch 1 (execution 1)`,
    ]);
    expect(lines.at(-1)).toMatch(
      new RegExp(`^process ${i}: finished: every input reached its end after .*: \\d+ items in, \\d+ out, epoch \\d+$`),
    );
  }
  const itemsIn = first.map((e) => Number(/finished: .*: (\d+) items in/.exec(e.stderr)?.[1]));
  expect(itemsIn.reduce((a, b) => a + b, 0)).toBe(600);

  // Down to one process and a holder for process 1's store: process 1's sink partitions
  // move to process 0, whose output directory does not have their files.
  const one = `127.0.0.1:${ports[0]}`;
  let held = "";
  const holder = waxflow(
    ["runtime/test/fixtures/recovery-flow.ts", "-i", "1", "-a", one, "--holder"],
    storeOf(root, 1),
    (soFar) => {
      held = soFar;
    },
  );
  const alone = await waxflow(["runtime/test/fixtures/recovery-flow.ts", "-i", "0", "-a", one], {
    ...storeOf(root, 0),
    RF_UNTIL: "200",
  }).exit;
  await expect.poll(() => held, { timeout: 10_000 }).toContain("the cluster no longer needs this store");
  holder.child.kill("SIGTERM");
  expect(logLines((await holder.exit).stderr)).toEqual([
    `holder 1: waxflow ${VERSION} holding the recovery store in ${root}/store-1 for the cluster of 1 process(es) of dataflow "recovery_cluster": it hands its snapshots over, then waits to be stopped`,
    expect.stringMatching(/^holder 1: handed \d+ snapshot\(s\) over to process\(es\) 0 for execution 2$/),
    "holder 1: the cluster no longer needs this store; waiting to be stopped",
  ]);
  expect(alone.code).toBe(1);
  const lines = alone.stderr.trimEnd().split("\n");
  expect(logLines(alone.stderr).at(-1)).toMatch(
    /^process 0: resuming from epoch \d+ \(execution 1 -> 2, rescaled from 2 to 1 process\); handed 0 snapshots over to other processes, received \d+$/,
  );
  expect(lines.at(-1)).toMatch(
    new RegExp(
      `^error: step "recovery_cluster\\.out" failed in partition "part_\\d": Error: output file ${root}/out-0/part_\\d does not exist, but its snapshot position is \\d+ bytes: the partition moved to process 0 when the cluster went from 2 to 1 process\\(es\\), and its file stayed with the process that wrote it; file output across a rescale needs a shared volume`,
    ),
  );
  // Before any data flowed: no source partition was even built.
  expect(alone.stderr).not.toMatch(/^gen p\d from/m);

  // Back to two processes: each finds its files again and the run goes on from where it was.
  const back = await pair(root, 200, ports);
  for (const exit of back) {
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stderr).toMatch(/resuming from epoch \d+ \(execution 2 -> 3, rescaled from 1 to 2 processes\)/);
  }
}, 60_000);
