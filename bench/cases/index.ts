/** Every benchmark case, in the order they run. Add a case with its module here. */
import type { CaseEntry } from "../harness.ts";

export const cases: readonly CaseEntry[] = [
  { name: "map-filter", load: async () => (await import("./map-filter.ts")).mapFilter },
  { name: "stateful-count", load: async () => (await import("./stateful-count.ts")).statefulCount },
  { name: "count-window", load: async () => (await import("./count-window.ts")).countWindow },
  { name: "recovery-overhead", load: async () => (await import("./recovery.ts")).recoveryOverhead },
  { name: "resume-100k", load: async () => (await import("./recovery.ts")).resume100k },
];
