// The supervisor of `waxflow run`: its back-off, and real processes that restart in place.
import { resolve } from "node:path";
import { expect, test } from "vitest";
import { RESTART_BACKOFF, restartDelay } from "../src/cli/supervise.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses } from "./support/processes.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const processes = childProcesses();

test("the back-off starts at 0.5 s, doubles up to 5 s, and starts over after a minute of running", () => {
  const waits: number[] = [];
  let last: number | undefined;
  for (let i = 0; i < 7; i++) {
    last = restartDelay(last, 2_000);
    waits.push(last);
  }
  expect(waits).toEqual([500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
  expect(restartDelay(5_000, RESTART_BACKOFF.resetAfterMs - 1)).toBe(5_000);
  expect(restartDelay(5_000, RESTART_BACKOFF.resetAfterMs)).toBe(500);
});

test("a cluster that does not form in time is tried again with a growing wait; SIGTERM while waiting exits 143", async () => {
  const [own, absent, api] = (await freePorts(3)) as [number, number, number];
  // Process 1 never comes: each attempt of process 0 times out after 0.5 s.
  const run = processes.start(
    [CLI, "run", "runtime/test/cli-fixtures/endless.ts", "-i", "0", "-a", `127.0.0.1:${own};127.0.0.1:${absent}`],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: String(api),
        WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        WAXFLOW_START_TIMEOUT: "0.5",
        WAXFLOW_QUIET: "true",
      },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  await expect
    .poll(() => run.stderrSoFar(), { timeout: 30_000, interval: 100 })
    .toMatch(/re-forming it in 2 s \(restart 3\)/);
  const lines = run.stderrSoFar().trimEnd().split("\n");
  expect(lines.slice(0, 3)).toEqual(
    [1, 2, 3].map((n) =>
      expect.stringMatching(
        new RegExp(
          `^\\S+ process 0: the cluster failed: timed out after 500 ms waiting for process\\(es\\) 1 \\(127\\.0\\.0\\.1:${absent}\\).*; ` +
            `re-forming it in ${[0.5, 1, 2][n - 1]} s \\(restart ${n}\\) and resuming from the last snapshot$`,
        ),
      ),
    ),
  );
  // Not ready while it re-forms: a child waiting for its peers says 503, and between
  // children nothing answers.
  const ready = await fetch(`http://127.0.0.1:${api}/readyz`).then(
    (r) => r.status,
    () => "refused",
  );
  expect([503, "refused"]).toContain(ready);
  run.child.kill("SIGTERM");
  const exit = await run.exit;
  expect(exit.code).toBe(143);
  expect(exit.stderr).toMatch(/stopping on SIGTERM\n$/);
  expect(exit.stderr).not.toMatch(/^error:/m);
}, 60_000);
