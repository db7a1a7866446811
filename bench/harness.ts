/**
 * What a benchmark case is and how one is measured. A case runs the engine on a fixed
 * workload and, where it makes sense, the same computation as a plain loop, so each
 * figure is read beside what this machine and this Node can do at all.
 */

export interface Targets {
  /** The engine must process at least this many input items per second. */
  readonly minItemsPerSec?: number;
  /** engine / loop throughput must be at least this (0.2: at most 5x slower). */
  readonly minRatio?: number;
  /**
   * For cases that time one operation per run (items = 1): the engine's median run must
   * take at most this many seconds. Such cases are shown in seconds per run.
   */
  readonly maxSeconds?: number;
}

/** Tracks the highest RSS and heap seen while a run is under way. */
export class MemoryProbe {
  peakRss = 0;
  peakHeapUsed = 0;
  #timer: NodeJS.Timeout | undefined;

  sample(): void {
    const { rss, heapUsed } = process.memoryUsage();
    if (rss > this.peakRss) this.peakRss = rss;
    if (heapUsed > this.peakHeapUsed) this.peakHeapUsed = heapUsed;
  }

  /** Samples whenever the event loop turns; a synchronous loop must call `sample` itself. */
  start(): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), 5);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}

/**
 * A run that times itself, for work outside this process (child processes, whose
 * start-up is left out): its input items, wall seconds and CPU seconds of the children.
 */
export interface SelfTimed {
  readonly items: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
}

export interface Runners {
  /** One engine run, input production included; throws if the output is wrong. Returns input items. */
  engine(probe: MemoryProbe): Promise<number | SelfTimed>;
  /** The same computation as a plain loop, input and output arrays included. Returns input items. */
  loop?(probe: MemoryProbe): number | SelfTimed | Promise<number | SelfTimed>;
}

export interface Skip {
  readonly skipped: string;
}

/** One figure a case measures, where lower is better, beside its bound if it has one. */
export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  /** The target: value must stay below it. */
  readonly below?: number;
}

/**
 * A case measured once end to end (a system outside this process, too slow to repeat)
 * that reports figures instead of a throughput.
 */
export interface Measurement {
  /** `opts`: the bench's --runs and --warmup, for a measurement that repeats itself. */
  measure(opts?: MeasureOptions): Promise<readonly Figure[]>;
}

export interface BenchCase {
  readonly title: string;
  readonly targets: Targets;
  /**
   * The engine's runs take at least this long in all, when more than the bench's
   * --min-seconds: a target within a few percent of its baseline needs more runs than one
   * with room, for the medians to move less than its margin.
   */
  readonly minSeconds?: number;
  /** Loads what the case needs, or says why it cannot run in this checkout. */
  prepare(): Promise<Runners | Measurement | Skip>;
}

export interface Side {
  /** Median over runs of input items per wall-clock second. */
  readonly itemsPerSec: number;
  /**
   * Median of input items per second of this process's CPU time: less sensitive to other
   * work on the machine, though GC helper threads add to it.
   */
  readonly itemsPerCpuSec: number;
  readonly runsItemsPerSec: number[];
  readonly peakRssBytes: number;
  readonly peakHeapUsedBytes: number;
}

export type Verdict = "PASS" | "FAIL" | "SKIP" | "ERROR";

/**
 * A case in the registry. Its module is imported only when the case runs, so `--filter`
 * skips heavy dependencies and a part that is not built yet skips only its own cases.
 */
export interface CaseEntry {
  /** Short id matched by `--filter`. */
  readonly name: string;
  load(): Promise<BenchCase>;
}

export interface CaseResult {
  readonly name: string;
  readonly title?: string;
  readonly targets?: Targets;
  readonly verdict: Verdict;
  readonly engine?: Side;
  readonly loop?: Side;
  /** engine / loop median throughput. */
  readonly ratio?: number;
  /** Why the verdict is not PASS. */
  readonly reason?: string;
  /** A Measurement's figures. */
  readonly figures?: readonly Figure[];
}

export interface MeasureOptions {
  /** At least this many runs of each side. */
  readonly runs: number;
  readonly warmup: number;
  /**
   * And runs until the engine's side has run this long in all: a case whose runs take a
   * fraction of a second moves by more than its target's margin from run to run on a busy
   * machine, and a median of 5 such runs does too.
   */
  readonly minSeconds: number;
}

/** The most runs a side gets, however short its runs. */
const MAX_RUNS = 200;

// Run with --expose-gc so each run starts from a collected heap; without it figures are noisier.
const collect: () => void = typeof globalThis.gc === "function" ? globalThis.gc : () => {};

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

interface Run {
  /** Wall-clock time of the run. */
  readonly seconds: number;
  readonly itemsPerSec: number;
  readonly itemsPerCpuSec: number;
}

