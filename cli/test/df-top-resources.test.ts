// Each pod's CPU and memory in df top: metrics-server's PodMetrics when served, else the
// process's own /metrics figures rated between two refreshes. Pure.
import { expect, test } from "vitest";
import { kubeQuantity, podResources, podUsages, processFigures } from "../src/ui/resources.ts";

test("Kubernetes quantities: CPU in nano-, micro- and millicores or cores, memory in binary or decimal units", () => {
  expect(kubeQuantity("250m")).toBe(0.25);
  expect(kubeQuantity("1234567n")).toBeCloseTo(0.001234567, 12);
  expect(kubeQuantity("2")).toBe(2);
  expect(kubeQuantity("1536Ki")).toBe(1536 * 1024);
  expect(kubeQuantity("128Mi")).toBe(128 * 2 ** 20);
  expect(kubeQuantity("1G")).toBe(1e9);
  expect(kubeQuantity("lots")).toBeNaN();
});

test("PodMetrics items: the containers' usage summed per pod; an unreadable item is left out", () => {
  const usages = podUsages([
    {
      metadata: { name: "counts-0" },
      containers: [
        { name: "waxflow", usage: { cpu: "480000000n", memory: "150Mi" } },
        { name: "sidecar", usage: { cpu: "20m", memory: "10Mi" } },
      ],
    },
    { metadata: { name: "counts-1" }, containers: [{ usage: { cpu: "a lot", memory: "1Mi" } }] },
    null,
  ]);
  expect([...usages]).toEqual([["counts-0", { cpuCores: 0.5, memoryBytes: 160 * 2 ** 20 }]]);
  expect(podResources(usages.get("counts-0"), undefined, undefined)).toEqual({
    cpuCores: 0.5,
    memoryMiB: 160,
    resourcesFrom: "metrics.k8s.io",
  });
});

test("a process's /metrics: CPU seconds and resident bytes; an older runtime without them gives none", () => {
  const text = [
    "# HELP process_cpu_seconds_total User and system CPU time spent by this process (every thread), in seconds.",
    "# TYPE process_cpu_seconds_total counter",
    "process_cpu_seconds_total 12.25",
    "process_resident_memory_bytes 104857600",
    'waxflow_kafka_consumer_lag{step_id="f.in",topic="t",partition="0",worker="0"} 3',
  ].join("\n");
  const figures = processFigures(text, 5000);
  expect(figures).toEqual({ cpuSeconds: 12.25, residentBytes: 100 * 2 ** 20, at: 5000 });
  expect(processFigures("waxflow_worker_epoch 3\n", 5000)).toBeUndefined();
  // 0.75 s of CPU over 1.5 s: half a core; nothing to rate on the first reading.
  expect(podResources(undefined, figures, { cpuSeconds: 11.5, residentBytes: 0, at: 3500 })).toEqual({
    cpuCores: 0.5,
    memoryMiB: 100,
    resourcesFrom: "process",
  });
  expect(podResources(undefined, figures, undefined).cpuCores).toBeNull();
  expect(podResources(undefined, undefined, undefined)).toEqual({
    cpuCores: null,
    memoryMiB: null,
    resourcesFrom: null,
  });
});
