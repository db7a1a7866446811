import { resolve } from "node:path";
import { expect, test } from "vitest";
import { freePorts } from "./support/ports.ts";
import { childProcesses } from "./support/processes.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const processes = childProcesses();

function start(args: string[], apiPort: number): void {
  processes.start([CLI, "run", ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: String(apiPort), WAXFLOW_CLUSTER_SECRET: TEST_SECRET },
    stdio: "ignore",
  });
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test("a running process serves /livez, /readyz, /status and /metrics", async () => {
  const [port] = (await freePorts(1)) as [number];
  start(["runtime/test/cli-fixtures/endless.ts", "-w", "2", "-s", "0.1"], port);
  expect(await get(port, "/livez")).toEqual({ status: 200, body: "ok\n" });
  await expect.poll(async () => (await get(port, "/readyz")).status, { timeout: 10_000 }).toBe(200);
  await expect
    .poll(
      async () => {
        const status = JSON.parse((await get(port, "/status")).body) as {
          workers: { epoch: number }[];
          steps: Record<string, number>;
        };
        return status.workers.length === 2 && Object.values(status.steps).some((n) => n > 0);
      },
      { timeout: 10_000 },
    )
    .toBe(true);
  const metrics = await get(port, "/metrics");
  expect(metrics.status).toBe(200);
  expect(metrics.body).toMatch(/^waxflow_step_items_out_total\{step="[^"]+",worker="[01]"\} [1-9]\d*$/m);
  expect(metrics.body).toMatch(/^waxflow_worker_epoch\{worker="1"\} \d+$/m);
  expect(metrics.body).toContain("waxflow_connected_peers 0");
  expect((await get(port, "/nope")).status).toBe(404);
}, 40_000);

test("a process waiting for its peers is live but not ready", async () => {
  const [port, a, b] = (await freePorts(3)) as [number, number, number];
  start(["runtime/test/cli-fixtures/endless.ts", "-i", "0", "-a", `127.0.0.1:${a};127.0.0.1:${b}`], port);
  expect((await get(port, "/livez")).status).toBe(200);
  const ready = await get(port, "/readyz");
  expect(ready).toEqual({ status: 503, body: "waiting for peers\n" });
  expect(JSON.parse((await get(port, "/status")).body)).toMatchObject({ process: 0, processes: 2, ready: false });
}, 40_000);

test("with recovery, /metrics reports snapshot duration and size, and items into each step", async () => {
  const [port] = (await freePorts(1)) as [number];
  const dir = processes.tempDir("waxflow-api-");
  start(["runtime/test/cli-fixtures/endless.ts", "-s", "0.05", "-r", dir, "--recovery-init"], port);
  await expect
    .poll(
      async () => (await get(port, "/metrics")).body.match(/^waxflow_snapshot_duration_seconds_count (\d+)$/m)?.[1],
      {
        timeout: 15_000,
      },
    )
    .toMatch(/^[1-9]\d*$/);
  const { body } = await get(port, "/metrics");
  // Each epoch snapshots the source's position: a serialized number is a few bytes.
  expect(body).toMatch(/^waxflow_snapshot_bytes [1-9]\d*$/m);
  expect(body).toMatch(/^waxflow_snapshot_bytes_total [1-9]\d*$/m);
  expect(body).toMatch(/^waxflow_step_items_in_total\{step="endless\.tick\.inspect_debug",worker="0"\} [1-9]\d*$/m);
}, 40_000);
