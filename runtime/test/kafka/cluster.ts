/**
 * `waxflow run` processes for the Kafka kill tests, all started through `launch`, the
 * one place a run's flags and environment are decided.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { freePorts } from "../support/ports.ts";
import { childProcesses, type Exit, type Run } from "../support/processes.ts";
import { TEST_SECRET } from "../support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FLOW = "runtime/test/kafka/count-flow.ts";

export interface CountCluster {
  /** Starts `count` processes (-w 2, 0.5 s snapshots); `holders` more serve their old stores. */
  start(count: number, holders?: number): Promise<Run[]>;
  /** SIGKILLs process `i` and waits until every process of the run has exited. */
  killOne(runs: readonly Run[], i: number): Promise<Exit[]>;
  stopAll(runs: readonly Run[]): Promise<void>;
}

export function countCluster(env: Record<string, string>): CountCluster {
  const processes = childProcesses();
  let root: string | undefined;
  const store = (i: number): string => {
    root ??= processes.tempDir("waxflow-kafka-count-");
    const dir = join(root, `process-${i}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const launch = (args: readonly string[]): Run =>
    processes.start([CLI, "run", FLOW, ...args], {
      cwd: ROOT,
      // Unsupervised: a kill stops every process and the test restarts them all, as the
      // kubelet would restart pods whose processes exit (fate-sharing).
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: "0",
        WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        WAXFLOW_SUPERVISE: "false",
        ...env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
  return {
    async start(count, holders = 0) {
      const ports = await freePorts(count);
      const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
      const runs = Array.from({ length: count }, (_, i) =>
        launch(["-i", String(i), "-a", addresses, "-w", "2", "-r", store(i), "--recovery-init", "-s", "0.5"]),
      );
      for (let h = 0; h < holders; h++)
        runs.push(launch(["-i", String(count + h), "-a", addresses, "--holder", "-r", store(count + h)]));
      return runs;
    },
    async killOne(runs, i) {
      runs[i]?.child.kill("SIGKILL");
      const timer = setTimeout(() => {
        for (const r of runs) r.child.kill("SIGKILL");
      }, 15_000);
      const exits = await Promise.all(runs.map((r) => r.exit));
      clearTimeout(timer);
      return exits;
    },
    async stopAll(runs) {
      for (const r of runs) r.child.kill("SIGKILL");
      await Promise.all(runs.map((r) => r.exit));
    },
  };
}
