// KafkaSource and KafkaSink against a broker's SASL_SSL listener, with certificates made
// by the test: PLAIN and SCRAM read and write (exactly-once included), a wrong password
// and a CA that did not sign the broker each fail in one line, and the password shows
// nowhere: not in errors, inspect, JSON, or a running process's stderr and HTTP API.

import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { inspect } from "node:util";
import { afterAll, expect, test } from "vitest";
import { clientConfig, commitRecordedTransaction, TransactionalProducer } from "../../src/connectors/kafka/client.ts";
import { KafkaSink, type KafkaSinkMessage, KafkaSource } from "../../src/connectors/kafka/index.ts";
import * as kop from "../../src/connectors/kafka/operators.ts";
import { type KafkaSaslOptions, resolveKafkaSecurity } from "../../src/connectors/kafka/security.ts";
import { Dataflow } from "../../src/dataflow.ts";
import * as op from "../../src/operators/index.ts";
import { runMain, TestingSink } from "../../src/testing.ts";
import { freePort } from "../support/ports.ts";
import { childProcesses } from "../support/processes.ts";
import { TEST_SECRET } from "../support/secret.ts";
import { makeCertificates } from "./certs.ts";
import { brokerForFile, createTopic, produce, readTopic } from "./kafka.ts";

const PLAIN_PASSWORD = "plain-Secret-4711";
const SCRAM_PASSWORD = "scram-Secret-0815";
const certs = makeCertificates();
afterAll(() => rmSync(certs.dir, { recursive: true, force: true }));
const broker = brokerForFile({
  saslSsl: {
    keyFile: certs.brokerKeyFile,
    certFile: certs.brokerCertFile,
    clientCaFile: certs.caFile,
    plain: { alice: PLAIN_PASSWORD },
    scram: { bob: SCRAM_PASSWORD },
  },
});
const processes = childProcesses();
const secure = (): string => broker().saslSslAddress as string;
const plain: KafkaSaslOptions = { mechanism: "PLAIN", username: "alice", password: PLAIN_PASSWORD };
const scram = (mechanism: "SCRAM-SHA-256" | "SCRAM-SHA-512"): KafkaSaslOptions => ({
  mechanism,
  username: "bob",
  password: SCRAM_PASSWORD,
});
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

async function filled(n: number): Promise<string> {
  const topic = await createTopic(broker(), "auth-in", 2);
  await produce(
    broker(),
    range(n).map((i) => ({ topic, partition: i % 2, value: Buffer.from(String(i)) })),
  );
  return topic;
}

/** What a bounded read through the SASL_SSL listener gives, as sorted numbers. */
async function readSecurely(source: KafkaSource): Promise<number[]> {
  const flow = new Dataflow("auth_read");
  const items: number[] = [];
  op.output(
    "out",
    op.map("value", op.input("in", flow, source), (m) => Number(m.value?.toString())),
    new TestingSink(items),
  );
  await runMain(flow, { epochIntervalMs: 100 });
  return items.sort((a, b) => a - b);
}

test.each([
  ["PLAIN", plain],
  ["SCRAM-SHA-256", scram("SCRAM-SHA-256")],
  ["SCRAM-SHA-512", scram("SCRAM-SHA-512")],
] as const)(
  "%s over TLS reads every message",
  async (_name, sasl) => {
    const topic = await filled(200);
    const source = new KafkaSource([secure()], [topic], { tail: false, sasl, tls: { caFile: certs.caFile } });
    expect(await readSecurely(source)).toEqual(range(200));
  },
  60_000,
);

test("SCRAM, a CA and a client certificate and key from KAFKA_* alone", async () => {
  const topic = await filled(50);
  const env = {
    KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
    KAFKA_SASL_USERNAME: "bob",
    KAFKA_SASL_PASSWORD: SCRAM_PASSWORD,
    KAFKA_TLS_CA_FILE: certs.caFile,
    KAFKA_TLS_CERT_FILE: certs.clientCertFile,
    KAFKA_TLS_KEY_FILE: certs.clientKeyFile,
  };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const source = new KafkaSource([secure()], [topic], { tail: false });
    expect(source.security).toBe(`sasl: SCRAM-SHA-512 as "bob", tls: ${certs.caFile} with a client certificate`);
    expect(await readSecurely(source)).toEqual(range(50));
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}, 60_000);

test("the sink writes at-least-once with PLAIN and exactly-once with SCRAM (kop.output too)", async () => {
  const from = await filled(300);
  for (const [guarantee, sasl] of [
    ["at-least-once", plain],
    ["exactly-once", scram("SCRAM-SHA-256")],
  ] as const) {
    const to = await createTopic(broker(), "auth-out", 2);
    const flow = new Dataflow("auth_copy");
    const { oks } = kop.input("in", flow, {
      brokers: [secure()],
      topics: [from],
      tail: false,
      batchSize: 40,
      sasl,
      tls: { caFile: certs.caFile },
    });
    const out = op.map("copy", oks, (m): KafkaSinkMessage => ({ value: m.value }));
    kop.output("out", out, {
      brokers: [secure()],
      topic: to,
      deliveryGuarantee: guarantee,
      sasl,
      tls: { caFile: certs.caFile },
    });
    const dir = processes.tempDir("waxflow-kafka-auth-");
    await runMain(flow, {
      epochIntervalMs: 100,
      ...(guarantee === "exactly-once" && { recovery: { dbDir: dir, init: true } }),
    });
    // Commit markers reach the partitions just after EndTxn returns: poll until visible.
    await expect
      .poll(async () => (await readTopic(broker(), to, 2)).map((r) => Number(r.value)).sort((a, b) => a - b), {
        timeout: 10_000,
        interval: 100,
      })
      .toEqual(range(300));
  }
}, 90_000);

