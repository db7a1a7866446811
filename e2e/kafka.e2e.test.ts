import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  applyList,
  eventually,
  isReady,
  killPods,
  kubectl,
  kubectlJson,
  loadImageArchives,
  type Pod,
  podGet,
  podNamed,
  pods,
  replaced,
  restrictedNamespace,
  tryKubectl,
  waxctl,
} from "./lib/cluster.ts";
import {
  brokerAddress,
  brokerManifests,
  CONSUME,
  CREATE_TOPICS,
  clientPod,
  clientSecret,
  consumerLags,
  type Manifest,
  PRODUCE,
} from "./lib/kafka.ts";

const NS = "waxflow-e2e-kafka";
const FLOW = "kafka";
const BROKER = "broker";
const SECRET = "kafka-client";
const IN_TOPIC = "events";
const OUT_TOPIC = "anonymized";
/**
 * Fewer input partitions than workers (3 for 3 x 2, then 2 x 2), as in many real
 * deployments: the workers that own none end at once, and their processes must stay in the
 * cluster without holding back its commits (the output is read_committed).
 */
const IN_PARTITIONS = 3;
const OUT_PARTITIONS = 3;
/** Messages produced: 20 a second, so the stream lasts about 2.5 minutes, through the kill and the scale. */
const MESSAGES = 3000;
const BATCH = 10;
const INTERVAL_MS = 500;
/** Every 5th event has a bytewax address, which the example filters out. */
const FILTER_EVERY = 5;

const controllerImage = process.env.WAXFLOW_CONTROLLER_IMAGE;
const kafkaImage = process.env.WAXFLOW_KAFKA_IMAGE;
const runtimeImage = process.env.WAXFLOW_RUNTIME_IMAGE;
const work = mkdtempSync(join(tmpdir(), "waxflow-e2e-kafka-"));

restrictedNamespace(NS);

