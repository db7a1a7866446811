import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { expect, test } from "vitest";
import { freePorts } from "./support/ports.ts";
import { childProcesses, type Run } from "./support/processes.ts";

const FIXTURE = join(import.meta.dirname, "fixtures", "cluster-process.ts");
const UNEVEN = join(import.meta.dirname, "fixtures", "cluster-uneven.ts");
const processes = childProcesses();

function start(args: string[]): Run & { formed: Promise<void> } {
  const formed = Promise.withResolvers<void>();
  const run = processes.start([FIXTURE, ...args], { stdio: ["ignore", "ignore", "pipe"] }, (stderr) => {
    if (stderr.includes("cluster formed\n")) formed.resolve();
  });
  return { ...run, formed: formed.promise };
}

function readCounts(dir: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const file of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, file), "utf8").split("\n")) {
      if (line === "") continue;
      const [key, n] = JSON.parse(line) as [string, number];
      expect(counts[key]).toBeUndefined();
      counts[key] = n;
    }
  }
  return counts;
}

test("3 processes x 2 workers over TCP count every item exactly once", async () => {
  const dir = processes.tempDir("waxflow-cluster-");
  const ports = await freePorts(3);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const runs = [0, 1, 2].map((i) => start([String(i), addresses, "2", join(dir, "out"), "3000"]));
  const exits = await Promise.all(runs.map((r) => r.exit));
  for (const exit of exits) expect(exit, exit.stderr).toMatchObject({ code: 0 });
  const counts = readCounts(dir);
  expect(counts).toEqual(Object.fromEntries(Array.from({ length: 10 }, (_, k) => [String(k), 300])));
  // Keyed results come from more than one process's workers: the work was spread.
  expect(new Set(readdirSync(dir)).size).toBeGreaterThan(1);
}, 60_000);

test("a process killed with SIGKILL makes the others exit non-zero within seconds, naming it", async () => {
  const dir = processes.tempDir("waxflow-cluster-");
  const ports = await freePorts(3);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const runs = [0, 1, 2].map((i) => start([String(i), addresses, "1", join(dir, "out"), "100000", "200"]));
  await Promise.all(runs.map((r) => r.formed));
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const killedAt = Date.now();
  runs[1]?.child.kill("SIGKILL");
  for (const i of [0, 2]) {
    const exit = await (runs[i] as (typeof runs)[number]).exit;
    expect(exit.code).not.toBe(0);
    // Either it saw the connection drop, or a peer that saw it first told it why.
    expect(exit.stderr).toMatch(/lost connection to process 1 \(127\.0\.0\.1:\d+\)/);
    expect(exit.at - killedAt).toBeLessThan(5000);
  }
}, 60_000);

test("a process started with a different worker count is refused with the reason", async () => {
  const dir = processes.tempDir("waxflow-cluster-");
  const ports = await freePorts(2);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const a = start(["0", addresses, "2", join(dir, "out")]);
  const b = start(["1", addresses, "3", join(dir, "out")]);
  const [ea, eb] = await Promise.all([a.exit, b.exit]);
  expect(ea.code).not.toBe(0);
  expect(eb.code).not.toBe(0);
  expect(ea.stderr + eb.stderr).toMatch(/workers per process/);
}, 60_000);

test("a process whose workers have nothing to do stays in the cluster until every process ends", async () => {
  const ports = await freePorts(2);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const runs = [0, 1].map((i) =>
    processes.start([UNEVEN, String(i), addresses], { stdio: ["ignore", "ignore", "pipe"] }),
  );
  const [reader, idle] = await Promise.all(runs.map((r) => r.exit));
  expect(reader, reader?.stderr).toMatchObject({ code: 0 });
  expect(idle, idle?.stderr).toMatchObject({ code: 0 });
  expect(idle?.stderr).toContain("ended");
  // Process 0 reads for about 3 s; process 1, done at once, waited for it.
  expect((idle?.at ?? 0) - (reader?.at ?? 0)).toBeGreaterThan(-1000);
}, 60_000);

test("an idle process waiting for the others fails when one of them is lost, so the cluster can re-form", async () => {
  const ports = await freePorts(2);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const formed = Promise.withResolvers<void>();
  const reader = processes.start([UNEVEN, "0", addresses], { stdio: ["ignore", "ignore", "pipe"] }, (stderr) => {
    if (stderr.includes("cluster formed\n")) formed.resolve();
  });
  const idle = processes.start([UNEVEN, "1", addresses], { stdio: ["ignore", "ignore", "pipe"] });
  await formed.promise;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  reader.child.kill("SIGKILL");
  const exit = await idle.exit;
  expect(exit.code).toBe(1);
  expect(exit.stderr).toMatch(/lost connection to process 0/);
}, 60_000);

/** The newest committed frontier of `worker` recorded in the store at `dir`. */
function recordedFrontier(dir: string, worker: number): number {
  let newest = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sqlite3"))) {
    const db = new DatabaseSync(join(dir, file), { readOnly: true });
    const row = db.prepare("SELECT MAX(frontier) AS f FROM fronts WHERE worker_index = ?").get(worker);
    db.close();
    newest = Math.max(newest, Number(row?.f ?? 0));
  }
  return newest;
}

test("with recovery, a worker that ended commits what the others commit, so it holds back no epoch", async () => {
  const dir = processes.tempDir("waxflow-uneven-");
  const ports = await freePorts(2);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  const formed = Promise.withResolvers<void>();
  const reader = processes.start(
    [UNEVEN, "0", addresses, join(dir, "store-0")],
    { stdio: ["ignore", "ignore", "pipe"] },
    (stderr) => {
      if (stderr.includes("cluster formed\n")) formed.resolve();
    },
  );
  const idle = processes.start([UNEVEN, "1", addresses, join(dir, "store-1")], { stdio: ["ignore", "ignore", "pipe"] });
  await formed.promise;
  // 50 ms epochs: some 30 of them while process 0 reads and process 1's worker has ended.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  reader.child.kill("SIGKILL");
  await Promise.all([reader.exit, idle.exit]);
  const running = recordedFrontier(join(dir, "store-0"), 0);
  const ended = recordedFrontier(join(dir, "store-1"), 1);
  expect(running).toBeGreaterThan(10);
  // Followed as process 0's commits arrived; the last may not have before the kill.
  expect(ended).toBeGreaterThan(running - 5);
  expect(ended).toBeLessThanOrEqual(running);
}, 60_000);
