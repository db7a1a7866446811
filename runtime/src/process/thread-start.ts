/**
 * A worker thread from its start until the process tells it what to run. Booting a thread
 * and loading the dataflow module in it take about as long as the process's own start, so
 * `waxflow run` starts its threads first thing (cli/prestart.ts) and they load the module
 * while the process loads the runtime, connects and resumes; runThreads (threads.ts) then
 * posts each its ThreadData. Kept apart from threads.ts so that starting one loads little.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { type MessagePort, Worker as NodeWorker } from "node:worker_threads";

/** Where the dataflow comes from, for each worker thread to load it (a Dataflow holds functions: it cannot be sent). */
export interface ThreadModule {
  readonly path: string;
  readonly exportName?: string;
  readonly cwd: string;
}

/**
 * Whether a process runs its workers in threads: with more than one, and in a cluster even
 * one (its snapshots and user code then never hold up the process's heartbeats, or peers
 * would take it for lost).
 */
export function workersInThreads(workersPerProcess: number, processCount: number): boolean {
  return workersPerProcess > 1 || processCount > 1;
}

/** A worker thread's `workerData`: what it loads while it waits for its ThreadData. */
export interface ThreadStart {
  readonly module: ThreadModule;
}

/** The thread entry, beside this file: .ts when run from source, .js when built. */
const ENTRY = new URL(`./thread-entry${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

interface ThreadEvents {
  error(err: Error): void;
  exit(code: number): void;
}

/** A started worker thread; what it does before `run` (a failure, its exit) is kept until then. */
export class StartingThread {
  readonly module: ThreadModule;
  readonly #thread: NodeWorker;
  readonly #early: Array<(on: ThreadEvents) => void> = [];
  #on: ThreadEvents | undefined;

  constructor(module: ThreadModule) {
    this.module = module;
    this.#thread = new NodeWorker(ENTRY, { workerData: { module } satisfies ThreadStart });
    this.#thread.on("error", (err) => this.#emit((on) => on.error(err)));
    this.#thread.once("exit", (code) => this.#emit((on) => on.exit(code)));
  }

  /** Whether `run` was called: a thread that was not is still waiting, and `release` ends it. */
  get running(): boolean {
    return this.#on !== undefined;
  }

  /** Posts the thread its ThreadData (`data`, with `transfer`: the ports in it); `on` hears its failure and exit. */
  run(data: unknown, transfer: readonly MessagePort[], on: ThreadEvents): void {
    this.#on = on;
    this.#thread.postMessage(data, [...transfer]);
    for (const event of this.#early.splice(0)) event(on);
  }

  terminate(): Promise<number> {
    return this.#thread.terminate();
  }

  /** Ends the thread unless it runs: the process did not need it after all (a failure before the workers started). */
  release(): void {
    if (!this.running) void this.#thread.terminate();
  }

  #emit(event: (on: ThreadEvents) => void): void {
    if (this.#on === undefined) this.#early.push(event);
    else event(this.#on);
  }
}
