// The generic runner's loop without a cluster: a reconciler with no watches, keys added by
// hand. The Dataflow reconciler under it is proved against a real API server in
// controller.int.test.ts.
import { KubeConfig } from "@kubernetes/client-node";
import { afterEach, expect, test } from "vitest";
import { type Caches, type ErrorPolicy, type Reconciler, Runner } from "../src/kube/runner.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

let runner: Runner | undefined;
afterEach(async () => {
  await runner?.stop();
  runner = undefined;
});

function run(reconcile: Reconciler["reconcile"], options: { errorPolicy?: ErrorPolicy; workers?: number } = {}) {
  runner = new Runner(new KubeConfig(), { watches: [], reconcile }, { queue: { baseDelayMs: 20 }, ...options });
  runner.start();
  return runner;
}

async function results(r: Runner): Promise<Record<string, number>> {
  const m = await r.metrics.reconciles.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.result), v.value]));
}

test("a reconcile's answer requeues its key after that many ms; undefined leaves it until the next event", async () => {
  const seen: Array<[string, number]> = [];
  const started = Date.now();
  const r = run(async (key) => {
    seen.push([key, Date.now() - started]);
    return key === "ns/again" && seen.filter(([k]) => k === key).length === 1 ? 100 : undefined;
  });
  r.queue.add("ns/again");
  r.queue.add("ns/once");
  await until("ns/again twice", () => seen.filter(([k]) => k === "ns/again").length === 2);
  await sleep(150);
  expect(seen.map(([k]) => k).sort()).toEqual(["ns/again", "ns/again", "ns/once"]);
  expect(seen.filter(([k]) => k === "ns/again")[1]?.[1]).toBeGreaterThanOrEqual(95);
  expect(await results(r)).toEqual({ ok: 3 });
});

test("a failure is retried with backoff and counted as the error policy names it", async () => {
  let calls = 0;
  const policy: ErrorPolicy = (key, err) => ({ result: `${key}:${(err as Error).message}`, warn: false });
  const r = run(
    async () => {
      calls++;
      if (calls < 3) throw new Error("conflict");
      return undefined;
    },
    { errorPolicy: policy },
  );
  r.queue.add("ns/a");
  await until("a third reconcile", () => calls === 3);
  expect(await results(r)).toEqual({ "ns/a:conflict": 2, ok: 1 });
  expect((await r.metrics.errors.get()).values[0]?.value).toBe(2);
});

test("a key is never reconciled by two workers at once, and an event during a reconcile runs it again after", async () => {
  let running = 0;
  let most = 0;
  let calls = 0;
  const r = run(
    async (_key: string, caches: Caches) => {
      expect(caches.synced).toBe(false); // no watches: never synced, a reconciler reads the API server
      calls++;
      running++;
      most = Math.max(most, running);
      await sleep(30);
      running--;
      return undefined;
    },
    { workers: 4 },
  );
  r.queue.add("ns/a");
  await until("the first reconcile", () => running === 1);
  r.queue.add("ns/a");
  r.queue.add("ns/a");
  await until("the second reconcile", () => calls === 2 && running === 0);
  await sleep(60);
  expect(calls).toBe(2);
  expect(most).toBe(1);
});
