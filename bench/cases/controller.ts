/**
 * The controller against a real kube-apiserver (controller/bench/measure.ts): time from
 * creating a Dataflow to its StatefulSet existing, over 100 created at once, and the
 * controller's RSS with 1000 Dataflows. Measured once (about a minute); skipped when the
 * Kubernetes binaries are not built.
 */
import type { BenchCase } from "../harness.ts";

export const controller: BenchCase = {
  title: "controller: create -> StatefulSet (100 at once), RSS with 1000 Dataflows",
  targets: {},
  async prepare() {
    const { missingToolchain } = await import("../../controller/test/harness/apiserver.ts");
    const missing = missingToolchain();
    if (missing !== undefined) return { skipped: `needs a real kube-apiserver: ${missing}` };
    const { measureController, TARGETS } = await import("../../controller/bench/measure.ts");
    return {
      async measure() {
        const { createToStatefulSetMs: latency, rssMb } = await measureController();
        return [
          { name: `create -> StatefulSet p50 (n=${latency.n})`, value: latency.p50, unit: "ms" },
          { name: `create -> StatefulSet p99 (n=${latency.n})`, value: latency.p99, unit: "ms", below: TARGETS.p99Ms },
          { name: `RSS with ${rssMb.dataflows} Dataflows`, value: rssMb.settled, unit: "MB", below: TARGETS.rssMb },
          { name: "RSS idle (before the first Dataflow)", value: rssMb.idle, unit: "MB" },
        ];
      },
    };
  },
};