// The broker image and the runtime image (for the client pods) go into the node here, not
// in run.sh: only this file needs them.
beforeAll(() => loadImageArchives(process.env.WAXFLOW_KAFKA_ARCHIVE, process.env.WAXFLOW_RUNTIME_ARCHIVE), 600_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const apply = (manifests: readonly Manifest[]): Promise<void> => applyList(work, manifests);

function client(name: string, script: string, env: Record<string, string> = {}): Manifest {
  return clientPod({ namespace: NS, name, image: runtimeImage ?? "", secret: SECRET, script, env });
}

async function phase(pod: string): Promise<string> {
  return (await kubectlJson<Pod>("get", "pod", "-n", NS, pod)).status?.phase ?? "Unknown";
}

async function logs(pod: string): Promise<string> {
  return kubectl("logs", "-n", NS, pod);
}

/** Waits for a client pod to finish; its log when it succeeded, the log in the error when not. */
async function finished(pod: string, timeoutMs: number): Promise<string> {
  const end = await eventually(
    `client pod ${pod} to finish`,
    async () => {
      const p = await phase(pod);
      return p === "Succeeded" || p === "Failed" ? p : undefined;
    },
    { timeoutMs },
  );
  const log = await logs(pod);
  if (end !== "Succeeded") throw new Error(`client pod ${pod} failed:\n${log}`);
  return log;
}

/** How many messages the producer reported sent so far. */
async function sent(): Promise<number> {
  const matches = [...(await logs("producer")).matchAll(/^sent (\d+)$/gm)];
  return Number(matches.at(-1)?.[1] ?? 0);
}

async function untilSent(n: number): Promise<number> {
  return eventually(
    `the producer to send ${n} messages`,
    async () => {
      const count = await sent();
      return count >= n ? count : undefined;
    },
    { timeoutMs: 300_000 },
  );
}

async function untilReady(processes: number): Promise<Pod[]> {
  return eventually(
    `${processes} pods of ${FLOW} Ready`,
    async () => {
      const now = await pods(NS, FLOW);
      return now.length === processes && now.every(isReady) ? now : undefined;
    },
    { timeoutMs: 300_000 },
  );
}

describe("Kafka to Kafka exactly once on kind", { timeout: 1_500_000 }, () => {
  test("K1. anonymize with -p 3 -w 2 --recovery through a pod kill and a scale 3 -> 2", async () => {
    expect(controllerImage, "run through `npm run e2e`, which builds the images").toBeDefined();
    expect(kafkaImage, "run through `npm run e2e`, which builds the Kafka image").toBeDefined();
    expect(runtimeImage, "run through `npm run e2e`, which builds the runtime image").toBeDefined();
    const t0 = Date.now();
    const password = randomBytes(12).toString("hex");
    const users = { admin: randomBytes(12).toString("hex"), waxflow: password };

    const install = await waxctl(["install", "--image", controllerImage ?? "", "--wait", "--json"]);
    expect(install.code, install.stderr).toBe(0);

    await apply(
      brokerManifests({
        namespace: NS,
        name: BROKER,
        image: kafkaImage ?? "",
        clusterId: randomBytes(16).toString("base64url"),
        users,
      }),
    );
    const brokers = brokerAddress({ name: BROKER, namespace: NS });
    await apply([
      clientSecret(NS, SECRET, { brokers, username: "waxflow", password, inTopic: IN_TOPIC, outTopic: OUT_TOPIC }),
    ]);
    const rollout = await tryKubectl("rollout", "status", `statefulset/${BROKER}`, "-n", NS, "--timeout=240s");
    if (rollout.code !== 0) {
      const log = await tryKubectl("logs", "-n", NS, `${BROKER}-0`, "--all-containers");
      throw new Error(`broker not ready: ${rollout.stderr.trim()}\n${log.stdout}${log.stderr}`);
    }
    const brokerReady = Date.now();

    await apply([
      client("topics", CREATE_TOPICS, { IN_PARTITIONS: String(IN_PARTITIONS), OUT_PARTITIONS: String(OUT_PARTITIONS) }),
    ]);
    const topics = await finished("topics", 180_000);
    expect(topics).toMatch(new RegExp(`^topic ${IN_TOPIC} ${IN_PARTITIONS}$`, "m"));
    expect(topics).toMatch(new RegExp(`^topic ${OUT_TOPIC} ${OUT_PARTITIONS}$`, "m"));

    const deploy = await waxctl([
      "df",
      "deploy",
      "examples/kafka-anonymize.ts",
      "--name",
      FLOW,
      "-n",
      NS,
      "-p",
      "3",
      "-w",
      "2",
      "--recovery",
      "--env-from-secret",
      SECRET,
      "--wait",
      "--timeout",
      "5m",
      "--json",
    ]);
    expect(deploy.stderr).toBe("");
    expect(deploy.code).toBe(0);
    const deployed = Date.now();

    await apply([
      client("producer", PRODUCE, {
        MESSAGES: String(MESSAGES),
        BATCH: String(BATCH),
        INTERVAL_MS: String(INTERVAL_MS),
        FILTER_EVERY: String(FILTER_EVERY),
      }),
    ]);

    // A kill mid-stream: the victim's replacement has a new UID, and the producer is still writing.
    const killedAt = await untilSent(MESSAGES / 5);
    const kill = await killPods(NS, podNamed(`${FLOW}-1`), "--grace-period=0", "--force");
    const afterKill = await untilReady(3);
    expect(afterKill.filter((p) => replaced(kill, p)).map((p) => p.metadata.name)).toEqual([`${FLOW}-1`]);
    const recoveredAt = await sent();

    // A scale 3 -> 2 mid-stream: every process is replaced and resumes from the last snapshot.
    const scaledAt = await untilSent(Math.max(recoveredAt, MESSAGES / 2));
    const scale = await waxctl(["df", "scale", FLOW, "-n", NS, "--processes", "2", "--wait", "--timeout", "5m"]);
    expect(scale.code, scale.stderr).toBe(0);
    await untilReady(2);
    const scaledDone = await sent();
    expect(scaledDone, "the producer was done before the scale ended: raise MESSAGES").toBeLessThan(MESSAGES);

    await finished("producer", 600_000);
    const produced = Date.now();

    const expected = new Map<number, string>();
    for (let i = 0; i < MESSAGES; i++)
      if (i % FILTER_EVERY !== 0) expected.set(i, JSON.stringify({ id: i, email: "******@example.com" }));
    await apply([
      client("consumer", CONSUME, { EXPECTED: String(expected.size), QUIET_MS: "20000", DEADLINE_MS: "300000" }),
    ]);
    const read = (await finished("consumer", 420_000))
      .split("records:\n")[1]
      ?.split("\n")
      .filter((l) => l !== "");
    expect(read, "the consumer printed no records: line").toBeDefined();
    const seen = new Map<number, number>();
    const unexpected: string[] = [];
    for (const value of read ?? []) {
      const id = (JSON.parse(value) as { id?: unknown }).id;
      if (typeof id !== "number" || expected.get(id) !== value) unexpected.push(value);
      else seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    const duplicates = [...seen.values()].reduce((n, c) => n + c - 1, 0);
    const missing = [...expected.keys()].filter((id) => !seen.has(id));

    const seconds = (ms: number): string => (ms / 1000).toFixed(0);
    console.log(
      [
        `kafka e2e: ${MESSAGES} messages produced (${MESSAGES - expected.size} filtered out), ${read?.length} records read committed`,
        `  kills: 1 (${kill.pods.map((p) => p.metadata.name).join(", ")} at ${killedAt} sent, Ready again at ${recoveredAt}); scale 3 -> 2 at ${scaledAt} sent, done at ${scaledDone}`,
        `  duplicates: ${duplicates}, missing: ${missing.length}, unexpected: ${unexpected.length}`,
        `  seconds: broker ready ${seconds(brokerReady - t0)}, deployed ${seconds(deployed - t0)}, produced ${seconds(produced - t0)}, read ${seconds(Date.now() - t0)}`,
      ].join("\n"),
    );
    expect(unexpected.slice(0, 5)).toEqual([]);
    expect(missing.slice(0, 10)).toEqual([]);
    expect(duplicates).toBe(0);
    expect(read).toHaveLength(expected.size);

    // Every input partition's consumer lag is on one pod's /metrics, and is 0: the input
    // was read to its end.
    const lags = await eventually(
      "every consumer lag on /metrics to be 0",
      async () => {
        const all = new Map<string, number>();
        for (const pod of await pods(NS, FLOW)) {
          const metrics = await podGet(NS, pod.metadata.name, 3030, "/metrics");
          if (metrics.code !== 0) throw new Error(`${pod.metadata.name} /metrics: ${metrics.stderr.trim()}`);
          if (!metrics.stdout.includes("waxflow_step_items_in_total"))
            throw new Error(`${pod.metadata.name} /metrics has no step counts`);
          for (const [partition, lag] of consumerLags(metrics.stdout))
            all.set(`${pod.metadata.name} ${partition}`, lag);
        }
        const partitions = [...all.keys()].map((k) => k.split(" ")[1]).sort();
        const expected = Array.from({ length: IN_PARTITIONS }, (_, p) => `${IN_TOPIC}/${p}`);
        if (JSON.stringify(partitions) !== JSON.stringify(expected)) return undefined;
        return [...all.values()].every((lag) => lag === 0) ? all : undefined;
      },
      { timeoutMs: 120_000 },
    );
    console.log(
      `  lag on /metrics: ${[...lags].map(([k, v]) => `${k}=${v}`).join(", ")}; scenario ${seconds(Date.now() - t0)} s`,
    );

    const deleted = await waxctl(["df", "delete", FLOW, "-n", NS, "--purge", "--yes", "--wait"]);
    expect(deleted.code).toBe(0);
  });
});
