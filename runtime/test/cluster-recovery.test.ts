// Recovery across real `waxflow run` processes, each with its own recovery directory,
// writing real files: kill and restart, rescale through a holder, and a missing store.
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { expect, test } from "vitest";
import { KEYS, PARTITIONS } from "./fixtures/recovery-flow.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses, type Exit, type Run } from "./support/processes.ts";
import { expectExactlyOnce, succeeds } from "./support/recovery-counts.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FLOW = "runtime/test/fixtures/recovery-flow.ts";

const processes = childProcesses();

function waxflow(args: string[], env: Record<string, string>): Run {
  return processes.start([CLI, "run", FLOW, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: "0", WAXFLOW_CLUSTER_SECRET: TEST_SECRET, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** A test's files: the sink's directory and one recovery directory per process index. */
function workspace(): { out: string; store: (i: number) => string } {
  const root = processes.tempDir("waxflow-cluster-recovery-");
  const out = join(root, "out");
  mkdirSync(out);
  return { out, store: (i) => join(root, `process-${i}`) };
}

/**
 * Starts `count` processes (-w 2, each its own store, created on first use) reading
 * offsets up to RF_UNTIL. `spare` more free ports come back for the test's own use: taken
 * in one call, they cannot collide with the cluster's.
 */
async function cluster(
  count: number,
  ws: ReturnType<typeof workspace>,
  env: Record<string, string>,
  spare = 0,
): Promise<{ runs: Run[]; addresses: string; spare: number[] }> {
  const all = await freePorts(count + spare);
  const ports = all.slice(0, count);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const runs = Array.from({ length: count }, (_, i) =>
    waxflow(["-i", String(i), "-a", addresses, "-w", "2", "-r", ws.store(i), "--recovery-init", "-s", "0.1"], {
      RF_OUT: ws.out,
      ...env,
    }),
  );
  return { runs, addresses, spare: all.slice(count) };
}

/** Where each source partition started reading, as the fixture logs it. */
function startOffsets(exits: readonly Exit[]): Map<string, number> {
  const starts = new Map<string, number>();
  for (const { stderr } of exits) {
    for (const m of stderr.matchAll(/^gen (p\d+) from (\d+)$/gm)) starts.set(m[1] as string, Number(m[2]));
  }
  return starts;
}

function lineCount(out: string): number {
  return readdirSync(out).reduce((n, f) => n + readFileSync(join(out, f), "utf8").split("\n").length - 1, 0);
}

test("3 processes x 2 workers, one SIGKILLed mid-stream: its peers stay up, re-form the cluster with its restart and resume exactly once", async () => {
  const ws = workspace();
  const total = PARTITIONS * 600;
  const env = { RF_UNTIL: "600", RF_PACE_MS: "20", RF_OUT: ws.out };
  const first = await cluster(3, ws, env);
  await expect.poll(() => lineCount(ws.out), { timeout: 20_000, interval: 50 }).toBeGreaterThan(total / 5);
  const survivors = [first.runs[0], first.runs[2]] as [Run, Run];
  const exited: number[] = [];
  for (const [i, run] of survivors.entries()) void run.exit.then(() => exited.push(i));
  // SIGKILL on the supervisor: its child dies with it, as a pod's processes do.
  first.runs[1]?.child.kill("SIGKILL");
  await expect
    .poll(() => survivors.every((r) => /re-forming it in 0\.5 s \(restart 1\)/.test(r.stderrSoFar())), {
      timeout: 10_000,
      interval: 50,
    })
    .toBe(true);
  expect(exited).toEqual([]);
  for (const run of survivors) {
    expect(run.stderrSoFar()).toMatch(
      /process \d: the cluster failed: lost connection to process 1 \(127\.0\.0\.1:\d+\).*; re-forming it in 0\.5 s \(restart 1\) and resuming from the last snapshot\n/,
    );
    // The cause is the supervisor's line; the child prints no error of its own.
    expect(run.stderrSoFar()).not.toMatch(/^error:/m);
  }
  const restarted = waxflow(
    ["-i", "1", "-a", first.addresses, "-w", "2", "-r", ws.store(1), "--recovery-init", "-s", "0.1"],
    { ...env, RF_PACE_MS: "2" },
  );
  const exits = await succeeds([survivors[0], restarted, survivors[1]]);
  for (const exit of exits) expect(exit.stderr).toMatch(/resuming from epoch \d+ \(execution 1 -> 2/);
  expectExactlyOnce(ws.out, 600);
}, 90_000);

test("with --no-supervise, one SIGKILLed mid-stream: the others stop (fate-sharing), a restart resumes exactly once", async () => {
  const ws = workspace();
  const total = PARTITIONS * 600;
  const first = await cluster(3, ws, { RF_UNTIL: "600", RF_PACE_MS: "20", WAXFLOW_SUPERVISE: "false" });
  await expect.poll(() => lineCount(ws.out), { timeout: 20_000, interval: 50 }).toBeGreaterThan(total / 5);
  expect(lineCount(ws.out)).toBeLessThan(total);
  const killedAt = Date.now();
  first.runs[1]?.child.kill("SIGKILL");
  for (const i of [0, 2]) {
    const exit = await (first.runs[i] as Run).exit;
    expect(exit.code).not.toBe(0);
    expect(exit.stderr).toMatch(/lost connection to process 1/);
    expect(exit.at - killedAt).toBeLessThan(5000);
  }

  const second = await cluster(3, ws, { RF_UNTIL: "600", RF_PACE_MS: "2" });
  const exits = await succeeds(second.runs);
  // Every partition was dealt to its worker again and resumed from its snapshot, not from 0.
  const starts = startOffsets(exits);
  expect(starts.size).toBe(PARTITIONS);
  for (const [part, offset] of starts) expect(offset, part).toBeGreaterThan(0);
  expectExactlyOnce(ws.out, 600);
}, 90_000);

test("rescale with a store per process: 3 processes, then 2 and a holder, then 4", async () => {
  const ws = workspace();
  await succeeds((await cluster(3, ws, { RF_UNTIL: "200" })).runs);

  // Process 2's partitions (p4, p5), keys and sink positions live only in its store.
  const down = await cluster(2, ws, { RF_UNTIL: "400" }, 1);
  const [holderApi] = down.spare as [number];
  const holder = waxflow(["-i", "2", "-a", down.addresses, "--holder", "-r", ws.store(2)], {
    RF_OUT: ws.out,
    WAXFLOW_API_PORT: String(holderApi),
  });
  const exits = await succeeds(down.runs);
  expect(startOffsets(exits)).toEqual(new Map(Array.from({ length: PARTITIONS }, (_, p) => [`p${p}`, 200])));
  // Ready once the cluster no longer needs its store; then it stops cleanly.
  await expect
    .poll(async () => (await fetch(`http://127.0.0.1:${holderApi}/readyz`).catch(() => undefined))?.status, {
      timeout: 10_000,
    })
    .toBe(200);
  holder.child.kill("SIGTERM");
  expect((await holder.exit).code).toBe(0);
  expectExactlyOnce(ws.out, 400);

  // Process 3 starts with an empty store; process 2's old store is stale and dropped.
  // Paced over several epochs, so every worker commits in the new execution while it runs.
  const up = await cluster(4, ws, { RF_UNTIL: "600", RF_PACE_MS: "20" });
  const upExits = await succeeds(up.runs);
  expect(new Set(startOffsets(upExits).values())).toEqual(new Set([400]));
  expectExactlyOnce(ws.out, 600);
  // Each store kept only the keys its process owns now: what it handed over is gone.
  const stored = [0, 1, 2, 3].map((i) => storedKeys(ws.store(i)));
  expect(stored.reduce((n, keys) => n + keys.length, 0)).toBe(KEYS);
  expect(new Set(stored.flat()).size).toBe(KEYS);
}, 90_000);

/** The keys a store holds snapshots of for the running count. */
function storedKeys(dir: string): string[] {
  const keys: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sqlite3"))) {
    const db = new DatabaseSync(join(dir, file), { readOnly: true });
    const rows = db
      .prepare("SELECT DISTINCT state_key FROM snaps WHERE step_id = 'recovery_cluster.count.stateful_batch'")
      .all();
    db.close();
    keys.push(...rows.map((r) => String(r.state_key)));
  }
  return keys;
}

test("a smaller cluster without a holder for a left-out store fails naming it, and loses nothing", async () => {
  const ws = workspace();
  await succeeds((await cluster(3, ws, { RF_UNTIL: "200" })).runs);

  // Unsupervised, so both exit with the cause: supervised, process 1 would stay up and
  // re-form, waiting for process 0 to come back as its pod would.
  const down = await cluster(2, ws, { RF_UNTIL: "400", WAXFLOW_START_TIMEOUT: "2", WAXFLOW_SUPERVISE: "false" });
  const [leader, other] = await Promise.all(down.runs.map((r) => r.exit));
  const cause =
    /cannot resume: execution 1 ran 3 processes, and the recovery store of process\(es\) 2 is neither in this cluster of 2 nor offered by a holder within 2 s; run with 3 processes again, or start holders for processes 2\.\.2 .*on Kubernetes the controller does this/;
  expect(leader?.code).toBe(1);
  expect(leader?.stderr).toMatch(cause);
  expect(other?.code).toBe(1);
  expect(other?.stderr).toMatch(cause);

  // Run with 3 processes again, as the message says: the state is all there.
  await succeeds((await cluster(3, ws, { RF_UNTIL: "400" })).runs);
  expectExactlyOnce(ws.out, 400);
}, 90_000);
