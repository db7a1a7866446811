/**
 * `npm run bench` (its flags: USAGE below): runs the benchmark cases in this process and
 * prints, per case, engine and plain-loop throughput, their ratio, peak memory and the
 * verdict against the case's targets. Exits 1 if any case fails its targets or its output
 * check, 2 on a wrong flag.
 */
import { availableParallelism, loadavg } from "node:os";
import { parseArgs } from "node:util";
import { cases } from "./cases/index.ts";
import { type CaseResult, formatFigure, formatRate, measure, type Targets } from "./harness.ts";

const USAGE = "npm run bench -- [--filter TEXT] [--json] [--runs N] [--min-seconds S] [--warmup N]";

/** A wrong flag ends the bench with one line that names it, and the usage. */
function usage(problem: string): never {
  console.error(`bench: ${problem}\nusage: ${USAGE}`);
  process.exit(2);
}

/** The flags; a wrong one ends the bench (parseArgs names it). */
function parse() {
  try {
    return parseArgs({
      options: {
        filter: { type: "string", short: "f" },
        json: { type: "boolean", default: false },
        runs: { type: "string", default: "5" },
        "min-seconds": { type: "string", default: "5" },
        warmup: { type: "string", default: "2" },
      },
    }).values;
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
}

const args = parse();

function count(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) usage(`--${flag} must be a whole number, got ${JSON.stringify(value)}`);
  return n;
}

const runs = Math.max(1, count("runs", args.runs));
const minSeconds = Number(args["min-seconds"]);
if (!(minSeconds >= 0)) usage(`--min-seconds must be a number of seconds, got ${JSON.stringify(args["min-seconds"])}`);
const warmup = count("warmup", args.warmup);
const filter = args.filter;
const selected = cases.filter((c) => filter === undefined || c.name.includes(filter));
if (selected.length === 0) {
  usage(`no case matches --filter ${filter}; cases: ${cases.map((c) => c.name).join(", ")}`);
}

const mb = (bytes: number | undefined): string => (bytes === undefined ? "-" : `${(bytes / 2 ** 20).toFixed(0)}`);
const rate = (perSec: number | undefined): string => (perSec === undefined ? "-" : `${formatRate(perSec)}/s`);

function target(t: Targets | undefined): string {
  if (t === undefined) return "-";
  const parts: string[] = [];
  if (t.minItemsPerSec !== undefined) parts.push(`>=${formatRate(t.minItemsPerSec)}/s`);
  if (t.minRatio !== undefined) parts.push(`ratio>=${t.minRatio}`);
  if (t.maxSeconds !== undefined) parts.push(`<=${t.maxSeconds} s`);
  return parts.join(", ") || "-";
}

// Cases that time one operation per run show seconds per run instead of a rate.
function perRun(perSec: number | undefined): string {
  if (perSec === undefined) return "-";
  return perSec > 1 ? `${(1000 / perSec).toFixed(perSec > 100 ? 1 : 0)} ms` : `${(1 / perSec).toFixed(2)} s`;
}

function row(r: CaseResult): string[] {
  const shown = r.targets?.maxSeconds === undefined ? rate : perRun;
  return [
    r.name,
    shown(r.engine?.itemsPerSec),
    shown(r.loop?.itemsPerSec),
    `${shown(r.engine?.itemsPerCpuSec)} / ${shown(r.loop?.itemsPerCpuSec)}`,
    r.ratio === undefined ? "-" : r.ratio.toFixed(2),
    target(r.targets),
    r.verdict,
    `${mb(r.engine?.peakRssBytes)} / ${mb(r.loop?.peakRssBytes)}`,
    `${mb(r.engine?.peakHeapUsedBytes)} / ${mb(r.loop?.peakHeapUsedBytes)}`,
  ];
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  const line = (r: string[]): string => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join("  ");
  const [head, ...body] = rows;
  return [line(head ?? []), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

const environment = {
  node: process.version,
  v8: process.versions.v8,
  platform: `${process.platform}-${process.arch}`,
  cpus: availableParallelism(),
  loadAverage1mStart: loadavg()[0] ?? 0,
  gcExposed: typeof globalThis.gc === "function",
  runs,
  minSeconds,
  warmup,
};
const log = (line: string): void => {
  if (!args.json) console.log(line);
};
log(`waxflow bench: Node ${environment.node} (V8 ${environment.v8}), ${environment.platform}`);
log(
  `median of at least ${runs} runs and ${minSeconds} s of the engine's, after ${warmup} warm-up${environment.gcExposed ? "" : " (no --expose-gc: noisier)"}`,
);
log(`${environment.cpus} CPUs, load average ${environment.loadAverage1mStart.toFixed(2)}\n`);

const results: CaseResult[] = [];
const started = performance.now();
for (const bench of selected) {
  if (!args.json) process.stderr.write(`  ${bench.name} ...\n`);
  results.push(await measure(bench, { runs, warmup, minSeconds }));
}
const seconds = (performance.now() - started) / 1000;
// Other work on the machine slows both sides of a case alike; absolute rates suffer more than ratios.
const loadAverage1mEnd = loadavg()[0] ?? 0;

if (args.json) {
  console.log(JSON.stringify({ environment: { ...environment, loadAverage1mEnd }, seconds, results }, null, 2));
} else {
  const head = [
    "case",
    "engine",
    "loop",
    "per CPU-s eng/loop",
    "engine/loop",
    "target",
    "result",
    "peak RSS MB eng/loop",
    "peak heap MB eng/loop",
  ];
  log(table([head, ...results.map(row)]));
  log("");
  const figures = results.flatMap((r) =>
    (r.figures ?? []).map((f) => [
      r.name,
      f.name,
      `${formatFigure(f.value)} ${f.unit}`,
      f.below === undefined ? "-" : `< ${formatFigure(f.below)} ${f.unit}`,
      f.below === undefined ? "-" : (f.value / f.below).toFixed(2),
    ]),
  );
  if (figures.length > 0) log(`${table([["case", "figure", "value", "target", "value/target"], ...figures])}\n`);
  for (const r of results) if (r.reason !== undefined) log(`${r.name}: ${r.verdict}: ${r.reason}`);
  log(`total ${seconds.toFixed(1)} s, load average at end ${loadAverage1mEnd.toFixed(2)}`);
  if (loadAverage1mEnd > environment.cpus)
    log("the machine was busy with other work: absolute rates are low, ratios hold better");
}
process.exitCode = results.some((r) => r.verdict === "FAIL" || r.verdict === "ERROR") ? 1 : 0;