async function timed(
  run: (probe: MemoryProbe) => number | SelfTimed | Promise<number | SelfTimed>,
  probe: MemoryProbe,
): Promise<Run> {
  collect();
  probe.start();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    const result = await run(probe);
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    if (typeof result !== "number") {
      return {
        seconds: result.seconds,
        itemsPerSec: result.items / result.seconds,
        itemsPerCpuSec: result.items / result.cpuSeconds,
      };
    }
    return { seconds: wall, itemsPerSec: result / wall, itemsPerCpuSec: result / ((cpu.user + cpu.system) / 1e6) };
  } finally {
    probe.stop();
  }
}

function side(runs: Run[], probe: MemoryProbe): Side {
  return {
    itemsPerSec: median(runs.map((r) => r.itemsPerSec)),
    itemsPerCpuSec: median(runs.map((r) => r.itemsPerCpuSec)),
    runsItemsPerSec: runs.map((r) => r.itemsPerSec),
    peakRssBytes: probe.peakRss,
    peakHeapUsedBytes: probe.peakHeapUsed,
  };
}

function judge(targets: Targets, engine: Side, ratio: number | undefined): string | undefined {
  const misses: string[] = [];
  if (targets.minItemsPerSec !== undefined && engine.itemsPerSec < targets.minItemsPerSec) {
    misses.push(`engine ${formatRate(engine.itemsPerSec)}/s < ${formatRate(targets.minItemsPerSec)}/s`);
  }
  if (targets.maxSeconds !== undefined && 1 / engine.itemsPerSec > targets.maxSeconds) {
    misses.push(`engine ${(1 / engine.itemsPerSec).toFixed(2)} s > ${targets.maxSeconds} s`);
  }
  if (targets.minRatio !== undefined && ratio !== undefined && ratio < targets.minRatio) {
    misses.push(`engine/loop ${ratio.toFixed(2)} < ${targets.minRatio}`);
  }
  return misses.length === 0 ? undefined : misses.join("; ");
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/**
 * Warms up, then alternates engine and loop runs so drift hits both alike, `opts.runs` of
 * each and more until the engine's have taken `opts.minSeconds`; reports medians.
 */
export async function measure(entry: CaseEntry, opts: MeasureOptions): Promise<CaseResult> {
  let bench: BenchCase;
  try {
    bench = await entry.load();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "ERR_PACKAGE_PATH_NOT_EXPORTED") {
      const what = err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err);
      return { name: entry.name, verdict: "SKIP", reason: `not available: ${what}` };
    }
    return { name: entry.name, verdict: "ERROR", reason: describe(err) };
  }
  const base = { name: entry.name, title: bench.title, targets: bench.targets };
  try {
    const runners = await bench.prepare();
    if ("skipped" in runners) return { ...base, verdict: "SKIP", reason: runners.skipped };
    if ("measure" in runners) {
      const figures = await runners.measure(opts);
      const misses = figures
        .filter((f) => f.below !== undefined && !(f.value < f.below))
        .map((f) => `${f.name} ${formatFigure(f.value)} ${f.unit} >= ${formatFigure(f.below ?? 0)} ${f.unit}`);
      return {
        ...base,
        verdict: misses.length === 0 ? "PASS" : "FAIL",
        figures,
        reason: misses.join("; ") || undefined,
      };
    }
    const { engine, loop } = runners;
    const scratch = new MemoryProbe();
    for (let i = 0; i < opts.warmup; i++) {
      await engine(scratch);
      if (loop !== undefined) await loop(scratch);
    }
    const engineProbe = new MemoryProbe();
    const loopProbe = new MemoryProbe();
    const engineRuns: Run[] = [];
    const loopRuns: Run[] = [];
    let engineSeconds = 0;
    const minSeconds = Math.max(opts.minSeconds, bench.minSeconds ?? 0);
    for (let i = 0; i < MAX_RUNS && (i < opts.runs || engineSeconds < minSeconds); i++) {
      const run = await timed(engine, engineProbe);
      engineRuns.push(run);
      engineSeconds += run.seconds;
      if (loop !== undefined) loopRuns.push(await timed(loop, loopProbe));
    }
    const engineSide = side(engineRuns, engineProbe);
    const loopSide = loop === undefined ? undefined : side(loopRuns, loopProbe);
    const ratio = loopSide === undefined ? undefined : engineSide.itemsPerSec / loopSide.itemsPerSec;
    const miss = judge(bench.targets, engineSide, ratio);
    return {
      ...base,
      verdict: miss === undefined ? "PASS" : "FAIL",
      engine: engineSide,
      loop: loopSide,
      ratio,
      reason: miss,
    };
  } catch (err) {
    return { ...base, verdict: "ERROR", reason: describe(err) };
  }
}

export function formatRate(perSec: number): string {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)}M`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)}k`;
  return perSec.toFixed(0);
}

/** Throws when a run's output is not what the computation must produce. */
export function expectEqual(what: string, actual: unknown, expected: unknown): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/** A figure's value: whole numbers from 100 up, two decimals below (a time ratio of 0.76 is not "1"). */
export function formatFigure(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}
