// Exactly-once under kills, with real processes and a real broker: 3 processes x 2
// workers read Kafka, keep a running count per key and write it to Kafka. A random
// process is SIGKILLed at least 5 times mid-stream; the others stop (fate-sharing) and
// all restart, as Kubernetes would restart the pods. A read_committed consumer of the
// output must see, per key, the counts 1..n: no gap, no repeat. The same run with
// "at-least-once" shows the repeats that guarantee allows, so the check can fail. And the
// broker itself is killed and restarted mid-stream: the dataflow rides through or fails
// naming the cause, and a restart of it still writes every count once.
import { expect, test } from "vitest";
import { IdempotentProducer, KafkaAdmin } from "../../src/connectors/kafka/client.ts";
import type { Run } from "../support/processes.ts";
import type { Broker } from "./broker.ts";
import { type CountCluster, countCluster } from "./cluster.ts";
import { brokerForFile, createTopic, type ReadRecord, readTopic } from "./kafka.ts";

const broker = brokerForFile();
const KEYS = 12;
const OUT_PARTITIONS = 3;

/**
 * Produces over keys key-0..key-11, 20 messages every 100 ms, until `stop` resolves: the
 * stream stays live through every kill, however long the restarts take on a loaded
 * machine. Resolves with the number of messages per key.
 */
async function feed(
  b: Broker,
  topic: string,
  stop: Promise<void>,
  gate: () => Promise<void> = async () => {},
): Promise<Map<string, number>> {
  const expected = new Map<string, number>();
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  const producer = new IdempotentProducer([b.address], "feed", {});
  try {
    for (let i = 0; !stopped; i += 20) {
      await gate();
      const batch = Array.from({ length: 20 }, (_, j) => {
        const key = `key-${(i + j) % KEYS}`;
        expected.set(key, (expected.get(key) ?? 0) + 1);
        return { topic, key: Buffer.from(key), value: Buffer.from(String(i + j)) };
      });
      await producer.send(batch);
      await pause(100);
    }
  } finally {
    await producer.close();
  }
  return expected;
}

/** Messages written to `topic` so far, committed or not: grows while a run makes progress. */
async function written(b: Broker, topic: string): Promise<number> {
  const admin = new KafkaAdmin([b.address]);
  try {
    return (await admin.offsets(topic, "end", false)).reduce((sum, n) => sum + Number(n), 0);
  } finally {
    await admin.close();
  }
}

function countsByKey(records: readonly ReadRecord[]): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  for (const r of records) byKey.set(r.key ?? "", [...(byKey.get(r.key ?? "") ?? []), Number(r.value)]);
  return byKey;
}

function complete(byKey: Map<string, number[]>, expected: Map<string, number>): boolean {
  return [...expected].every(([key, n]) => (byKey.get(key) ?? []).includes(n));
}

