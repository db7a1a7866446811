/**
 * Memory per key: a running count over 1M distinct string keys, each run in a process of
 * its own (bench/memory-probe.ts), recovery off and on; heap and RSS growth per key after a
 * forced GC, with every key's state alive. Target: heap <= 200 bytes per key (before the
 * per-key logic became a class it was ~500). Beside them, the RSS of an idle
 * `waxflow run` (runtime/dist, one process, one worker), read from /proc after 2 s.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchCase, Figure } from "../harness.ts";
import type { MemoryReport } from "../memory-probe.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const KEYS = 1_000_000;
const MAX_HEAP_BYTES_PER_KEY = 200;

function probe(recovery: boolean): MemoryReport {
  const args = ["--conditions=waxflow-source", "--expose-gc", join(ROOT, "bench", "memory-probe.ts"), String(KEYS)];
  const run = spawnSync(process.execPath, recovery ? [...args, "recovery"] : args, { cwd: ROOT, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`memory-probe.ts ${recovery ? "with recovery " : ""}failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1) as string) as MemoryReport;
}

async function idleRss(): Promise<number> {
  const built = spawnSync("npm", ["run", "--silent", "build"], { cwd: ROOT, encoding: "utf8" });
  if (built.status !== 0) throw new Error(`npm run build failed: ${built.stdout}${built.stderr}`);
  const child = spawn(process.execPath, [join(ROOT, "runtime", "dist", "cli.js"), "run", "bench/idle-flow.ts"], {
    cwd: ROOT,
    env: { ...process.env, WAXFLOW_QUIET: "true", WAXFLOW_API_PORT: "0" },
    stdio: "ignore",
  });
  try {
    await sleep(2_000);
    if (child.exitCode !== null) throw new Error(`waxflow run bench/idle-flow.ts exited with ${child.exitCode}`);
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
    if (kb === null) throw new Error(`no VmRSS in /proc/${child.pid}/status`);
    return Number(kb[1]) * 1024;
  } finally {
    child.kill("SIGKILL");
  }
}

export const memoryPerKey: BenchCase = {
  title: "memory per key: running count over 1M distinct keys, recovery off and on; idle waxflow run",
  targets: {},
  async prepare() {
    return {
      async measure(): Promise<readonly Figure[]> {
        const figures: Figure[] = [];
        for (const recovery of [false, true]) {
          const r = probe(recovery);
          const label = recovery ? "recovery on" : "recovery off";
          figures.push(
            { name: `heap per key, ${label}`, value: r.heapBytes / r.keys, unit: "B", below: MAX_HEAP_BYTES_PER_KEY },
            { name: `RSS per key, ${label}`, value: r.rssBytes / r.keys, unit: "B" },
          );
        }
        figures.push({ name: "RSS of an idle waxflow run", value: (await idleRss()) / 2 ** 20, unit: "MB" });
        return figures;
      },
    };
  },
};
