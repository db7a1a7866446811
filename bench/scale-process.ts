/**
 * One process of the `processes-2` bench case: `scale-process.ts <processId> <"h:p;h:p">
 * <items>`. Runs its share of the keyed count and prints a ProcessReport as JSON, timed
 * from the moment the cluster formed.
 */
import { parseAddresses } from "../runtime/src/cluster/mesh.ts";
import { execute } from "../runtime/src/engine/execute.ts";
import { type ProcessReport, scaleFlow, Tally } from "./cases/scale.ts";

const [processId, addresses, items] = process.argv.slice(2);
const cluster = {
  processId: Number(processId),
  addresses: parseAddresses(String(addresses)),
  connectTimeoutMs: 30_000,
};
// A warm-up run first, as the harness gives the in-process cases: a cold JIT would
// measure start-up instead of the steady state.
await execute(scaleFlow(Number(items) / 2, new Tally()), { cluster });
const tally = new Tally();
let startedAt = 0;
let cpu0 = process.cpuUsage();
await execute(scaleFlow(Number(items), tally), {
  cluster,
  onStart: () => {
    startedAt = Date.now();
    cpu0 = process.cpuUsage();
  },
});
const endedAt = Date.now();
const cpu = process.cpuUsage(cpu0);
const report: ProcessReport = {
  count: tally.count,
  max: tally.max,
  startedAt,
  endedAt,
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
};
process.stdout.write(JSON.stringify(report));
