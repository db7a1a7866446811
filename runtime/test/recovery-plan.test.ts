import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { MissingProcessStoreError, ReplacedProcessStoreError } from "waxflow/recovery";
import { TestingSink, TestingSource } from "waxflow/testing";
import { parseAddresses } from "../src/cluster/mesh.ts";
import { execute } from "../src/process/execute.ts";
import { type ExecutionRecord, planResume, type StoreRecords, type WorkerFrontier } from "../src/recovery/plan.ts";
import { freePorts } from "./support/ports.ts";
import { TEST_SECRET_BYTES } from "./support/secret.ts";

function record(execution: number, processIndex: number, stores: string[], resumeEpoch = 1): ExecutionRecord {
  return { execution, processIndex, processCount: stores.length, workersPerProcess: 2, resumeEpoch, stores };
}

function store(
  process: number,
  storeId: string,
  executions: ExecutionRecord[],
  frontiers: WorkerFrontier[] = [],
): StoreRecords {
  return { process, storeId, executions, frontiers };
}

const offered = (...stores: StoreRecords[]) => new Map(stores.map((s) => [s.process, s]));
const shape = (processCount: number) => ({ processCount, workersPerProcess: 2 });

describe("planResume", () => {
  test("no records anywhere: a fresh start at epoch 1 with nothing to send", () => {
    expect(planResume(offered(store(0, "a", []), store(1, "b", [])), shape(2))).toEqual({
      kind: "plan",
      plan: {
        execution: 1,
        resumeEpoch: 1,
        resumedFrom: 0,
        sources: 0,
        processCount: 2,
        workersPerProcess: 2,
        stores: ["a", "b"],
      },
    });
  });

  test("a complete execution resumes at its slowest worker; a worker that never committed counts at its start", () => {
    const ab = ["a", "b"];
    const outcome = planResume(
      offered(
        store(
          0,
          "a",
          [record(4, 0, ab, 7)],
          [
            { execution: 4, worker: 0, frontier: 12 },
            { execution: 4, worker: 1, frontier: 11 },
          ],
        ),
        store(1, "b", [record(4, 1, ab, 7)], [{ execution: 4, worker: 2, frontier: 13 }]),
      ),
      shape(2),
    );
    expect(outcome).toMatchObject({ kind: "plan", plan: { execution: 5, resumeEpoch: 7, resumedFrom: 4, sources: 2 } });
  });

  test("an execution whose start never finished on an intact store is skipped for the one before", () => {
    const abc = ["a", "b", "c"];
    const ab = ["a", "b"];
    const fronts = [0, 1, 2, 3, 4, 5].map((worker) => ({ execution: 3, worker, frontier: 9 }));
    const outcome = planResume(
      offered(
        store(0, "a", [record(3, 0, abc), record(4, 0, ab, 9)], fronts.slice(0, 2)),
        store(1, "b", [record(3, 1, abc)], fronts.slice(2, 4)),
        store(2, "c", [record(3, 2, abc)], fronts.slice(4)),
      ),
      shape(2),
    );
    // Execution 4 (2 processes) was recorded by process 0 only; execution 3 needs process 2's store too.
    expect(outcome).toMatchObject({ kind: "plan", plan: { execution: 5, resumeEpoch: 9, resumedFrom: 3, sources: 3 } });
  });

  test("a store of the execution that is not offered blocks the start", () => {
    const abc = ["a", "b", "c"];
    const outcome = planResume(
      offered(store(0, "a", [record(2, 0, abc)]), store(1, "b", [record(2, 1, abc)])),
      shape(2),
    );
    expect(outcome).toEqual({ kind: "blocked", execution: 2, processCount: 3, missing: [2], replaced: [] });
  });

  test("an emptied store cannot pass for an interrupted start: the start is blocked, not rewound", () => {
    const ab = ["a", "b"];
    const outcome = planResume(offered(store(0, "a", [record(2, 0, ab)]), store(1, "new", [])), shape(2));
    expect(outcome).toEqual({ kind: "blocked", execution: 2, processCount: 2, missing: [], replaced: [1] });
  });

  test("a left-over store with a record the others never made does not stop a start", () => {
    // Process 2 once recorded an execution 5 of 3 processes; the cluster's own 5 ran with 2.
    const outcome = planResume(
      offered(
        store(0, "a", [record(5, 0, ["a", "b"])]),
        store(1, "b", [record(5, 1, ["a", "b"])]),
        store(2, "c", [record(5, 2, ["a", "b", "c"])]),
      ),
      shape(3),
    );
    expect(outcome).toMatchObject({ kind: "plan", plan: { execution: 6, sources: 2, stores: ["a", "b", "c"] } });
  });
});

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function keyedFlow(out: [string, number][]): Dataflow {
  const flow = new Dataflow("plan_in_process");
  const source = new TestingSource<[string, number]>([["a", 1], ["b", 2], ["c", 3], new TestingSource.EOF()]);
  const items = op.input("inp", flow, source);
  op.output(
    "out",
    op.statefulMap("sum", items, (s: number | undefined, v: number) => [(s ?? 0) + v, (s ?? 0) + v]),
    new TestingSink(out),
  );
  return flow;
}

/** Runs `count` processes of one cluster in this test process, over real TCP on localhost. */
async function runCluster(
  stores: readonly string[],
  count: number,
  connectTimeoutMs = 20_000,
): Promise<PromiseSettledResult<void>[]> {
  const addresses = parseAddresses((await freePorts(count)).map((p) => `127.0.0.1:${p}`).join(";"));
  return Promise.allSettled(
    Array.from({ length: count }, (_, processId) =>
      execute(keyedFlow([]), {
        workers: 2,
        epochIntervalMs: 5,
        cluster: { processId, addresses, connectTimeoutMs, mesh: { secret: TEST_SECRET_BYTES } },
        recovery: { dbDir: stores[processId] as string, init: true },
      }),
    ),
  );
}

function tempStores(n: number): string[] {
  const root = mkdtempSync(join(tmpdir(), "waxflow-plan-"));
  dirs.push(root);
  return Array.from({ length: n }, (_, i) => join(root, `p${i}`));
}

test("resuming 3 processes' stores with 2 and no holder rejects with MissingProcessStoreError", async () => {
  const stores = tempStores(3);
  for (const r of await runCluster(stores, 3)) expect(r.status).toBe("fulfilled");
  const [leader, other] = await runCluster(stores, 2, 500);
  expect(leader?.status === "rejected" && leader.reason).toBeInstanceOf(MissingProcessStoreError);
  expect(leader?.status === "rejected" && (leader.reason as MissingProcessStoreError).missing).toEqual([2]);
  expect(other?.status === "rejected" && String(other.reason)).toMatch(/process 0 .* stopped: cannot resume/);
});

test("a process whose store was emptied is refused with ReplacedProcessStoreError", async () => {
  const stores = tempStores(2);
  for (const r of await runCluster(stores, 2)) expect(r.status).toBe("fulfilled");
  rmSync(stores[1] as string, { recursive: true });
  const [leader] = await runCluster(stores, 2);
  expect(leader?.status === "rejected" && leader.reason).toBeInstanceOf(ReplacedProcessStoreError);
  expect(leader?.status === "rejected" && String(leader.reason)).toMatch(
    /store of process\(es\) 1 is not the one it ran with/,
  );
});
