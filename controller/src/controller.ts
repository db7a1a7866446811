// The operator's controller: the generic runner (kube/runner.ts: watches, work queue,
// workers, retries) driving the Dataflow reconciler (dataflow-reconciler.ts: observe,
// reconcile, execute). This file only puts them together, on one pooled API client.
import type { KubeConfig } from "@kubernetes/client-node";
import { DataflowReconciler, dataflowErrorPolicy } from "./dataflow-reconciler.ts";
import { Kube, PooledKubeConfig } from "./kube/client.ts";
import { PodProxyProcessStatuses, type ProcessStatuses } from "./kube/process-status.ts";
import type { WorkQueue } from "./kube/queue.ts";
import { Runner } from "./kube/runner.ts";
import { PodProxySavepoints, type Savepoints } from "./kube/savepoints.ts";
import type { WatchOptions } from "./kube/watch.ts";
import type { Metrics } from "./metrics.ts";
import type { OperatorSettings } from "./reconcile/reconcile.ts";

export interface ControllerOptions {
  /** Namespaces to watch; all namespaces when undefined or empty. */
  readonly namespaces?: readonly string[];
  /** Dataflows reconciled concurrently (default 32). */
  readonly workers?: number;
  readonly watch?: WatchOptions;
  readonly metrics?: Metrics;
  /** What the operator was installed with: API clients, privileged Dataflows. */
  readonly settings?: OperatorSettings;
  /** How savepoints are asked for (upgradeMode savepoint); default: process 0's API through the pod proxy. */
  readonly savepoints?: Savepoints;
  /** How a process's /status is read (what it restored from); default: its API through the pod proxy. */
  readonly processStatuses?: ProcessStatuses;
}

export class Controller {
  readonly kube: Kube;
  readonly metrics: Metrics;
  readonly queue: WorkQueue;
  readonly #runner: Runner;
  readonly #dataflows: DataflowReconciler;

  constructor(kc: KubeConfig, options: ControllerOptions = {}) {
    const { settings, savepoints, processStatuses, ...loop } = options;
    const pooled = PooledKubeConfig.of(kc);
    this.kube = new Kube(pooled);
    this.#dataflows = new DataflowReconciler(this.kube, {
      ...(settings === undefined ? {} : { settings }),
      savepoints: savepoints ?? new PodProxySavepoints(pooled, this.kube),
      processStatuses: processStatuses ?? new PodProxyProcessStatuses(pooled),
    });
    this.#runner = new Runner(pooled, this.#dataflows, {
      ...loop,
      errorPolicy: dataflowErrorPolicy,
      keyField: "dataflow",
    });
    this.metrics = this.#runner.metrics;
    this.queue = this.#runner.queue;
  }

  /** True once every watch has listed: reconciles read the caches from then on. */
  get synced(): boolean {
    return this.#runner.synced;
  }

  start(): void {
    this.#runner.start();
  }

  async stop(): Promise<void> {
    await this.#runner.stop();
  }

  /** observe -> reconcile -> act for one Dataflow; returns when to look again (ms), if at all. */
  reconcileKey(key: string): Promise<number | undefined> {
    return this.#dataflows.reconcile(key, this.#runner);
  }
}
