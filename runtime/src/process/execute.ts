/**
 * Runs this process's share of a dataflow: W workers, connected to the workers of the
 * other processes through the TCP mesh. Given the dataflow's module, W > 1 workers run
 * as worker threads (threads.ts), each on its own core; otherwise in this thread, taking
 * turns. With recovery, the processes first bring their stores up to date over the mesh
 * (recovery/handoff.ts) and check that the output files they resume are there. Given a
 * log, it tells the start, the cluster formed, the resume and progress. The first
 * failure anywhere — a step here, or a peer process lost — aborts every worker, so a run
 * either completes everywhere or rejects with the cause.
 */
import { StateRouter } from "../api/state.ts";
import { type MeshSecurity, type PeerAddress, ProcessMesh } from "../cluster/mesh.ts";
import type { Dataflow } from "../dataflow.ts";
import { DEFAULT_EPOCH_INTERVAL_MS, DEFAULT_START_TIMEOUT_MS } from "../defaults.ts";
import type { StateStore } from "../engine/state-store.ts";
import {
  clusterFormedLine,
  DEFAULT_PROGRESS_INTERVAL_MS,
  finishedLine,
  type LogLine,
  type Progress,
  progressLine,
  progressOf,
  resumeLine,
  startLine,
} from "../log.ts";
import type { BackupBucket, Backups, RestoreReport } from "../recovery/backup.ts";
import { type BackupConfig, DEFAULT_BACKUP_INTERVAL_MS } from "../recovery/backup-config.ts";
import { committedMessage } from "../recovery/control.ts";
import { resumeProcess } from "../recovery/handoff.ts";
import { checkOutputFiles } from "../recovery/output-files.ts";
import type { Savepoints } from "../recovery/savepoint.ts";
import { appliedStartFrom, clearPartitions, markStartFrom, type StartFrom } from "../recovery/start-from.ts";
import { RecoveryStore, type SnapshotStats } from "../recovery/store.ts";
import { type StartingThread, type ThreadModule, workersInThreads } from "./thread-start.ts";
import { type RegistryJson, runThreads, type WorkerView } from "./threads.ts";
import { startWorker } from "./worker-start.ts";

export { DEFAULT_EPOCH_INTERVAL_MS, DEFAULT_START_TIMEOUT_MS };

/** Where snapshots go and how long they are kept (Bytewax's RecoveryConfig). */
export interface RecoveryConfig {
  /** This process's recovery store: a directory of partitions, made by `waxflow recovery init`. */
  readonly dbDir: string;
  /** Milliseconds snapshots are kept before garbage collection (default 0). */
  readonly backupIntervalMs?: number;
  /** Create the store if the directory holds none (the first start of a pod with an empty volume). */
  readonly init?: boolean;
  /** Drop the state of steps the dataflow no longer has; without it such a store is refused. */
  readonly dropRemovedSteps?: boolean;
  /**
   * Upload a copy of the store every backup interval (which must be > 0) to this bucket,
   * and restore from it when the directory is empty (recovery/backup.ts).
   */
  readonly backup?: BackupConfig;
  /** Told of each backup this process uploaded (bench, metrics). */
  readonly onBackup?: (set: string, bytes: number, seconds: number) => void;
  /**
   * Where to start from, once per value (recovery/start-from.ts): `fresh:<token>` or
   * `savepoint:<id>`; undefined: the directory, or the newest backup set when it is empty.
   */
  readonly startFrom?: StartFrom;
  /** The bucket prefix savepoints are read from (a fork's source's); undefined: `backup.prefix`. */
  readonly savepointPrefix?: string;
}

/** This process's place in a cluster of processes. */
export interface ClusterConfig {
  readonly processId: number;
  /** Every process's cluster address, in process order. */
  readonly addresses: readonly PeerAddress[];
  /** How long to wait for peers, and for holders of missing recovery stores (default 60 s). */
  readonly connectTimeoutMs?: number;
  /** The secret, TLS, listen address, timeouts and refusal reports of the mesh. */
  readonly mesh?: MeshSecurity;
}

