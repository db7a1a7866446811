/**
 * A worker thread (threads.ts): loads the dataflow module itself (a Dataflow holds
 * functions, which cannot be sent between threads) as soon as it starts, waits for its
 * ThreadData (thread-start.ts), then starts one worker over ThreadLinks (worker-start.ts)
 * and reports to the process's thread until its inputs end or it fails.
 */
import { createRequire } from "node:module";
import { inspect } from "node:util";
import { parentPort, workerData } from "node:worker_threads";
import type { Worker } from "../engine/worker.ts";
import type { RecoveryStore } from "../recovery/store.ts";
import { loadDataflow } from "./load.ts";
import { type RegistryJson, type ThreadData, ThreadLinks } from "./thread-links.ts";
import type { ThreadStart } from "./thread-start.ts";
import { startWorker, type WorkerPlace } from "./worker-start.ts";

const { module } = workerData as ThreadStart;
// Loaded while the process connects and resumes; a failure is reported once there is a link to report it on.
const loading = loadDataflow(module.path, module.exportName, module.cwd);
loading.catch(() => {});
const data = await new Promise<ThreadData>((resolve) => parentPort?.once("message", resolve));
const require = createRequire(import.meta.url);
const PROM_CLIENT = require.resolve("prom-client");

/**
 * What connectors registered on this thread's default registry. prom-client is most of
 * what a thread would import at its start, and only a connector with metrics loads it:
 * until one has, the registry is empty and prom-client stays unloaded.
 */
async function connectorMetrics(): Promise<RegistryJson> {
  if (!(PROM_CLIENT in require.cache)) return [];
  const { register } = await import("prom-client");
  return register.getMetricsAsJSON();
}

const abort = new AbortController();
const links = new ThreadLinks(data, (reason) => abort.abort(new Error(reason)));
const fail = async (err: unknown): Promise<void> => {
  // Loaded only on failure: every thread of a start pays for what it imports.
  const { describeFailure } = await import("../failure.ts");
  links.post({ k: "failed", line: describeFailure(err), detail: inspect(err, { depth: 6 }) });
};
let store: RecoveryStore | undefined;
let stats: NodeJS.Timeout | undefined;
try {
  const flow = await loading;
  const r = data.recovery;
  if (r !== undefined) {
    // Loaded only with recovery: every thread of a start pays for what it imports.
    const { RecoveryStore } = await import("../recovery/store.ts");
    // The process's own connection holds the directory's lock.
    store = RecoveryStore.open(r.dbDir, { snapshotIntervalMs: r.snapshotIntervalMs, backupIntervalMs: 0, lock: false });
    store.joinExecution(r.execution, r.resumeEpoch);
  }
  // Connectors register their metrics on this thread's default registry, which no server reads: it travels here.
  const report = async (worker: Worker): Promise<void> => {
    const metrics = await connectorMetrics();
    links.post({ k: "stats", epoch: worker.epoch, steps: worker.stepCounts(), lastCommit: worker.lastCommit, metrics });
  };
  const place: WorkerPlace = {
    index: data.index,
    count: data.count,
    epochIntervalMs: data.epochIntervalMs,
    transport: links,
    backpressure: links,
    store:
      store === undefined
        ? undefined
        : {
            ...store.workerView({
              committed: (worker, frontier) => links.post({ k: "committed", worker, frontier }),
              snapshotted: (s) => links.post({ k: "snapshot", stats: s }),
            }),
            // This thread's store hears only its own worker's commits; the process's hears all.
            onClusterCommit: (listener) => links.onClusterCommit(listener),
          },
    signal: abort.signal,
    stepMetrics: data.stepMetrics,
  };
  await startWorker(flow, place, {
    started: (worker) => {
      links.answerQueries((query) => worker.query(query));
      stats = setInterval(() => void report(worker), data.statsMs);
      links.post({ k: "started" });
    },
    ended: async (worker) => {
      await report(worker);
      links.post({ k: "done" });
    },
    failed: fail,
  }).done;
} catch (err) {
  await fail(err);
} finally {
  clearInterval(stats);
  store?.close();
  links.close();
}
