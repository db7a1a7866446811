/**
 * Scaling the keyed stateful count (keyOn + statefulMap, 2M items over 10k keys, read
 * from two source partitions) beyond one worker. `workers-2`: one process of two workers,
 * which run as worker threads as under `waxflow run -w 2`; `processes-2`: two processes
 * on localhost over the TCP mesh. Both run in child processes (bench/scale-process.ts),
 * timed from the moment the cluster has formed (start-up left out). The "loop" column of
 * both is the same dataflow on one worker in this process, so the ratio is the speed-up.
 * Each item costs little here, about what moving it to another thread costs; `workers-2-cpu`
 * gives the stateful step CPU-bound work, where threads pay off.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Dataflow } from "waxflow";
import type { FixedPartitionedSource, StatefulSourcePartition } from "waxflow/inputs";
import * as op from "waxflow/operators";
import type { DynamicSink, StatelessSinkPartition } from "waxflow/outputs";
import { clusterMain } from "waxflow/testing";
import { output } from "../../runtime/test/support/output.ts";
import { freePorts } from "../../runtime/test/support/ports.ts";
import { type BenchCase, expectEqual, type SelfTimed } from "../harness.ts";

export const N = 2_000_000;
const KEYS = 10_000;
const PARTS = 2;
const BATCH = 10_000;

/** Partition `r<p>` generates users `u<i mod KEYS>` for every i < n with i mod PARTS = p; its state is i. */
class RangeSource implements FixedPartitionedSource<string, number> {
  readonly n: number;
  constructor(n: number) {
    this.n = n;
  }

  listParts(): string[] {
    return Array.from({ length: PARTS }, (_, p) => `r${p}`);
  }

  buildPart(_step: string, part: string, resume: number | undefined): StatefulSourcePartition<string, number> {
    let i = resume ?? Number(part.slice(1));
    return {
      nextBatch: () => {
        if (i >= this.n) return null;
        const batch: string[] = [];
        for (; i < this.n && batch.length < BATCH; i += PARTS) batch.push(`u${i % KEYS}`);
        return batch;
      },
      snapshot: () => i,
    };
  }
}

/**
 * Counts outputs and keeps the highest count: every item counted once makes it N / KEYS.
 * `onClose` hears each worker's share (worker threads report theirs through it).
 */
export class Tally implements DynamicSink<[string, number]> {
  count = 0;
  max = 0;
  readonly onClose: ((share: { count: number; max: number }) => void) | undefined;
  constructor(onClose?: (share: { count: number; max: number }) => void) {
    this.onClose = onClose;
  }

  build(): StatelessSinkPartition<[string, number]> {
    const share = { count: 0, max: 0 };
    return {
      writeBatch: (batch) => {
        share.count += batch.length;
        this.count += batch.length;
        for (const [, n] of batch) {
          if (n > share.max) share.max = n;
          if (n > this.max) this.max = n;
        }
      },
      close: () => this.onClose?.(share),
    };
  }
}

/** `work`: rounds of arithmetic per item in the stateful step, standing in for user code that costs CPU. */
export function scaleFlow(n: number, sink: Tally, work = 0): Dataflow {
  const flow = new Dataflow("bench_scale");
  const keyed = op.keyOn("key", op.input("inp", flow, new RangeSource(n)), (user) => user);
  const counts = op.statefulMap("count", keyed, (state: number | undefined, _user: string): [number, number] => {
    const next = (state ?? 0) + 1;
    let h = next;
    for (let i = 0; i < work; i++) h = (Math.imul(h, 31) + i) | 0;
    // Never true (h is an integer): it keeps the loop from being optimized away.
    if (h === 0.5) throw new Error("unreachable");
    return [next, next];
  });
  op.output("out", counts, sink);
  return flow;
}

/** A run's size: items, and rounds of work per item. */
interface Load {
  readonly items: number;
  readonly work: number;
}
const LIGHT: Load = { items: N, work: 0 };
const CPU_BOUND: Load = { items: 400_000, work: 2_000 };

function check(what: string, load: Load, count: number, max: number): void {
  expectEqual(`${what} [outputs, highest count]`, [count, max], [load.items, load.items / KEYS]);
}

async function inProcess(workers: number, load: Load): Promise<number> {
  const tally = new Tally();
  await clusterMain(scaleFlow(load.items, tally, load.work), { workersPerProcess: workers });
  check(`${workers} worker(s)`, load, tally.count, tally.max);
  return load.items;
}

