// Each pod's CPU and memory for `df top`: from the metrics.k8s.io API when the cluster
// serves it (metrics-server measures the whole pod), else from the runtime's own process
// metrics on /metrics, the CPU rated over the refresh interval. Pure functions of what was read.

/** The Prometheus process metrics of one /metrics answer, and when it was read. */
export interface ProcessFigures {
  readonly cpuSeconds: number;
  readonly residentBytes: number;
  /** Milliseconds since the Unix epoch. */
  readonly at: number;
}

/** What metrics-server measured of a pod, summed over its containers. */
export interface PodUsage {
  readonly cpuCores: number;
  readonly memoryBytes: number;
}

export type ResourcesSource = "metrics.k8s.io" | "process";

export interface PodResources {
  /** Cores in use; null before two readings of a process's CPU time, or without either source. */
  readonly cpuCores: number | null;
  readonly memoryMiB: number | null;
  readonly resourcesFrom: ResourcesSource | null;
}

const sample = (text: string, name: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  const value = line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(" ") + 1));
  return Number.isFinite(value) ? value : undefined;
};

/** `process_cpu_seconds_total` and `process_resident_memory_bytes` of a /metrics answer; undefined without them (an older runtime). */
export function processFigures(text: string, at: number): ProcessFigures | undefined {
  const cpuSeconds = sample(text, "process_cpu_seconds_total");
  const residentBytes = sample(text, "process_resident_memory_bytes");
  if (cpuSeconds === undefined || residentBytes === undefined) return undefined;
  return { cpuSeconds, residentBytes, at };
}

const SUFFIXES: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** A Kubernetes quantity as a number: `250m` is 0.25, `1536Ki` is 1572864; NaN when it is none. */
export function kubeQuantity(quantity: string): number {
  const m = /^([0-9.]+(?:e[0-9]+)?)([a-zA-Z]*)$/.exec(quantity.trim());
  const factor = m === null ? undefined : SUFFIXES[m[2] as string];
  return m === null || factor === undefined ? Number.NaN : Number(m[1]) * factor;
}

interface PodMetricsItem {
  readonly metadata?: { readonly name?: string };
  readonly containers?: readonly { readonly usage?: { readonly cpu?: string; readonly memory?: string } }[];
}

/** PodMetrics items by pod name, their containers' usage summed; items it cannot read are left out. */
export function podUsages(items: readonly unknown[]): Map<string, PodUsage> {
  const usages = new Map<string, PodUsage>();
  for (const item of items as PodMetricsItem[]) {
    const name = item?.metadata?.name;
    if (typeof name !== "string" || !Array.isArray(item.containers)) continue;
    let cpuCores = 0;
    let memoryBytes = 0;
    for (const c of item.containers) {
      cpuCores += kubeQuantity(c.usage?.cpu ?? "");
      memoryBytes += kubeQuantity(c.usage?.memory ?? "");
    }
    if (Number.isFinite(cpuCores) && Number.isFinite(memoryBytes)) usages.set(name, { cpuCores, memoryBytes });
  }
  return usages;
}

const MiB = 2 ** 20;
const round = (n: number, places: number): number => Math.round(n * 10 ** places) / 10 ** places;

/**
 * A pod's CPU and memory: metrics-server's usage when there is one, else the process's
 * figures, its CPU as the time it used between the `before` reading and this one divided
 * by the time between them (none when its CPU time went down: a new process).
 */
export function podResources(
  usage: PodUsage | undefined,
  figures: ProcessFigures | undefined,
  before: ProcessFigures | undefined,
): PodResources {
  if (usage !== undefined) {
    return {
      cpuCores: round(usage.cpuCores, 3),
      memoryMiB: round(usage.memoryBytes / MiB, 1),
      resourcesFrom: "metrics.k8s.io",
    };
  }
  if (figures === undefined) return { cpuCores: null, memoryMiB: null, resourcesFrom: null };
  const seconds = before === undefined ? 0 : (figures.at - before.at) / 1000;
  const used = before === undefined ? -1 : figures.cpuSeconds - before.cpuSeconds;
  return {
    cpuCores: seconds > 0 && used >= 0 ? round(used / seconds, 3) : null,
    memoryMiB: round(figures.residentBytes / MiB, 1),
    resourcesFrom: "process",
  };
}
