// The controller binary (src/main.ts) against a real kube-apiserver, as the controller
// image runs it: the time from creating a Dataflow to its StatefulSet existing (p50, p99
// over a burst of Dataflows created at once), and the controller's resident memory once
// it manages many. Used by `npm run bench -w controller` and the root `npm run bench`.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { PooledKubeConfig } from "../src/kube/client.ts";
import { ResilientWatch } from "../src/kube/watch.ts";
import { NODE_FLAGS } from "../src/node-flags.ts";
import { freePort, startCluster } from "../test/harness/apiserver.ts";

export const TARGETS = { p99Ms: 1000, rssMb: 200 } as const;
/** As the image runs the controller, with the heap a 256 MiB memory limit leaves it. */
export const CONTROLLER_NODE_FLAGS = [...NODE_FLAGS, "--max-old-space-size=128"];

export interface ControllerBenchOptions {
  /** Dataflows the controller manages when its memory is read. */
  readonly total?: number;
  readonly nodeFlags?: readonly string[];
}

export interface ControllerBenchResult {
  readonly createToStatefulSetMs: { readonly p50: number; readonly p99: number; readonly n: number };
  readonly rssMb: {
    readonly idle: number;
    readonly peak: number;
    readonly settled: number;
    readonly dataflows: number;
  };
  /** The controller's own /metrics lines on reconciles and memory, for the record. */
  readonly metrics: string;
}

const NS = "bench";
const WARM_UP = 10;
/** Dataflows created at once; their create-to-StatefulSet times give p50 and p99. */
const BURST = 100;
const IMAGE = `registry.local/bench@sha256:${"d".repeat(64)}`;
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return line ? Number(line[1]) / 1024 : Number.NaN;
}

export async function measureController(options: ControllerBenchOptions = {}): Promise<ControllerBenchResult> {
  const total = options.total ?? 1000;
  const cluster = await startCluster();
  const kc = PooledKubeConfig.of(cluster.kubeConfig());
  const port = await freePort();
  const controller = spawn(
    process.execPath,
    [...(options.nodeFlags ?? CONTROLLER_NODE_FLAGS), fileURLToPath(new URL("../src/main.ts", import.meta.url))],
    {
      env: {
        ...process.env,
        KUBECONFIG: cluster.kubeconfigPath,
        PROBE_PORT: String(port),
        LEADER_ELECT: "false",
        WATCH_NAMESPACES: NS,
      },
      stdio: ["ignore", "ignore", "ignore"],
    },
  );
  const pid = controller.pid ?? 0;
  const seen = new Map<string, number>();
  const stsWatch = new ResilientWatch(
    kc,
    { apiVersion: "apps/v1", kind: "StatefulSet", plural: "statefulsets", namespace: NS },
    (_type, obj: KubernetesObject) => {
      const name = obj.metadata?.name;
      if (name !== undefined && !seen.has(name)) seen.set(name, performance.now());
    },
  );
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(pid));
  }, 200);
  try {
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (i > 300) throw new Error("the controller did not become healthy");
      await sleep(100);
    }
    stsWatch.start();
    while (!stsWatch.synced) await sleep(50);

    const custom = kc.makeApiClient(CustomObjectsApi);
    const created = new Map<string, number>();
    const createMany = async (from: number, to: number, concurrency: number) => {
      let next = from;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < to) {
            const name = `df-${next++}`;
            created.set(name, performance.now());
            await custom.createNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              plural: PLURAL,
              namespace: NS,
              body: {
                apiVersion: `${GROUP}/${VERSION}`,
                kind: "Dataflow",
                metadata: { name },
                spec: { image: IMAGE, module: "/app/flow.js" },
              },
            });
          }
        }),
      );
    };
    const waitAll = async (n: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (seen.size < n) {
        if (Date.now() > deadline) throw new Error(`only ${seen.size}/${n} StatefulSets after ${timeoutMs} ms`);
        await sleep(50);
      }
    };

    const idle = rssMb(pid);
    // The API server is still busy publishing the CRD's OpenAPI for a few seconds after
    // it is installed; a first few Dataflows wait that out, so the burst times the controller.
    await createMany(0, WARM_UP, 1);
    await waitAll(WARM_UP, 60_000);
    await sleep(2000);
    await createMany(WARM_UP, WARM_UP + BURST, 4);
    await waitAll(WARM_UP + BURST, 60_000);
    const latencies = [...created]
      .slice(WARM_UP)
      .map(([name, t]) => (seen.get(name) ?? Number.NaN) - t)
      .sort((a, b) => a - b);
    await createMany(WARM_UP + BURST, Math.max(total, WARM_UP + BURST), 8);
    await waitAll(total, 600_000);
    await sleep(5000); // status writes and requeues settle
    const settled = rssMb(pid);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return {
      createToStatefulSetMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), n: BURST },
      rssMb: { idle, peak: Math.max(peak, settled), settled, dataflows: total },
      metrics: text
        .split("\n")
        .filter((l) =>
          /^(waxflow_controller_(reconcile_total|reconcile_errors_total|reconcile_duration_seconds_(sum|count))|nodejs_heap_size_used_bytes|process_resident_memory_bytes)/.test(
            l,
          ),
        )
        .join("\n"),
    };
  } finally {
    clearInterval(sampler);
    // SIGTERM first: a controller run with --cpu-prof writes its profile as it exits.
    const exited = new Promise((r) => controller.once("exit", r));
    controller.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
    controller.kill("SIGKILL");
    await stsWatch.stop();
    await cluster.stop();
  }
}
