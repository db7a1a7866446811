// `npm run bench -w controller`: the controller binary (src/main.ts) against a real
// kube-apiserver. Reports the time from creating a Dataflow to its StatefulSet existing
// (p50, p99 over 100 Dataflows created at once) and the controller's resident memory
// once it manages 1000 Dataflows. Targets: p99 < 1 s, memory < 200 MB. Exits 1 on a miss.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { CoreV1Api, CustomObjectsApi, type KubernetesObject } from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { ResilientWatch } from "../src/kube/watch.ts";
import { startCluster } from "../test/harness/apiserver.ts";

const NS = "bench";
const IMAGE = `registry.local/bench@sha256:${"d".repeat(64)}`;
const FIRST = 100;
const TOTAL = Number(process.env.BENCH_DATAFLOWS ?? 1000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

const rssMb = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return line ? Number(line[1]) / 1024 : Number.NaN;
};

const cluster = await startCluster();
const kc = cluster.kubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
await core.createNamespace({ body: { metadata: { name: NS } } });

const port = await freePort();
// As the controller image runs it: a heap sized for the container, so V8 collects instead of growing.
const heapMb = process.env.BENCH_CONTROLLER_HEAP_MB ?? "128";
const controller = spawn(
  process.execPath,
  [`--max-old-space-size=${heapMb}`, fileURLToPath(new URL("../src/main.ts", import.meta.url))],
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
let stsWatch: ResilientWatch | undefined;

try {
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (i > 300) throw new Error("controller did not become healthy");
    await sleep(100);
  }

  const seen = new Map<string, number>();
  stsWatch = new ResilientWatch(
    kc,
    { apiVersion: "apps/v1", kind: "StatefulSet", plural: "statefulsets", namespace: NS },
    (_type, obj: KubernetesObject) => {
      const name = obj.metadata?.name;
      if (name !== undefined && !seen.has(name)) seen.set(name, performance.now());
    },
  );
  stsWatch.start();
  while (!stsWatch.synced) await sleep(50);

  const created = new Map<string, number>();
  async function createMany(from: number, to: number, concurrency: number): Promise<void> {
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
  }
  async function waitAll(n: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (seen.size < n) {
      if (Date.now() > deadline) throw new Error(`only ${seen.size}/${n} StatefulSets after ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  const rssIdle = rssMb(pid);
  await createMany(0, FIRST, 4);
  await waitAll(FIRST, 60_000);
  const latencies = [...created].map(([name, t]) => (seen.get(name) ?? Number.NaN) - t).sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);

  await createMany(FIRST, TOTAL, 8);
  await waitAll(TOTAL, 600_000);
  await sleep(5000); // let status writes and requeues settle
  const rss = rssMb(pid);

  const results = {
    createToStatefulSetMs: { p50: Math.round(p50), p99: Math.round(p99), n: FIRST, target: "p99 < 1000" },
    controllerRssMb: { idle: Math.round(rssIdle), dataflows: TOTAL, rss: Math.round(rss), target: "< 200" },
  };
  console.log(JSON.stringify(results, null, 2));
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  console.log(
    metrics
      .split("\n")
      .filter((l) =>
        /^(waxflow_controller_(reconcile_total|reconcile_errors_total|reconcile_duration_seconds_(sum|count))|nodejs_heap_size_used_bytes|process_resident_memory_bytes)/.test(
          l,
        ),
      )
      .join("\n"),
  );
  const ok = p99 < 1000 && rss < 200;
  console.log(ok ? "controller bench: targets met" : "controller bench: TARGET MISSED");
  process.exitCode = ok ? 0 : 1;
} finally {
  controller.kill("SIGKILL");
  await stsWatch?.stop();
  await cluster.stop();
}
