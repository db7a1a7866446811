// Peer liveness under load, with real processes: a worker that holds its thread longer
// than the peer timeout does not get its process declared lost, because the mesh's
// heartbeats run on the process thread and a clustered process's workers never do.

import { mkdirSync } from "node:fs";
import { get } from "node:http";
import { join, resolve } from "node:path";
import { expect, test } from "vitest";
import { freePorts } from "./support/ports.ts";
import { childProcesses } from "./support/processes.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const processes = childProcesses();

test("a process whose one worker is busy for 3 s, peer timeout 1.5 s: its peer does not declare it lost", async () => {
  const [a, b] = (await freePorts(2)) as [number, number];
  const addresses = `127.0.0.1:${a};127.0.0.1:${b}`;
  // Only process 1 is busy: process 0 is free to notice that process 1 fell silent, if it did.
  const runs = ["0", "3000"].map((busyMs, i) =>
    processes.start(
      [CLI, "run", "runtime/test/cli-fixtures/busy.ts", "-i", String(i), "-a", addresses, "--peer-timeout", "1.5"],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          WAXFLOW_API_PORT: "0",
          WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
          BUSY_MS: busyMs,
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    ),
  );
  const exits = await Promise.all(runs.map((r) => r.exit));
  for (const exit of exits) expect(exit, exit.stderr).toMatchObject({ code: 0 });
}, 60_000);

test("a peer that stops answering is still declared lost after --peer-timeout, named with the flag to raise", async () => {
  const [a, b, api] = (await freePorts(3)) as [number, number, number];
  const addresses = `127.0.0.1:${a};127.0.0.1:${b}`;
  const out = join(processes.tempDir("waxflow-liveness-"), "out");
  mkdirSync(out);
  // Six partitions, so both processes read and exchange for a minute unless stopped.
  // Unsupervised: SIGSTOP must freeze the process that runs the dataflow, not a supervisor.
  const env = {
    RF_OUT: out,
    RF_UNTIL: "100000",
    RF_PACE_MS: "100",
    WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
    WAXFLOW_SUPERVISE: "false",
  };
  const start = (i: number, apiPort: number) =>
    processes.start(
      [CLI, "run", "runtime/test/fixtures/recovery-flow.ts", "-i", String(i), "-a", addresses, "--peer-timeout", "2"],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: String(apiPort), ...env },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
  const first = start(0, api);
  const second = start(1, 0);
  await expect.poll(() => readyz(api), { timeout: 30_000, interval: 200 }).toBe(200);
  // SIGSTOP: the process hangs with its connections open, as on a frozen node.
  second.child.kill("SIGSTOP");
  const stoppedAt = Date.now();
  const exit = await first.exit;
  second.child.kill("SIGKILL");
  expect(exit.code).toBe(1);
  expect(exit.stderr).toMatch(
    /process 1 \(127\.0\.0\.1:\d+\) sent nothing for 2000 ms \(raise --peer-timeout\/WAXFLOW_PEER_TIMEOUT/,
  );
  expect(Date.now() - stoppedAt).toBeLessThan(6000);
}, 60_000);

function readyz(port: number): Promise<number> {
  return new Promise((done) => {
    get({ host: "127.0.0.1", port, path: "/readyz" }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    }).on("error", () => done(0));
  });
}
