// `npm run bench -w controller`: create-to-StatefulSet latency and controller memory
// against a real kube-apiserver (see measure.ts). Exits 1 when a target is missed.
//   BENCH_DATAFLOWS      Dataflows managed when memory is read (default 1000)
//   BENCH_NODE_FLAGS     the controller's Node flags, space-separated (default: the image's)
import { loadavg } from "node:os";
import { CONTROLLER_NODE_FLAGS, measureController, TARGETS } from "./measure.ts";

const nodeFlags = process.env.BENCH_NODE_FLAGS?.split(" ").filter((f) => f !== "") ?? CONTROLLER_NODE_FLAGS;
const load = loadavg()[0] ?? 0;
const r = await measureController({ total: Number(process.env.BENCH_DATAFLOWS ?? 1000), nodeFlags });
const { p50, p99, n } = r.createToStatefulSetMs;
const { idle, peak, settled, dataflows } = r.rssMb;
const ratio = (value: number, target: number) => `${(value / target).toFixed(2)} of target`;
console.log(
  `controller with node ${nodeFlags.join(" ")}; load average ${load.toFixed(2)} -> ${(loadavg()[0] ?? 0).toFixed(2)}`,
);
console.log(
  `create -> StatefulSet over ${n}: p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms (${ratio(p99, TARGETS.p99Ms)} < ${TARGETS.p99Ms} ms)`,
);
console.log(
  `RSS with ${dataflows} Dataflows: ${settled.toFixed(0)} MB settled, ${peak.toFixed(0)} MB peak, ${idle.toFixed(0)} MB idle (${ratio(settled, TARGETS.rssMb)} < ${TARGETS.rssMb} MB)`,
);
console.log(r.metrics);
const ok = p99 < TARGETS.p99Ms && settled < TARGETS.rssMb;
console.log(ok ? "controller bench: targets met" : "controller bench: TARGET MISSED");
process.exitCode = ok ? 0 : 1;
