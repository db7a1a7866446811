/**
 * The resume protocol, run over the mesh before any data flows. Each process (and each
 * holder: a process beyond the cluster's count serving the store of a process that is no
 * longer in it) sends its store's execution records to process 0, which plans the
 * resume (plan.ts) and sends the plan to all. Then every store of the execution resumed
 * from sends the newest snapshot of each (step, key) before the resume epoch to the
 * process whose worker owns it now, followed by "resumed". A process writes what it
 * receives into its own store and, once every source has said "resumed", records the
 * new execution: from then on its own volume holds everything it needs.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type MeshSecurity, type PeerAddress, PeerLostError, ProcessMesh } from "../cluster/mesh.ts";
import type { Dataflow } from "../dataflow.ts";
import { listPartitions, type PartitionLists, statefulSteps, stateOwners } from "../engine/owners.ts";
import { type ControlFrame, encodeControl, receiveControl } from "./control.ts";
import { MissingProcessStoreError, RemovedStepsError, ReplacedProcessStoreError } from "./errors.ts";
import { type PlanOutcome, planResume, type ResumePlan, type SnapshotRow, type StoreRecords } from "./plan.ts";
import type { RecoveryStore } from "./store.ts";

const LEADER = 0;
/** Rows per frame: big enough to amortize framing, small enough to interleave with heartbeats. */
const ROWS_PER_FRAME = 1000;

/** What the resume protocol uses of the mesh and of the store: its seams, so its frame orders can be tested one by one. */
export type ResumeMesh = Pick<
  ProcessMesh,
  | "processId"
  | "processCount"
  | "onHolderLost"
  | "setControlHandler"
  | "sendControl"
  | "broadcast"
  | "writable"
  | "refuse"
  | "acceptHolders"
>;
export type ResumeStore = Pick<
  RecoveryStore,
  | "dir"
  | "records"
  | "prepare"
  | "removedSteps"
  | "dropSteps"
  | "newestBelow"
  | "handedOff"
  | "writeRows"
  | "begin"
  | "observeFrontier"
>;

export interface ResumeOptions {
  readonly flow: Dataflow;
  readonly mesh: ResumeMesh;
  readonly store: ResumeStore;
  readonly workersPerProcess: number;
  /** How long process 0 waits for holders of missing stores, in ms. */
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** Fails the run: control frames keep coming after the resume, and handling one can fail. */
  readonly fail: (err: unknown) => void;
  /** Drop the state of steps the dataflow no longer has, rather than refuse to start. */
  readonly dropRemovedSteps?: boolean;
  /** Told of state dropped on purpose. */
  readonly log?: (line: string) => void;
}

/** What this process's resume did: for its log line and for the checks made before data flows. */
export interface ResumeSummary {
  readonly plan: ResumePlan;
  /** Snapshots this process sent to others, and received from them. */
  readonly rowsSent: number;
  readonly rowsReceived: number;
  /** Sink partitions (step id -> partition names) whose positions came here from another process's store. */
  readonly sinkPartitionsMovedHere: ReadonlyMap<string, ReadonlySet<string>>;
}

/**
 * Brings this process's store up to date for the execution about to start and records
 * it. Keeps handling the mesh's control frames afterwards: peers' commits (for garbage
 * collection) and holders that arrive late (they are released).
 */
export async function resumeProcess(opts: ResumeOptions): Promise<ResumeSummary> {
  return new ProcessResume(opts, await listPartitions(opts.flow)).run();
}

class ProcessResume {
  readonly #opts: ResumeOptions;
  readonly #me: number;
  readonly #offered = new Map<number, StoreRecords>();
  readonly #holders = new Set<number>();
  readonly #resumed = new Set<number>();
  /** Rows that came before the plan, by sender: written once the plan says the sender is a source. */
  readonly #early: Array<[number, SnapshotRow[]]> = [];
  readonly #done = Promise.withResolvers<ResumeSummary>();
  readonly #sinkSteps: ReadonlySet<string>;
  readonly #sinkPartitionsMovedHere = new Map<string, Set<string>>();
  #rowsSent = 0;
  #rowsReceived = 0;
  #plan: ResumePlan | undefined;
  #blocked: Extract<PlanOutcome, { kind: "blocked" }> | undefined;
  #sent = false;
  #recorded = false;

