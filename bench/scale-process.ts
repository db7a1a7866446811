/**
 * One process of the scale bench cases: `scale-process.ts <processId> <"h:p;h:p"> <items>
 * <workers> <work> [mesh]`, mesh being `insecure` (the handshake with a well-known key),
 * `secret` (the default) or `tls` (the secret, and TLS-PSK for the traffic). Runs its share of the keyed count (bench/scale-flow.ts; with more than one
 * worker, as worker threads). Each worker prints its share of the output; the last line
 * is a ProcessReport, timed from the moment the cluster formed.
 */
import { join } from "node:path";
import { type MeshSecurity, parseAddresses } from "../runtime/src/cluster/mesh.ts";
import { execute } from "../runtime/src/process/execute.ts";
import type { ProcessReport } from "./cases/scale.ts";
import { flow } from "./scale-flow.ts";

const [processId, addresses, items, workers, work = "0", meshMode = "secret"] = process.argv.slice(2);
const secret = Buffer.from("bench-cluster-secret-0123456789ab");
const modes: Record<string, MeshSecurity> = {
  insecure: { secret: "insecure" },
  secret: { secret },
  tls: { secret, tls: true },
};
const mesh = modes[meshMode];
if (mesh === undefined) throw new RangeError(`unknown mesh mode ${meshMode}: ${Object.keys(modes).join(", ")}`);
const cluster = {
  processId: Number(processId),
  addresses: parseAddresses(String(addresses)),
  connectTimeoutMs: 30_000,
  mesh,
};
const module = { path: join(import.meta.dirname, "scale-flow.ts"), exportName: "flow", cwd: process.cwd() };
let startedAt = 0;
let cpu0 = process.cpuUsage();
const run = async (n: number, report: boolean): Promise<void> => {
  // Worker threads start with a copy of this environment.
  process.env.BENCH_SCALE_ITEMS = String(n);
  process.env.BENCH_SCALE_REPORT = report ? "1" : "0";
  process.env.BENCH_SCALE_WORK = work;
  await execute(flow(), {
    cluster,
    workers: Number(workers),
    module,
    onStart: () => {
      startedAt = Date.now();
      cpu0 = process.cpuUsage();
    },
  });
};
// A warm-up run first, as the harness gives the in-process cases: a cold JIT would
// measure start-up instead of the steady state.
await run(Number(items) / 2, false);
await run(Number(items), true);
const endedAt = Date.now();
const cpu = process.cpuUsage(cpu0);
const report: ProcessReport = { startedAt, endedAt, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
process.stdout.write(`${JSON.stringify(report)}\n`);
