/**
 * Thread start (issue 18): wall time from spawning `waxflow run bench/start-flow.ts -w N`
 * (runtime/dist/cli.js, built first, as the `waxflow` bin runs it) to its first output line,
 * for N = 1, 2 and 4; each worker prints one line at once and ends. Runs alternate between
 * the worker counts so drift hits all alike; medians. Target: `-w 4` takes at most 1.5x
 * as long as `-w 1` (a ratio, so a loaded machine slows both). Beside it, the time to every
 * worker's line and to the exit.
 */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import type { BenchCase, Figure, MeasureOptions } from "../harness.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "runtime", "dist", "cli.js");
const WORKERS = [1, 2, 4] as const;
/** issue 18: `-w 4` starts within 1.5x of `-w 1`. */
const MAX_RATIO = 1.5;

interface Start {
  /** Milliseconds from spawn to the first output line. */
  readonly firstMs: number;
  /** To the line of the last worker. */
  readonly allMs: number;
  readonly exitMs: number;
}

/** One `waxflow run -w <workers>`; rejects unless every worker printed its line and the run exited 0. */
function start(workers: number): Promise<Start> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, "run", "bench/start-flow.ts", "-w", String(workers)], {
      cwd: ROOT,
      env: { ...process.env, WAXFLOW_QUIET: "true", WAXFLOW_API_PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: string[] = [];
    let firstMs = 0;
    let allMs = 0;
    let rest = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      const now = performance.now() - t0;
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (lines.length === 1) firstMs = now;
        if (lines.length === workers) allMs = now;
      }
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const exitMs = performance.now() - t0;
      const expected = Array.from({ length: workers }, (_, i) => `worker ${i}`);
      if (code !== 0 || JSON.stringify([...lines].sort()) !== JSON.stringify(expected)) {
        reject(new Error(`waxflow run -w ${workers} exited ${code} printing ${JSON.stringify(lines)}: ${stderr}`));
      } else resolve({ firstMs, allMs, exitMs });
    });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export const threadStart: BenchCase = {
  title: "waxflow run -w 1/2/4 (runtime/dist): spawn to first output line; target -w 4 <= 1.5x -w 1",
  targets: {},
  async prepare() {
    const built = spawnSync("npm", ["run", "--silent", "build"], { cwd: ROOT, encoding: "utf8" });
    if (built.status !== 0) throw new Error(`npm run build failed: ${built.stdout}${built.stderr}`);
    return {
      async measure(opts?: MeasureOptions): Promise<readonly Figure[]> {
        const runs = opts?.runs ?? 5;
        // The warm-up also fills Node's compile cache, as any start after the first finds it.
        for (let i = 0; i < (opts?.warmup ?? 2); i++) for (const w of WORKERS) await start(w);
        const starts = new Map<number, Start[]>(WORKERS.map((w) => [w, []]));
        for (let i = 0; i < runs; i++) for (const w of WORKERS) starts.get(w)?.push(await start(w));
        const at = (w: number, pick: (s: Start) => number): number => median((starts.get(w) ?? []).map(pick));
        const figures: Figure[] = [];
        for (const w of WORKERS) {
          figures.push({ name: `-w ${w}: first output`, value: at(w, (s) => s.firstMs), unit: "ms" });
          if (w > 1) figures.push({ name: `-w ${w}: every worker's output`, value: at(w, (s) => s.allMs), unit: "ms" });
          figures.push({ name: `-w ${w}: exit`, value: at(w, (s) => s.exitMs), unit: "ms" });
        }
        const one = at(1, (s) => s.firstMs);
        figures.push({ name: "-w 2 / -w 1, first output", value: at(2, (s) => s.firstMs) / one, unit: "x" });
        figures.push({
          name: "-w 4 / -w 1, first output",
          value: at(4, (s) => s.firstMs) / one,
          unit: "x",
          below: MAX_RATIO,
        });
        return figures;
      },
    };
  },
};