/** The output's counts by key, once every key's final count is there. */
async function everyCount(output: string, expected: Map<string, number>): Promise<Map<string, number[]>> {
  let byKey = new Map<string, number[]>();
  await expect
    .poll(
      async () => {
        byKey = countsByKey(await readTopic(broker(), output, OUT_PARTITIONS));
        return complete(byKey, expected);
      },
      { timeout: 120_000, interval: 500 },
    )
    .toBe(true);
  return byKey;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the count over a live feed with a SIGKILL per start but the last, the cluster
 * sized by `sizes` (one entry per start; a [count, holders] pair); the feed stops once
 * the last start is up, then every count is awaited.
 */
async function run(
  guarantee: string,
  sizes: readonly (readonly [number, number])[],
): Promise<{ byKey: Map<string, number[]>; expected: Map<string, number>; kills: number }> {
  const input = await createTopic(broker(), "count-in", 6);
  const output = await createTopic(broker(), "count-out", OUT_PARTITIONS);
  const cluster: CountCluster = countCluster({
    KC_BROKERS: broker().address,
    KC_IN: input,
    KC_OUT: output,
    KC_GUARANTEE: guarantee,
  });
  const stopFeed = Promise.withResolvers<void>();
  const feeding = feed(broker(), input, stopFeed.promise);
  let kills = 0;
  let last: Run[];
  try {
    for (const [count, holders] of sizes.slice(0, -1)) {
      const before = await written(broker(), output);
      const runs = await cluster.start(count, holders);
      // Mid-stream: once this run has written something, at a random moment after.
      await expect.poll(() => written(broker(), output), { timeout: 120_000, interval: 100 }).toBeGreaterThan(before);
      await pause(Math.random() * 1000);
      const victim = Math.floor(Math.random() * count);
      const exits = await cluster.killOne(runs.slice(0, count), victim);
      kills++;
      for (const [i, exit] of exits.entries()) if (i !== victim) expect(exit.code, exit.stderr).not.toBe(0);
      await cluster.stopAll(runs.slice(count));
    }
    const [count, holders] = sizes.at(-1) as readonly [number, number];
    last = await cluster.start(count, holders);
  } finally {
    stopFeed.resolve();
  }
  const expected = await feeding;
  const byKey = await everyCount(output, expected);
  for (const r of last) expect(r.child.exitCode, "a process of the last run ended early").toBeNull();
  await cluster.stopAll(last);
  return { byKey, expected, kills };
}

function expectExactlyOnce(byKey: Map<string, number[]>, expected: Map<string, number>): void {
  expect([...byKey.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [key, n] of expected) {
    expect(byKey.get(key), key).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  }
}

test("exactly-once: 3 processes x 2 workers, SIGKILLed 5 times mid-stream, every count once", async () => {
  const { byKey, expected, kills } = await run("exactly-once", [
    [3, 0],
    [3, 0],
    [3, 0],
    [3, 0],
    [3, 0],
    [3, 0],
  ]);
  expect(kills).toBeGreaterThanOrEqual(5);
  expectExactlyOnce(byKey, expected);
}, 400_000);

test("exactly-once across a rescale: 3 processes, then 2 and a holder, then 4, with kills", async () => {
  const { byKey, expected, kills } = await run("exactly-once", [
    [3, 0],
    [2, 1],
    [4, 0],
  ]);
  expect(kills).toBe(2);
  expectExactlyOnce(byKey, expected);
}, 400_000);

test("at-least-once, the same kills: counts repeat, which exactly-once rules out", async () => {
  const { byKey, expected } = await run("at-least-once", [
    [3, 0],
    [3, 0],
    [3, 0],
  ]);
  // Nothing lost...
  for (const [key, n] of expected)
    expect(new Set(byKey.get(key)), key).toEqual(new Set(Array.from({ length: n }, (_, i) => i + 1)));
  // ...but the epochs in flight at each kill were written again.
  const repeated = [...byKey.values()].reduce((sum, counts) => sum + counts.length - new Set(counts).size, 0);
  expect(repeated).toBeGreaterThan(0);
}, 400_000);

test("the broker SIGKILLed and restarted mid-stream: the run rides through or fails naming it, and every count is written once", async () => {
  const input = await createTopic(broker(), "count-in", 6);
  const output = await createTopic(broker(), "count-out", OUT_PARTITIONS);
  const cluster = countCluster({
    KC_BROKERS: broker().address,
    KC_IN: input,
    KC_OUT: output,
    KC_GUARANTEE: "exactly-once",
  });
  // The feed holds still while the broker is down, so the input has no gap of its own.
  let held: PromiseWithResolvers<void> | undefined;
  let idle = Promise.withResolvers<void>();
  const gate = async (): Promise<void> => {
    idle.resolve();
    await held?.promise;
    idle = Promise.withResolvers<void>();
  };
  const stopFeed = Promise.withResolvers<void>();
  const feeding = feed(broker(), input, stopFeed.promise, gate);
  let runs = await cluster.start(2);
  const exits = runs.map((r) => r.exit);
  try {
    await expect.poll(() => written(broker(), output), { timeout: 120_000, interval: 100 }).toBeGreaterThan(0);
    held = Promise.withResolvers<void>();
    await idle.promise;
    await broker().kill();
    await pause(3000);
    await broker().restart();
    held.resolve();
    held = undefined;
    // Given the client's retries, either every process rides through, or they stop with
    // an error that says what failed, and a restart (as Kubernetes would) resumes.
    const outcome = await Promise.race([Promise.all(exits), pause(20_000).then(() => "riding" as const)]);
    if (outcome !== "riding") {
      const failed = outcome.find((e) => e.code !== 0);
      expect(failed?.stderr ?? "", "a process stopped without an error").toMatch(/error|fail/i);
      console.info(`broker restart: the run stopped (${failed?.stderr.trim().split("\n").at(-1)}) and was restarted`);
      runs = await cluster.start(2);
    } else console.info("broker restart: the run rode through");
    await pause(2000);
  } finally {
    stopFeed.resolve();
  }
  const expected = await feeding;
  const byKey = await everyCount(output, expected);
  await cluster.stopAll(runs);
  expectExactlyOnce(byKey, expected);
}, 400_000);