  readonly #partitions: PartitionLists;

  constructor(opts: ResumeOptions, partitions: PartitionLists) {
    this.#opts = opts;
    this.#partitions = partitions;
    this.#me = opts.mesh.processId;
    this.#sinkSteps = new Set(opts.flow.steps.flatMap((s) => (s.kind === "output" ? [s.stepId] : [])));
  }

  async run(): Promise<ResumeSummary> {
    const { mesh, store, signal } = this.#opts;
    const onAbort = (): void => this.#done.reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    mesh.onHolderLost((holder, reason) => this.#holderLost(holder, reason));
    const role = { processId: this.#me, holder: false, workersPerProcess: this.#opts.workersPerProcess };
    receiveControl(mesh, role, (from, frame) => {
      try {
        this.#receive(from, frame);
      } catch (err) {
        this.#done.reject(err);
        this.#opts.fail(err);
      }
    });
    const timer = this.#me === LEADER ? setTimeout(() => this.#timedOut(), this.#opts.timeoutMs).unref() : undefined;
    try {
      const records = store.records(this.#me);
      if (this.#me === LEADER) this.#receive(LEADER, { kind: "records", records });
      else mesh.sendControl(LEADER, encodeControl({ kind: "records", records }));
      return await this.#done.promise;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  #receive(from: number, frame: ControlFrame): void {
    switch (frame.kind) {
      case "records":
        if (frame.records.process !== from) this.#refuse(from, `records of process ${frame.records.process}`);
        else this.#records(from, frame.records);
        break;
      case "plan":
        if (this.#plan !== undefined) this.#refuse(from, "a second resume plan");
        else this.#apply(frame.plan);
        break;
      case "rows":
        if (this.#plan === undefined) this.#early.push([from, frame.rows]);
        else this.#writeRows(from, frame.rows);
        break;
      case "resumed":
        this.#resumed.add(from);
        this.#finishIfComplete();
        break;
      case "committed":
        this.#opts.store.observeFrontier(frame.worker, frame.frontier);
        break;
      case "released":
        break;
    }
  }

  /**
   * Only a store the plan resumes from hands rows over, and only until it said "resumed"
   * and this process recorded the execution: anything else would be state nobody snapshotted.
   * Rows held from before the plan came (`early`) preceded their sender's "resumed" on its
   * connection, even when that "resumed" too came before the plan: a holder hears the plan
   * from process 0 and may hand its rows over before process 0's plan reaches this process.
   */
  #writeRows(from: number, rows: SnapshotRow[], early = false): void {
    const plan = this.#plan;
    if (plan === undefined || from >= plan.sources || (!early && this.#resumed.has(from)) || this.#recorded) {
      this.#refuse(from, `snapshot rows it does not hold for execution ${plan?.execution ?? "?"}`);
      return;
    }
    this.#received(rows);
    this.#opts.store.writeRows(rows);
  }

  #refuse(from: number, what: string): void {
    const who = from >= this.#opts.mesh.processCount ? `holder ${from}` : `process ${from}`;
    this.#opts.mesh.refuse(from, "role", `${who} sent ${what}`);
  }

  #records(from: number, records: StoreRecords): void {
    const holder = from >= this.#opts.mesh.processCount;
    if (holder) {
      this.#holders.add(from);
      // A holder whose store is not needed, or no longer needed, can go.
      const plan = this.#plan;
      if (plan !== undefined && (from >= plan.sources || this.#recorded)) this.#release(from);
    }
    if (this.#me !== LEADER || this.#plan !== undefined) return;
    this.#offered.set(from, records);
    this.#tryPlan();
  }

  /** Process 0 decides for everyone, so processes that saw holders at different moments cannot disagree. */
  #tryPlan(): void {
    const { mesh, workersPerProcess } = this.#opts;
    for (let i = 0; i < mesh.processCount; i++) if (!this.#offered.has(i)) return;
    const outcome = planResume(this.#offered, { processCount: mesh.processCount, workersPerProcess });
    if (outcome.kind === "blocked") {
      this.#blocked = outcome;
      if (outcome.missing.length === 0) throw replacedError(outcome);
      mesh.acceptHolders();
      return;
    }
    const message = encodeControl({ kind: "plan", plan: outcome.plan });
    mesh.broadcast(message);
    for (const holder of this.#holders) if (holder < outcome.plan.sources) mesh.sendControl(holder, message);
    this.#apply(outcome.plan);
  }

  #apply(plan: ResumePlan): void {
    const { store } = this.#opts;
    this.#plan = plan;
    store.prepare(plan.resumeEpoch, this.#me >= plan.sources);
    this.#checkRemovedSteps();
    for (const [from, rows] of this.#early.splice(0)) this.#writeRows(from, rows, true);
    for (const holder of this.#holders) if (holder >= plan.sources) this.#release(holder);
    // In a cluster of one, every row is already where it belongs.
    const { byProcess, notMine } =
      this.#me < plan.sources && plan.processCount > 1
        ? collectRows(this.#opts.flow, this.#partitions, store, plan, this.#me)
        : { byProcess: new Map<number, SnapshotRow[]>(), notMine: [] };
    store.handedOff(plan.resumeEpoch, notMine);
    for (const rows of byProcess.values()) this.#rowsSent += rows.length;
    sendRows(this.#opts.mesh, byProcess).then(
      () => {
        this.#opts.mesh.broadcast(encodeControl({ kind: "resumed" }));
        this.#sent = true;
        this.#finishIfComplete();
      },
      (err: unknown) => this.#done.reject(err),
    );
  }

  /** State of a renamed or removed step is never dropped unless asked: the rest of the dataflow would resume without it. */
  #checkRemovedSteps(): void {
    const { store, flow } = this.#opts;
    const removed = store.removedSteps(statefulSteps(flow));
    if (removed.length === 0) return;
    if (this.#opts.dropRemovedSteps !== true) throw removedStepsError(store.dir, removed);
    store.dropSteps(removed.map((r) => r.stepId));
    this.#opts.log?.(
      `recovery: dropped the state of removed step(s) ${describeSteps(removed)} from ${store.dir}, as asked`,
    );
  }

  #finishIfComplete(): void {
    const plan = this.#plan;
    if (plan === undefined || !this.#sent || this.#recorded) return;
    for (let source = 0; source < plan.sources; source++) {
      if (source !== this.#me && !this.#resumed.has(source)) return;
    }
    this.#opts.store.begin(
      {
        execution: plan.execution,
        processIndex: this.#me,
        processCount: plan.processCount,
        workersPerProcess: plan.workersPerProcess,
        resumeEpoch: plan.resumeEpoch,
        stores: plan.stores,
      },
      plan.resumedFrom,
    );
    this.#recorded = true;
    for (const holder of this.#holders) this.#release(holder);
    this.#done.resolve({
      plan,
      rowsSent: this.#rowsSent,
      rowsReceived: this.#rowsReceived,
      sinkPartitionsMovedHere: this.#sinkPartitionsMovedHere,
    });
  }

  /** Rows only ever come from other processes' stores (and holders'). */
  #received(rows: readonly SnapshotRow[]): void {
    this.#rowsReceived += rows.length;
    for (const [stepId, key] of rows) {
      if (!this.#sinkSteps.has(stepId)) continue;
      const parts = this.#sinkPartitionsMovedHere.get(stepId);
      if (parts === undefined) this.#sinkPartitionsMovedHere.set(stepId, new Set([key]));
      else parts.add(key);
    }
  }

  #release(holder: number): void {
    this.#opts.mesh.sendControl(holder, encodeControl({ kind: "released" }));
  }

  #holderLost(holder: number, reason: string): void {
    this.#holders.delete(holder);
    const plan = this.#plan;
    if (plan === undefined) {
      // Its store may not be planned with: it could be gone for good.
      if (this.#me === LEADER) this.#offered.delete(holder);
    } else if (holder < plan.sources && !this.#resumed.has(holder) && !this.#recorded) {
      this.#done.reject(new PeerLostError(`holder ${holder} was lost before it handed its store over: ${reason}`));
    }
  }

  #timedOut(): void {
    if (this.#plan !== undefined) return;
    const blocked = this.#blocked;
    if (blocked === undefined) {
      const waiting = Array.from({ length: this.#opts.mesh.processCount }, (_, i) => i).filter(
        (i) => !this.#offered.has(i),
      );
      this.#done.reject(
        new PeerLostError(
          `timed out after ${this.#opts.timeoutMs} ms waiting for the recovery records of process(es) ${waiting.join(", ")}`,
        ),
      );
      return;
    }
    this.#done.reject(missingError(blocked, this.#opts.mesh.processCount, this.#opts.timeoutMs));
  }
}

function list(indexes: readonly number[]): string {
  return indexes.join(", ");
}

function missingError(blocked: Extract<PlanOutcome, { kind: "blocked" }>, clusterSize: number, timeoutMs: number) {
  const { missing, processCount, execution } = blocked;
  const first = missing[0] ?? clusterSize;
  const last = missing[missing.length - 1] ?? first;
  const replaced =
    blocked.replaced.length === 0
      ? ""
      : ` (and the store of process(es) ${list(blocked.replaced)} is not the one it ran with)`;
  return new MissingProcessStoreError(
    `cannot resume: execution ${execution} ran ${processCount} processes, and the recovery store of process(es) ` +
      `${list(missing)} is neither in this cluster of ${clusterSize} nor offered by a holder within ${timeoutMs / 1000} s${replaced}; ` +
      `run with ${processCount} processes again, or start holders for processes ${first}..${last} ` +
      "(`waxflow run <module> --holder -i <index> -a <this cluster's addresses> -r <that process's directory>`); " +
      "on Kubernetes the controller does this",
    missing,
  );
}

function replacedError(blocked: Extract<PlanOutcome, { kind: "blocked" }>): ReplacedProcessStoreError {
  return new ReplacedProcessStoreError(
    `cannot resume: the recovery store of process(es) ${list(blocked.replaced)} is not the one it ran with in ` +
      `execution ${blocked.execution}: its volume was emptied or replaced. Restore it from a backup; ` +
      "waxflow does not start over and drop that state",
    blocked.replaced,
  );
}

function describeSteps(removed: readonly { readonly stepId: string; readonly keys: number }[]): string {
  return removed.map((r) => `${JSON.stringify(r.stepId)} (${r.keys} key${r.keys === 1 ? "" : "s"})`).join(", ");
}

function removedStepsError(
  dir: string,
  removed: readonly { readonly stepId: string; readonly keys: number }[],
): RemovedStepsError {
  return new RemovedStepsError(
    `cannot resume: the recovery store in ${dir} holds state of step(s) ${describeSteps(removed)} that the dataflow ` +
      "no longer has (renamed or removed), while its other steps would resume; give the steps their old ids back, " +
      "or drop that state deliberately with --drop-removed-steps (WAXFLOW_DROP_REMOVED_STEPS=true)",
    removed.map((r) => r.stepId),
  );
}

/**
 * This store's rows for other processes, by destination, read in one pass before
 * anything is received into it; and the (step, key)s of every row that is not this
 * process's any more (sent, or of no step), for the store to drop later.
 */
function collectRows(
  flow: Dataflow,
  partitions: PartitionLists,
  store: ResumeStore,
  plan: ResumePlan,
  me: number,
): { byProcess: Map<number, SnapshotRow[]>; notMine: (readonly [string, string])[] } {
  const owner = stateOwners(flow, partitions, plan.processCount * plan.workersPerProcess);
  const byProcess = new Map<number, SnapshotRow[]>();
  const notMine: (readonly [string, string])[] = [];
  for (const row of store.newestBelow(plan.resumeEpoch)) {
    const worker = owner(row[0], row[1]);
    const process = worker === undefined ? undefined : Math.floor(worker / plan.workersPerProcess);
    if (process === me) continue;
    notMine.push([row[0], row[1]]);
    // State of a step that is gone, or of a partition no longer listed, has no owner: as in one process, it is not loaded.
    if (process === undefined) continue;
    const rows = byProcess.get(process);
    if (rows === undefined) byProcess.set(process, [row]);
    else rows.push(row);
  }
  return { byProcess, notMine };
}

async function sendRows(mesh: ResumeMesh, byProcess: ReadonlyMap<number, SnapshotRow[]>): Promise<void> {
  for (const [process, rows] of byProcess) {
    for (let i = 0; i < rows.length; i += ROWS_PER_FRAME) {
      mesh.sendControl(process, encodeControl({ kind: "rows", rows: rows.slice(i, i + ROWS_PER_FRAME) }));
      await mesh.writable(process);
    }
  }
}

export interface HoldOptions {
  readonly flow: Dataflow;
  readonly store: RecoveryStore;
  /** The holder's index: the index of the process whose store this was. */
  readonly processId: number;
  /** The cluster's processes. */
  readonly addresses: readonly PeerAddress[];
  readonly connectTimeoutMs?: number;
  readonly mesh?: MeshSecurity;
  readonly signal: AbortSignal;
  /** Told what the holder handed over, and why a session with the cluster ended before the store was released. */
  readonly log?: (line: string) => void;
  /** Let the state of steps the dataflow no longer has go with this store, rather than stop the cluster. */
  readonly dropRemovedSteps?: boolean;
}

/**
 * Serves a store to a cluster that no longer includes its process: offers the records,
 * sends the rows the plan asks for, and resolves once every cluster process has
 * recorded an execution that no longer needs it. A cluster that fails first is dialed
 * again: it will need the store when it restarts.
 */
export async function holdStore(opts: HoldOptions): Promise<void> {
  const partitions = await listPartitions(opts.flow);
  for (;;) {
    opts.signal.throwIfAborted();
    let mesh: ProcessMesh | undefined;
    try {
      mesh = await ProcessMesh.connect({
        processId: opts.processId,
        addresses: opts.addresses,
        workersPerProcess: 0,
        flowId: opts.flow.flowId,
        recovery: true,
        holder: true,
        connectTimeoutMs: opts.connectTimeoutMs,
        signal: opts.signal,
        ...opts.mesh,
      });
      await holdSession(opts, partitions, mesh);
      await mesh.finish();
      return;
    } catch (err) {
      if (opts.signal.aborted) throw opts.signal.reason;
      if (err instanceof RemovedStepsError) {
        // Dialing again would not change the store: stop the cluster with the reason.
        mesh?.abort(err.message);
        throw err;
      }
      opts.log?.(`${(err as Error).message}; connecting to the cluster again`);
    } finally {
      mesh?.close();
    }
    await sleep(1000, undefined, { signal: opts.signal });
  }
}

function holdSession(opts: HoldOptions, partitions: PartitionLists, mesh: ProcessMesh): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const processes = opts.addresses.length;
  const released = new Set<number>();
  let planned = false;
  mesh.onFailure(reject);
  const onAbort = (): void => reject(opts.signal.reason);
  opts.signal.addEventListener("abort", onAbort, { once: true });
  receiveControl(mesh, { processId: opts.processId, holder: true, workersPerProcess: 0 }, (from, frame) => {
    if (frame.kind === "released") {
      released.add(from);
      if (released.size === processes) resolve();
    } else if (frame.kind === "plan" && !planned) {
      planned = true;
      let rows: Map<number, SnapshotRow[]>;
      try {
        const removed = opts.store.removedSteps(statefulSteps(opts.flow));
        if (removed.length > 0 && opts.dropRemovedSteps !== true) throw removedStepsError(opts.store.dir, removed);
        // A holder's store leaves the cluster with it: nothing to drop.
        rows = collectRows(opts.flow, partitions, opts.store, frame.plan, opts.processId).byProcess;
      } catch (err) {
        reject(err);
        return;
      }
      sendRows(mesh, rows).then(() => {
        const resumed = encodeControl({ kind: "resumed" });
        for (let p = 0; p < processes; p++) mesh.sendControl(p, resumed);
        const sent = [...rows.values()].reduce((n, r) => n + r.length, 0);
        opts.log?.(
          `handed ${sent} snapshot(s) over to process(es) ${[...rows.keys()].join(", ") || "none"} for execution ${frame.plan.execution}`,
        );
      }, reject);
    }
  });
  const records = opts.store.records(opts.processId);
  const offer = encodeControl({ kind: "records", records });
  for (let p = 0; p < processes; p++) mesh.sendControl(p, offer);
  return promise.finally(() => opts.signal.removeEventListener("abort", onAbort));
}
