// The live `df top` view driven through ink with a terminal made here: keys change the
// sort and the selection, q quits, and every refresh reads the processes again.
import { PassThrough } from "node:stream";
import type { V1Pod } from "@kubernetes/client-node";
import { expect, test } from "vitest";
import type { StepsReport } from "waxflow/steps";
import type { ProcessReading } from "../src/ui/steps.ts";
import { runTop } from "../src/ui/top.ts";

function terminal() {
  const stdin = Object.assign(new PassThrough(), {
    isTTY: true,
    setRawMode: () => stdin,
    ref: () => stdin,
    unref: () => stdin,
  });
  const stdout = Object.assign(new PassThrough(), { isTTY: true, columns: 140, rows: 40 });
  let written = "";
  stdout.on("data", (chunk: Buffer) => {
    written += chunk.toString("utf8");
  });
  return {
    stdin: stdin as unknown as NodeJS.ReadStream,
    stdout: stdout as unknown as NodeJS.WriteStream,
    type: (keys: string) => stdin.write(keys),
    written: () => written,
  };
}

const pod: V1Pod = {
  metadata: { name: "counts-0" },
  status: {
    containerStatuses: [
      { name: "waxflow", restartCount: 0, ready: true, image: "", imageID: "", state: { running: {} } },
    ],
  },
};

/** A process whose steps' throughput grows with every read: `slow` stays at 1/s, `fast` climbs. */
function processReads(): { read: () => Promise<ProcessReading[]>; count: () => number } {
  let reads = 0;
  const step = (id: string, rate: number) => ({
    step: `flow.${id}`,
    kind: "flatMapBatch",
    stateful: false,
    operator: { step: `flow.${id}`, kind: "map" },
    workers: [
      {
        worker: 0,
        itemsIn: rate * 10,
        itemsOut: rate * 10,
        inPerSecond: rate,
        outPerSecond: rate,
        keys: null,
        watermarkLagSeconds: null,
      },
    ],
  });
  return {
    read: async () => {
      reads++;
      const report: StepsReport = {
        process: 0,
        processes: 1,
        flow: "flow",
        at: new Date().toISOString(),
        workers: [{ worker: 0, epoch: reads, committedEpoch: null, committedAgeSeconds: null }],
        steps: [step("slow", 1), step("fast", 10 * reads)],
        kafka: [],
      };
      return [{ pod, report }];
    },
    count: () => reads,
  };
}

const settle = (ms = 150) => new Promise((r) => setTimeout(r, ms));

test("s sorts, the arrows select, q quits; the view refreshes on its interval", async () => {
  const term = terminal();
  const process = processReads();
  const done = runTop({ dataflow: "counts", namespace: "default", intervalMs: 100, read: process.read }, term);
  await expect.poll(() => term.written(), { timeout: 5_000 }).toContain("sort: dataflow");
  expect(term.written()).toContain("\u001b[?1049h"); // the alternate screen
  await expect.poll(() => process.count(), { timeout: 5_000 }).toBeGreaterThan(2);

  term.type("s");
  await expect.poll(() => term.written(), { timeout: 5_000 }).toContain("sort: throughput");
  term.type("\u001b[B"); // down: the first row of the sorted steps, the fast one
  await expect.poll(() => term.written(), { timeout: 5_000 }).toMatch(/> fast +flatMapBatch/);
  expect(term.written()).toContain("fast: flatMapBatch, part of fast (map)");
  await settle();
  term.type("q");
  const last = await done;
  expect(term.written().endsWith("\u001b[?1049l")).toBe(true);
  expect(last.steps.map((s) => s.step)).toEqual(["slow", "fast"]);
});