export interface ExecuteOptions {
  /** Workers in this process (default 1). */
  readonly workers?: number;
  readonly epochIntervalMs?: number;
  /** Recovery: snapshots every epoch into these partitions, and resume from them. */
  readonly recovery?: RecoveryConfig;
  /** A state store per worker (tests); `recovery` is the usual way. */
  readonly store?: (worker: number) => StateStore;
  /** Omitted: a single process. */
  readonly cluster?: ClusterConfig;
  /**
   * Where `flow` comes from, so that each worker thread can load it: with more than one
   * worker, workers then run as threads. `waxflow run` passes it.
   */
  readonly module?: ThreadModule;
  /** Worker threads started already, loading `module` (cli/prestart.ts): used instead of starting new ones. */
  readonly threads?: readonly StartingThread[];
  readonly signal?: AbortSignal;
  /** Called once the cluster is connected and the workers are built. */
  readonly onStart?: (run: RunningProcess) => void;
  /** Process 0 with a bucket: its savepoints, once the cluster has resumed (the HTTP API serves them). */
  readonly onSavepoints?: (savepoints: Savepoints) => void;
  /** Told what each worker's commit of an epoch cost, with recovery on. */
  readonly onSnapshot?: (stats: SnapshotStats) => void;
  /** Told what an empty recovery directory was restored from (a backup set or a savepoint), before the store opens. */
  readonly onRestore?: (report: RestoreReport) => void;
  /** Where the start, the cluster formed, the resume and progress are told, a line each (`waxflow run`: stderr). */
  readonly log?: LogLine;
  /** Milliseconds between progress lines on `log`; 0 for none (default 30 s). */
  readonly progressIntervalMs?: number;
  /**
   * Count items into each step and follow windowed steps' watermarks (default: on unless
   * the environment has WAXFLOW_STEP_METRICS=false, the switch that measures their cost).
   */
  readonly stepMetrics?: boolean;
}

export interface RunningProcess {
  readonly workers: readonly WorkerView[];
  readonly mesh: ProcessMesh;
  /** The connector metrics of workers in other threads; workers in this thread use its default registry. */
  readonly threadMetrics: () => RegistryJson[];
  /** Answers state queries (GET /state) from the workers that own the keys. */
  readonly state: StateRouter;
}

const SINGLE: ClusterConfig = { processId: 0, addresses: [{ host: "127.0.0.1", port: 0 }] };

