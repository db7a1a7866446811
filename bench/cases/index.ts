/** Every benchmark case, in the order they run. Add a case with its module here. */
import type { CaseEntry } from "../harness.ts";

export const cases: readonly CaseEntry[] = [
  { name: "map-filter", load: async () => (await import("./map-filter.ts")).mapFilter },
  { name: "stateful-count", load: async () => (await import("./stateful-count.ts")).statefulCount },
  { name: "file-sum", load: async () => (await import("./file-pipeline.ts")).fileSum },
  { name: "file-join", load: async () => (await import("./file-pipeline.ts")).fileJoin },
  { name: "memory-per-key", load: async () => (await import("./memory.ts")).memoryPerKey },
  { name: "count-window", load: async () => (await import("./count-window.ts")).countWindow },
  { name: "step-metrics-map", load: async () => (await import("./step-metrics.ts")).stepMetricsMap },
  { name: "step-metrics-keyed", load: async () => (await import("./step-metrics.ts")).stepMetricsKeyed },
  { name: "recovery-overhead", load: async () => (await import("./recovery.ts")).recoveryOverhead },
  { name: "resume-100k", load: async () => (await import("./recovery.ts")).resume100k },
  { name: "thread-start", load: async () => (await import("./thread-start.ts")).threadStart },
  { name: "scale-workers-2", load: async () => (await import("./scale.ts")).workers2 },
  { name: "scale-workers-2-cpu", load: async () => (await import("./scale.ts")).workers2Cpu },
  { name: "scale-processes-2", load: async () => (await import("./scale.ts")).processes2 },
  { name: "mesh-secret", load: async () => (await import("./scale.ts")).processes2Secret },
  { name: "mesh-tls", load: async () => (await import("./scale.ts")).processes2Tls },
  { name: "image-build", load: async () => (await import("./image-build.ts")).imageBuildWarm },
  { name: "image-build-cold", load: async () => (await import("./image-build.ts")).imageBuildCold },
  { name: "deploy-dry-run", load: async () => (await import("./deploy-dry-run.ts")).deployDryRun },
  { name: "controller", load: async () => (await import("./controller.ts")).controller },
  { name: "state-query", load: async () => (await import("./state-query.ts")).stateQuery },
  { name: "kafka", load: async () => (await import("./kafka.ts")).kafka },
  { name: "backup", load: async () => (await import("./backup.ts")).backup },
];