test("a transaction recorded in a snapshot is committed over SASL_SSL (the resume's own connection)", async () => {
  const to = await createTopic(broker(), "auth-settle", 1);
  const config = clientConfig(
    {},
    resolveKafkaSecurity("test", { sasl: scram("SCRAM-SHA-512"), tls: { caFile: certs.caFile } }),
  );
  const producer = new TransactionalProducer([secure()], `auth-settle-${process.pid}`, 30_000, config);
  try {
    await producer.send(range(10).map((i) => ({ topic: to, value: Buffer.from(String(i)) })));
    const handle = producer.handle();
    expect(handle).toBeDefined();
    expect(await readTopic(broker(), to, 1)).toEqual([]);
    // What a resumed sink does with the handle from its snapshot: EndTxn on a raw connection.
    await commitRecordedTransaction([secure()], handle as NonNullable<typeof handle>, config);
    await expect
      .poll(async () => (await readTopic(broker(), to, 1)).map((r) => Number(r.value)), { timeout: 10_000 })
      .toEqual(range(10));
  } finally {
    await producer.close();
  }
}, 60_000);

/** The one line a failed bounded read raises. */
async function failure(source: KafkaSource): Promise<string> {
  const err = await readSecurely(source).then(
    () => new Error("the read succeeded"),
    (e: unknown) => e as Error,
  );
  return err.message;
}

test("a wrong password fails in one line naming the broker and saying authentication failed", async () => {
  const topic = await filled(1);
  for (const sasl of [
    { ...plain, password: "not-the-password" },
    { ...scram("SCRAM-SHA-256"), password: "not-the-password" },
  ]) {
    const message = await failure(
      new KafkaSource([secure()], [topic], { tail: false, sasl, tls: { caFile: certs.caFile } }),
    );
    expect(message).toContain(secure());
    expect(message).toMatch(/authentication failed/i);
    expect(message).not.toContain("\n");
    expect(message).not.toContain("not-the-password");
  }
}, 60_000);

test("a CA that did not sign the broker fails in one line about TLS", async () => {
  const topic = await filled(1);
  const message = await failure(
    new KafkaSource([secure()], [topic], { tail: false, sasl: plain, tls: { caFile: certs.otherCaFile } }),
  );
  expect(message).toContain(secure());
  expect(message).toMatch(/TLS/);
  expect(message).toContain(certs.otherCaFile);
  expect(message).not.toContain("\n");
  expect(message).not.toContain(PLAIN_PASSWORD);
}, 60_000);

test("inspect and JSON of a source or sink show the mechanism and user, never the password", () => {
  const source = new KafkaSource([secure()], ["t"], { sasl: plain, tls: { caFile: certs.caFile } });
  const sink = new KafkaSink([secure()], "t", { sasl: scram("SCRAM-SHA-512"), tls: { caFile: certs.caFile } });
  for (const shown of [inspect(source), inspect(sink), JSON.stringify(source), JSON.stringify(sink), String(source)]) {
    expect(shown).not.toContain(PLAIN_PASSWORD);
    expect(shown).not.toContain(SCRAM_PASSWORD);
  }
  expect(inspect(source)).toContain('sasl: PLAIN as "alice"');
  expect(inspect(sink)).toContain('sasl: SCRAM-SHA-512 as "bob"');
});

test("a running process shows the password nowhere: stderr, /status, /steps, /metrics", async () => {
  const input = await filled(100);
  const output = await createTopic(broker(), "auth-out", 2);
  const apiPort = await freePort();
  const ROOT = resolve(import.meta.dirname, "../../..");
  const run = processes.start(
    [
      resolve(ROOT, "runtime/src/cli.ts"),
      "run",
      "runtime/test/kafka/count-flow.ts",
      "-r",
      processes.tempDir("waxflow-kafka-auth-run-"),
      "--recovery-init",
      "-s",
      "0.5",
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: String(apiPort),
        WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        KC_BROKERS: secure(),
        KC_IN: input,
        KC_OUT: output,
        KC_GUARANTEE: "exactly-once",
        KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
        KAFKA_SASL_USERNAME: "bob",
        KAFKA_SASL_PASSWORD: SCRAM_PASSWORD,
        KAFKA_TLS_CA_FILE: certs.caFile,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  await expect
    .poll(async () => (await readTopic(broker(), output, 2)).length, { timeout: 45_000, interval: 250 })
    .toBe(100);
  const shown: string[] = [];
  for (const path of ["/status", "/steps", "/metrics"]) {
    const response = await fetch(`http://127.0.0.1:${apiPort}${path}`);
    expect(response.status, path).toBe(200);
    shown.push(await response.text());
  }
  run.child.kill("SIGTERM");
  const exit = await run.exit;
  for (const text of [...shown, exit.stderr]) expect(text).not.toContain(SCRAM_PASSWORD);
  expect(shown[1]).toContain("kafka_count.in");
}, 90_000);