export async function execute(flow: Dataflow, opts: ExecuteOptions = {}): Promise<void> {
  const perProcess = opts.workers ?? 1;
  if (!Number.isInteger(perProcess) || perProcess < 1) {
    throw new RangeError(`workers must be a whole number >= 1, got ${perProcess}`);
  }
  const cluster = opts.cluster ?? SINGLE;
  const count = perProcess * cluster.addresses.length;
  const epochIntervalMs = opts.epochIntervalMs ?? DEFAULT_EPOCH_INTERVAL_MS;
  const stepMetrics = opts.stepMetrics ?? process.env.WAXFLOW_STEP_METRICS !== "false";
  const connectTimeoutMs = cluster.connectTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  // With a bucket the backup interval is also how often copies are uploaded: never 0.
  const backupIntervalMs =
    opts.recovery?.backupIntervalMs ?? (opts.recovery?.backup === undefined ? 0 : DEFAULT_BACKUP_INTERVAL_MS);
  if (opts.recovery?.backup !== undefined && backupIntervalMs <= 0) {
    throw new RangeError("backups to a bucket need a backup interval > 0 (-b/--backup-interval)");
  }
  const stderrLine = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  // Loaded only with a bucket: the S3 client is large.
  const backupModule = opts.recovery?.backup === undefined ? undefined : await import("../recovery/backup.ts");
  const bucket: BackupBucket | undefined =
    backupModule !== undefined && opts.recovery?.backup !== undefined
      ? new backupModule.BackupBucket(opts.recovery.backup)
      : undefined;
  const startFrom =
    opts.recovery === undefined ? undefined : await restoreBeforeOpen(opts.recovery, bucket, cluster, opts.onRestore);
  const recovery =
    opts.recovery === undefined
      ? undefined
      : RecoveryStore.open(opts.recovery.dbDir, {
          create: opts.recovery.init,
          snapshotIntervalMs: epochIntervalMs,
          backupIntervalMs,
        });
  // Written once the store is open again: a crash before that applies the value again.
  if (recovery !== undefined && startFrom !== undefined) markStartFrom(recovery.dir, startFrom);
  const abort = new AbortController();
  const signal = opts.signal === undefined ? abort.signal : AbortSignal.any([abort.signal, opts.signal]);
  const log = opts.log;
  const started = Date.now();
  log?.(
    startLine({
      flowId: flow.flowId,
      processId: cluster.processId,
      processes: cluster.addresses.length,
      workersPerProcess: perProcess,
      epochIntervalMs,
      recovery: opts.recovery?.dbDir,
    }),
  );
  const stepIds = (kind: "input" | "output") => new Set(flow.steps.flatMap((s) => (s.kind === kind ? [s.stepId] : [])));
  const [inputs, outputs] = [stepIds("input"), stepIds("output")];
  let running: readonly WorkerView[] = [];
  const current = (): Progress => progressOf(running, inputs, outputs);
  let mesh: ProcessMesh | undefined;
  let progress: NodeJS.Timeout | undefined;
  let router: StateRouter | undefined;
  const route = (workers: readonly WorkerView[], connected: ProcessMesh): StateRouter => {
    router = new StateRouter({ mesh: connected, workers, workersPerProcess: perProcess, store: recovery });
    return router;
  };
  let backups: Backups | undefined;
  try {
    mesh = await ProcessMesh.connect({
      processId: cluster.processId,
      addresses: cluster.addresses,
      workersPerProcess: perProcess,
      flowId: flow.flowId,
      recovery: recovery !== undefined,
      connectTimeoutMs,
      signal,
      ...cluster.mesh,
    });
    const connected = mesh;
    log?.(clusterFormedLine(cluster.addresses.length, Date.now() - started));
    connected.onFailure((err) => abort.abort(err));
    let stores: (local: number) => StateStore | undefined = (local) => opts.store?.(local);
    if (recovery !== undefined) {
      try {
        const resumed = await resumeProcess({
          flow,
          mesh,
          store: recovery,
          workersPerProcess: perProcess,
          timeoutMs: connectTimeoutMs,
          signal,
          fail: (err) => abort.abort(err),
          dropRemovedSteps: opts.recovery?.dropRemovedSteps,
          log: (line) => process.stderr.write(`${line}\n`),
        });
        const { plan } = resumed;
        log?.(
          resumeLine({
            execution: plan.execution,
            resumeEpoch: plan.resumeEpoch,
            resumedFrom: plan.resumedFrom,
            previousProcesses: plan.sources,
            processes: plan.processCount,
            rowsSent: resumed.rowsSent,
            rowsReceived: resumed.rowsReceived,
          }),
        );
        checkOutputFiles({
          flow,
          store: recovery.workerView(),
          processId: cluster.processId,
          workersPerProcess: perProcess,
          processCount: plan.processCount,
          previousProcesses: plan.sources,
          movedHere: resumed.sinkPartitionsMovedHere,
        });
      } catch (err) {
        connected.abort(err instanceof Error ? err.message : String(err));
        throw err;
      }
      if (bucket !== undefined && backupModule !== undefined) {
        const savepoints =
          cluster.processId === 0 && opts.onSavepoints !== undefined
            ? new (await import("../recovery/savepoint.ts")).Savepoints({
                bucket,
                knownFrontier: () => recovery.knownFrontier(),
                // Generous: a set can be skipped while the previous one uploads.
                timeoutMs: Math.max(10 * backupIntervalMs, 120_000),
                log: stderrLine,
              })
            : undefined;
        if (savepoints !== undefined) opts.onSavepoints?.(savepoints);
        const running = new backupModule.Backups({
          bucket,
          store: recovery,
          flowId: flow.flowId,
          processId: cluster.processId,
          processCount: cluster.addresses.length,
          lagEpochs: Math.max(1, Math.ceil(backupIntervalMs / epochIntervalMs)),
          intervalMs: backupIntervalMs,
          log: stderrLine,
          onUploaded: opts.recovery?.onBackup,
          onManifest: savepoints === undefined ? undefined : (manifest) => savepoints.setCompleted(manifest),
        });
        backups = running;
        recovery.onClusterCommit((frontier) => running.clusterCommitted(frontier));
      }
      stores = () =>
        recovery.workerView({
          committed: (worker, frontier) => connected.broadcast(committedMessage(worker, frontier)),
          snapshotted: opts.onSnapshot,
        });
    }
    // Peers collect garbage, and settle transactions, against the slowest worker of the whole cluster.
    const broadcastCommit = (worker: number, frontier: number): void =>
      connected.broadcast(committedMessage(worker, frontier));
    let first: unknown;
    const failed = (err: unknown): void => {
      if (first !== undefined) return;
      first = err;
      abort.abort(err);
    };
    if (opts.module !== undefined && workersInThreads(perProcess, cluster.addresses.length)) {
      const threads = runThreads({
        module: opts.module,
        threads: opts.threads,
        processId: cluster.processId,
        workersPerProcess: perProcess,
        count,
        epochIntervalMs,
        stepMetrics,
        mesh: connected,
        recovery:
          recovery === undefined
            ? undefined
            : {
                dbDir: recovery.dir,
                execution: recovery.execution,
                resumeEpoch: recovery.resumeEpoch,
                snapshotIntervalMs: epochIntervalMs,
              },
        committed: (worker, frontier) => {
          recovery?.observeFrontier(worker, frontier);
          broadcastCommit(worker, frontier);
        },
        onClusterCommit: recovery === undefined ? undefined : (listener) => recovery.onClusterCommit(listener),
        ended: (worker) => recovery?.follow(worker, broadcastCommit),
        signal,
        fail: failed,
        onSnapshot: opts.onSnapshot,
      });
      // A thread that fails to start ends `done` instead.
      await Promise.race([threads.started, threads.done.catch(() => {})]);
      if (first === undefined) {
        const state = route(threads.views, connected);
        opts.onStart?.({ workers: threads.views, mesh: connected, threadMetrics: threads.metrics, state });
        running = threads.views;
        progress = reportProgress(log, opts.progressIntervalMs, current);
      }
      await threads.done.catch(failed);
    } else {
      // Every worker is built, and the API told of them, before any runs.
      const built = Promise.withResolvers<void>();
      const started = Array.from({ length: perProcess }, (_, local) =>
        startWorker(
          flow,
          {
            index: cluster.processId * perProcess + local,
            count,
            epochIntervalMs,
            transport: connected.transport(local),
            backpressure: connected,
            store: stores(local),
            signal,
            stepMetrics,
          },
          { runAfter: built.promise, ended: (w) => recovery?.follow(w.index, broadcastCommit), failed },
        ),
      );
      const workers = started.map((s) => s.worker);
      const state = route(workers, connected);
      opts.onStart?.({ workers, mesh: connected, threadMetrics: () => [], state });
      running = workers;
      progress = reportProgress(log, opts.progressIntervalMs, current);
      built.resolve();
      await Promise.all(started.map((s) => s.done));
    }
    if (first !== undefined) {
      connected.abort(first instanceof Error ? first.message : String(first));
      throw first;
    }
    await connected.finish();
    log?.(finishedLine(current(), Date.now() - started));
  } finally {
    clearInterval(progress);
    router?.close();
    // The upload under way finishes first: its copy thread reads the store's files.
    if (backups !== undefined) await backups.close();
    else bucket?.close();
    mesh?.close();
    recovery?.close();
  }
}

