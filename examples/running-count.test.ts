import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, test, vi } from "vitest";
import { checkCounts, checkResumedCounts } from "../e2e/lib/counts.ts";
import { expectedCounts, type ReadingsSettings, settingsEnv, settingsFromEnv } from "./running-count.ts";

const ROOT = resolve(import.meta.dirname, "..");
const SETTINGS: ReadingsSettings = {
  partitions: 4,
  perPartition: 400,
  batch: 5,
  intervalMs: 5,
  sensors: 12,
  follow: false,
};

/** `waxflow` with the test's settings; `out` undefined: the counts go to stdout (piped). */
function waxflow(out: string | undefined, ...args: string[]): ChildProcess {
  return spawn(process.execPath, ["--conditions=waxflow-source", "runtime/src/cli.ts", ...args], {
    cwd: ROOT,
    stdio: ["ignore", out === undefined ? "pipe" : "ignore", "pipe"],
    env: {
      PATH: process.env.PATH ?? "",
      WAXFLOW_API_PORT: "0",
      WAXFLOW_QUIET: "true",
      ...(out === undefined ? {} : { OUTPUT_DIR: out }),
      READINGS_PARTITIONS: String(SETTINGS.partitions),
      READINGS_PER_PARTITION: String(SETTINGS.perPartition),
      READINGS_BATCH: String(SETTINGS.batch),
      READINGS_INTERVAL_MS: String(SETTINGS.intervalMs),
    },
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
  });
  return new Promise((done) => child.on("close", (code, signal) => done({ code, signal, stderr })));
}

function lines(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => readFileSync(join(dir, f), "utf8").split("\n"));
}

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("running-count: every sensor's counts are 1..n exactly once", { timeout: 30_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), "running-count-"));
  const run = await exited(waxflow(out, "run", "examples/running-count.ts", "-w", "2"));
  expect(run).toMatchObject({ code: 0, stderr: "" });
  const report = checkCounts(lines(out), expectedCounts(SETTINGS));
  expect(report).toEqual({ complete: 12, duplicates: [], gaps: [], malformed: [], counted: 1600 });
});

test("running-count without OUTPUT_DIR prints the counts on stdout, as a pod's log shows them", {
  timeout: 30_000,
}, async () => {
  const child = waxflow(undefined, "run", "examples/running-count.ts", "-w", "2");
  let stdout = "";
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    stdout += s;
  });
  expect(await exited(child)).toMatchObject({ code: 0 });
  expect(checkCounts(stdout.split("\n"), expectedCounts(SETTINGS))).toEqual({
    complete: 12,
    duplicates: [],
    gaps: [],
    malformed: [],
    counted: 1600,
  });
});

test("running-count: SIGKILL mid-stream, then resume, still counts every reading exactly once", {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), "running-count-"));
  const out = join(dir, "out");
  const recovery = join(dir, "recovery");
  expect((await exited(waxflow(out, "recovery", "init", recovery, "2"))).code).toBe(0);
  const flags = ["run", "examples/running-count.ts", "-w", "2", "-r", recovery, "-s", "0.05"];

  const first = waxflow(out, ...flags);
  const firstExit = exited(first);
  await until("some output", () => checkCounts(lines(out), expectedCounts(SETTINGS)).counted > 300);
  first.kill("SIGKILL");
  expect((await firstExit).signal).toBe("SIGKILL");
  const partial = checkCounts(lines(out), expectedCounts(SETTINGS));
  expect(partial.complete).toBeLessThan(12);

  expect(await exited(waxflow(out, ...flags))).toMatchObject({ code: 0, stderr: "" });
  expect(checkCounts(lines(out), expectedCounts(SETTINGS))).toEqual({
    complete: 12,
    duplicates: [],
    gaps: [],
    malformed: [],
    counted: 1600,
  });
});

test("checkResumedCounts: a run that resumed from another's state counts each sensor on from where it resumed, once", () => {
  const expected = new Map([
    ["sensor-0", 4],
    ["sensor-1", 3],
  ]);
  const resumed = ["sensor-0,3", "sensor-1,1", "sensor-0,4", "sensor-1,2", "sensor-1,3"];
  expect(checkResumedCounts(resumed, expected)).toEqual({
    resumedAt: new Map([
      ["sensor-0", 2],
      ["sensor-1", 0],
    ]),
    complete: 2,
    duplicates: [],
    gaps: [],
    malformed: [],
  });
  // A replayed count, a lost one and a line of another sensor are each named.
  const broken = checkResumedCounts(["sensor-0,2", "sensor-0,4", "sensor-0,4", "sensor-9,1"], expected);
  expect(broken).toMatchObject({ complete: 0, duplicates: ["sensor-0: 4 (2x)"], gaps: ["sensor-0: 3"] });
  expect(broken.malformed).toEqual(["sensor-9,1"]);
});

test("settingsEnv gives the variables settingsFromEnv reads back as the same settings", () => {
  const settings: ReadingsSettings = { ...SETTINGS, partitions: 3, batch: 7, intervalMs: 0, follow: true };
  for (const [name, value] of Object.entries(settingsEnv(settings))) vi.stubEnv(name, value);
  vi.stubEnv("SENSORS", String(settings.sensors));
  try {
    expect(settingsFromEnv()).toEqual(settings);
  } finally {
    vi.unstubAllEnvs();
  }
});
