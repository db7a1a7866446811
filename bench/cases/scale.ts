/**
 * Scaling the keyed stateful count (keyOn + statefulMap, 2M items over 10k keys, read
 * from two source partitions) beyond one worker. `workers-2`: two workers in one process;
 * `processes-2`: two processes on localhost over the TCP mesh, timed from the moment the
 * cluster has formed (process start-up left out). The "loop" column of both is the same
 * dataflow on one worker, so the ratio is the speed-up. Workers of one process share its
 * thread: a second worker adds exchange work and no CPU, so expect a ratio below 1 there.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Dataflow } from "waxflow";
import type { FixedPartitionedSource, StatefulSourcePartition } from "waxflow/inputs";
import * as op from "waxflow/operators";
import type { DynamicSink, StatelessSinkPartition } from "waxflow/outputs";
import { clusterMain } from "waxflow/testing";
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

/** Counts outputs and keeps the highest count: every item counted once makes it N / KEYS. */
export class Tally implements DynamicSink<[string, number]> {
  count = 0;
  max = 0;

  build(): StatelessSinkPartition<[string, number]> {
    return {
      writeBatch: (batch) => {
        this.count += batch.length;
        for (const [, n] of batch) if (n > this.max) this.max = n;
      },
    };
  }
}

export function scaleFlow(n: number, sink: Tally): Dataflow {
  const flow = new Dataflow("bench_scale");
  const keyed = op.keyOn("key", op.input("inp", flow, new RangeSource(n)), (user) => user);
  const counts = op.statefulMap("count", keyed, (state: number | undefined, _user: string): [number, number] => {
    const next = (state ?? 0) + 1;
    return [next, next];
  });
  op.output("out", counts, sink);
  return flow;
}

function check(what: string, count: number, max: number): void {
  expectEqual(`${what} [outputs, highest count]`, [count, max], [N, N / KEYS]);
}

async function inProcess(workers: number): Promise<number> {
  const tally = new Tally();
  await clusterMain(scaleFlow(N, tally), { workersPerProcess: workers });
  check(`${workers} worker(s)`, tally.count, tally.max);
  return N;
}

/** What bench/scale-process.ts prints when its share of the run ends. */
export interface ProcessReport {
  readonly count: number;
  readonly max: number;
  /** Wall clock (ms) when the cluster had formed, and when the run ended. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly cpuSeconds: number;
}

const SCRIPT = join(import.meta.dirname, "..", "scale-process.ts");

function runProcess(processId: number, addresses: string): Promise<ProcessReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--conditions=waxflow-source", SCRIPT, String(processId), addresses, String(N)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve(JSON.parse(stdout) as ProcessReport);
      else reject(new Error(`bench process ${processId} exited ${code}: ${stderr}`));
    });
  });
}

async function twoProcesses(): Promise<SelfTimed> {
  const addresses = (await freePorts(2)).map((p) => `127.0.0.1:${p}`).join(";");
  const reports = await Promise.all([0, 1].map((i) => runProcess(i, addresses)));
  check(
    "2 processes",
    reports.reduce((n, r) => n + r.count, 0),
    Math.max(...reports.map((r) => r.max)),
  );
  const seconds = (Math.max(...reports.map((r) => r.endedAt)) - Math.min(...reports.map((r) => r.startedAt))) / 1000;
  return { items: N, seconds, cpuSeconds: reports.reduce((s, r) => s + r.cpuSeconds, 0) };
}

export const workers2: BenchCase = {
  title: "keyed stateful count, 2M items: 2 workers in one process; loop: 1 worker",
  targets: {},
  async prepare() {
    return { engine: () => inProcess(2), loop: () => inProcess(1) };
  },
};

export const processes2: BenchCase = {
  title: "keyed stateful count, 2M items: 2 processes x 1 worker on localhost (TCP); loop: 1 worker",
  targets: {},
  async prepare() {
    return { engine: twoProcesses, loop: () => inProcess(1) };
  },
};