/** Logs a progress line every interval, with what changed since the last one. */
function reportProgress(log: LogLine | undefined, intervalMs: number | undefined, current: () => Progress) {
  const every = intervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  if (log === undefined || every === 0) return undefined;
  let before = current();
  // unref: a progress line must not keep a finished process alive.
  return setInterval(() => {
    const now = current();
    log(progressLine(now, before, every));
    before = now;
  }, every).unref();
}

/**
 * Before the store opens: applies a start-from value the directory has not seen (empties
 * it, then restores the savepoint, or nothing for fresh), else restores the newest backup
 * set into an empty directory. Returns the value applied, for the marker.
 */
async function restoreBeforeOpen(
  recovery: RecoveryConfig,
  bucket: BackupBucket | undefined,
  cluster: ClusterConfig,
  onRestore?: (report: RestoreReport) => void,
): Promise<string | undefined> {
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const { processId } = cluster;
  const processCount = cluster.addresses.length;
  const dir = recovery.dbDir;
  const startFrom = recovery.startFrom;
  const applying = startFrom !== undefined && appliedStartFrom(dir) !== startFrom.value ? startFrom : undefined;
  if (applying !== undefined) clearPartitions(dir);
  if (applying?.kind === "fresh") {
    log(`process ${processId}: starting with an empty store (${applying.value}, applied once)`);
    return applying.value;
  }
  if (bucket === undefined) return applying?.value;
  const backup = await import("../recovery/backup.ts");
  try {
    if (applying?.kind === "savepoint") {
      const prefix = recovery.savepointPrefix;
      const source = prefix === undefined ? bucket : new backup.BackupBucket({ ...bucket.config, prefix });
      try {
        const { restoreSavepoint } = await import("../recovery/savepoint.ts");
        const restored = await restoreSavepoint({ bucket: source, id: applying.id, dir, processId, processCount, log });
        if (restored !== undefined) {
          onRestore?.({ from: `savepoint ${applying.id}`, epoch: restored.epoch, fellBack: restored.fellBack });
          log(
            `process ${processId}: restored the recovery store from savepoint ${applying.id} (backup set ${restored.set}, ` +
              `execution ${restored.execution}, epoch ${restored.epoch}, ${restored.bytes} bytes, ${restored.seconds.toFixed(2)} s)`,
          );
        }
      } finally {
        if (source !== bucket) source.close();
      }
      return applying.value;
    }
    const restored = await backup.restoreIfEmpty({ bucket, dir, processId, processCount, log });
    if (restored !== undefined) {
      onRestore?.({ from: `backup set ${restored.set}`, epoch: restored.epoch, fellBack: restored.fellBack });
      log(
        `process ${processId}: restored the recovery store from backup set ${restored.set} ` +
          `(execution ${restored.execution}, epoch ${restored.epoch}, ${restored.bytes} bytes, ${restored.seconds.toFixed(2)} s)`,
      );
    }
    return undefined;
  } catch (err) {
    bucket.close();
    throw err;
  }
}
