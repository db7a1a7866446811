import { expect, test } from "vitest";
import { WorkQueue } from "../src/kube/queue.ts";

test("a key is queued once and never handed to two workers at once", async () => {
  const q = new WorkQueue();
  q.add("ns/a");
  q.add("ns/a");
  q.add("ns/b");
  expect(q.depth).toBe(2);
  expect(await q.get()).toBe("ns/a");
  q.add("ns/a"); // arrives while ns/a is processed: runs again after, not in parallel
  expect(q.depth).toBe(1);
  expect(await q.get()).toBe("ns/b");
  expect(q.depth).toBe(0);
  q.done("ns/a");
  expect(await q.get()).toBe("ns/a");
  q.shutDown();
  expect(await q.get()).toBeUndefined();
});

test("failures back off exponentially per key, up to the cap; forget resets", () => {
  const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 50 });
  expect([1, 2, 3, 4].map(() => q.addRateLimited("k"))).toEqual([10, 20, 40, 50]);
  expect(q.addRateLimited("other")).toBe(10);
  q.forget("k");
  expect(q.addRateLimited("k")).toBe(10);
  q.shutDown();
});

test("a delayed add arrives after its delay", async () => {
  const q = new WorkQueue();
  const start = Date.now();
  q.addAfter("k", 60);
  expect(q.depth).toBe(0);
  expect(await q.get()).toBe("k");
  expect(Date.now() - start).toBeGreaterThanOrEqual(50);
  q.shutDown();
});