/** What bench/scale-process.ts prints when its share of the run ends. */
export interface ProcessReport {
  /** Wall clock (ms) when the cluster had formed, and when the run ended. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly cpuSeconds: number;
}

const SCRIPT = join(import.meta.dirname, "..", "scale-process.ts");

/** A process's report and its workers' shares of the output, [count, max]. */
async function runProcess(
  processId: number,
  addresses: string,
  workers: number,
  load: Load,
  mesh: MeshMode,
): Promise<ProcessReport & { shares: [number, number][] }> {
  const child = spawn(
    process.execPath,
    [
      "--conditions=waxflow-source",
      SCRIPT,
      String(processId),
      addresses,
      String(load.items),
      String(workers),
      String(load.work),
      mesh,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const { code, stdout, stderr } = await output(child);
  if (code !== 0) throw new Error(`bench process ${processId} exited ${code}: ${stderr}`);
  const lines = stdout.trim().split("\n");
  const report = JSON.parse(lines.pop() ?? "") as ProcessReport;
  const shares = lines.map((line) => (JSON.parse(line) as { share: [number, number] }).share);
  return { ...report, shares };
}

/** How the processes' mesh is secured (bench/scale-process.ts). */
type MeshMode = "insecure" | "secret" | "tls";

/** `processes` child processes of `workers` workers each. */
async function children(processes: number, workers: number, load: Load, mesh: MeshMode = "secret"): Promise<SelfTimed> {
  const addresses = (await freePorts(processes)).map((p) => `127.0.0.1:${p}`).join(";");
  const reports = await Promise.all(
    Array.from({ length: processes }, (_, i) => runProcess(i, addresses, workers, load, mesh)),
  );
  const shares = reports.flatMap((r) => r.shares);
  check(
    `${processes} process(es) x ${workers} worker(s)`,
    load,
    shares.reduce((n, [count]) => n + count, 0),
    Math.max(...shares.map(([, max]) => max)),
  );
  const seconds = (Math.max(...reports.map((r) => r.endedAt)) - Math.min(...reports.map((r) => r.startedAt))) / 1000;
  return { items: load.items, seconds, cpuSeconds: reports.reduce((s, r) => s + r.cpuSeconds, 0) };
}

export const workers2: BenchCase = {
  title: "keyed stateful count, 2M items: 1 process x 2 workers (threads); loop: 1 worker",
  targets: {},
  async prepare() {
    return { engine: () => children(1, 2, LIGHT), loop: () => inProcess(1, LIGHT) };
  },
};

export const workers2Cpu: BenchCase = {
  title:
    "the same count with 2000 rounds of arithmetic per item (CPU-bound user code), 400k items: 2 threads; loop: 1 worker",
  targets: {},
  async prepare() {
    return { engine: () => children(1, 2, CPU_BOUND), loop: () => inProcess(1, CPU_BOUND) };
  },
};

export const processes2: BenchCase = {
  title: "keyed stateful count, 2M items: 2 processes x 1 worker on localhost (TCP); loop: 1 worker",
  targets: {},
  async prepare() {
    return { engine: () => children(2, 1, LIGHT), loop: () => inProcess(1, LIGHT) };
  },
};

/**
 * What securing the mesh costs: the 2-process count with the cluster secret (handshake
 * only: after it, frames are as before) and with TLS-PSK on every byte, each against the
 * same run with the handshake under a well-known key (`--insecure-cluster`), in the same
 * bench run. The ratio is secured / insecure throughput.
 */
export const processes2Secret: BenchCase = {
  title: "2 processes x 1 worker, 2M items, mesh authenticated with the cluster secret; loop: --insecure-cluster",
  targets: { minRatio: 0.8 },
  async prepare() {
    return { engine: () => children(2, 1, LIGHT, "secret"), loop: () => children(2, 1, LIGHT, "insecure") };
  },
};

export const processes2Tls: BenchCase = {
  title: "2 processes x 1 worker, 2M items, mesh authenticated and encrypted (TLS-PSK); loop: --insecure-cluster",
  targets: { minRatio: 0.5 },
  async prepare() {
    return { engine: () => children(2, 1, LIGHT, "tls"), loop: () => children(2, 1, LIGHT, "insecure") };
  },
};
