// The cluster port under attack, with real `waxflow run` processes and real sockets: random,
// truncated, oversized and replayed bytes, peers with the wrong secret or claiming another
// index, and members sending frames their role does not allow. Every time the processes keep
// running, count each refusal on /metrics, and their output stays exact.
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { get } from "node:http";
import { join, resolve } from "node:path";
import { serialize } from "node:v8";
import { expect, test } from "vitest";
import type { Frame } from "../src/cluster/frames.ts";
import { encodeOffer, newNonce } from "../src/cluster/handshake.ts";
import { type ControlFrame, encodeControl } from "../src/recovery/control.ts";
import { KEYS, keyOf, PARTITIONS } from "./fixtures/recovery-flow.ts";
import { dialAs, openRaw, sendRaw } from "./support/mesh-client.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses, type Run } from "./support/processes.ts";
import { countsByKey } from "./support/recovery-counts.ts";
import { TEST_SECRET, TEST_SECRET_BYTES } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FLOW = "runtime/test/fixtures/recovery-flow.ts";
const FLOW_ID = "recovery_cluster";
const UNTIL = 600;

const processes = childProcesses();

interface Cluster {
  readonly runs: Run[];
  readonly ports: number[];
  readonly apiPorts: number[];
  readonly out: string;
}

/** Two processes of the recovery fixture, each with its store, pacing its input to last ~10 s. */
async function cluster(extra: string[] = [], paceMs = 100): Promise<Cluster> {
  const root = processes.tempDir("waxflow-hostile-");
  const out = join(root, "out");
  mkdirSync(out);
  const [p0, p1, a0, a1] = (await freePorts(4)) as [number, number, number, number];
  const addresses = `127.0.0.1:${p0};127.0.0.1:${p1}`;
  const runs = [a0, a1].map((apiPort, i) =>
    processes.start(
      [
        CLI,
        "run",
        FLOW,
        "-i",
        String(i),
        "-a",
        addresses,
        "-r",
        join(root, `p${i}`),
        "--recovery-init",
        "-s",
        "0.1",
        ...extra,
      ],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          WAXFLOW_API_PORT: String(apiPort),
          WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
          RF_OUT: out,
          RF_UNTIL: String(UNTIL),
          RF_PACE_MS: String(paceMs),
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    ),
  );
  return { runs, ports: [p0, p1], apiPorts: [a0, a1], out };
}

function http(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    get({ host: "127.0.0.1", port, path }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => done({ status: res.statusCode ?? 0, body }));
    }).on("error", fail);
  });
}

async function ready(apiPort: number): Promise<void> {
  await expect
    .poll(async () => (await http(apiPort, "/readyz").catch(() => ({ status: 0 }))).status, { timeout: 30_000 })
    .toBe(200);
}

function refusals(metrics: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const m of metrics.matchAll(/^waxflow_cluster_refused_total\{reason="(\w+)"\} (\d+)$/gm)) {
    counts[m[1] as string] = Number(m[2]);
  }
  return counts;
}

/** Each key's counts as written: exactly 1..n, in order, for every key, is a run that lost and repeated nothing. */
function expectExactOutput(out: string): void {
  const byKey = countsByKey(out);
  const expected = new Map<string, number>();
  for (let p = 0; p < PARTITIONS; p++) {
    for (let offset = 0; offset < UNTIL; offset++) {
      const key = keyOf(p * 1000 + offset);
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
  }
  expect(byKey.size).toBe(KEYS);
  for (const [key, n] of expected) {
    expect(byKey.get(key), key).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  }
}

/** A recovery frame as it travels: a control frame's payload. */
const control = (frame: ControlFrame): Frame => ({ kind: "control", ...encodeControl(frame) });

const holderHello = (process: number): Frame => ({
  kind: "hello",
  process,
  processCount: 2,
  workersPerProcess: 0,
  flowId: FLOW_ID,
  recovery: true,
  holder: true,
});

/** A member with the right secret, as holder `index`, that said hello and was answered. */
async function holder(port: number, index: number) {
  const member = await dialAs(port, {
    secret: TEST_SECRET_BYTES,
    flowId: FLOW_ID,
    who: { index, role: "holder" },
    listener: 0,
  });
  member.send(holderHello(index));
  return member;
}

test("random, truncated, oversized and replayed bytes, wrong secrets, wrong indexes and forbidden frames are refused; the cluster runs on and its output is exact", async () => {
  const c = await cluster();
  const [p0, p1] = c.ports as [number, number];
  const [api0] = c.apiPorts as [number, number];
  await ready(api0);

  // A silent connection that never finishes its offer: closed by the handshake timeout.
  const silent = await openRaw(p0);
  silent.socket.write(encodeOffer({ index: 1, role: "process", nonce: newNonce() }).subarray(0, 20));
  const silentSince = Date.now();

  // Bytes that are not the protocol, of every size up to a large chunk; the 7-byte frame of
  // a serialized null once made a process throw a TypeError.
  const nullFrame = Buffer.concat([Buffer.from([0, 0, 0, 3]), serialize(null)]);
  const oversized = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), randomBytes(1000)]);
  const offerThenMore = Buffer.concat([encodeOffer({ index: 1, role: "process", nonce: newNonce() }), randomBytes(64)]);
  const foreign = [randomBytes(1), nullFrame, randomBytes(45), randomBytes(77), randomBytes(65_536), oversized];
  await Promise.all([...foreign, offerThenMore].flatMap((bytes) => [sendRaw(p0, bytes), sendRaw(p1, bytes)]));

  // The right protocol with the wrong secret, as process 1 (process 0 is where it dials).
  const wrong = await dialAs(p0, {
    secret: Buffer.from("not-the-cluster-secret-at-all!!"),
    flowId: FLOW_ID,
    who: { index: 1, role: "process" },
    listener: 0,
  });
  await wrong.closed;

  // A member's handshake replayed on a new connection: the listener's nonce differs.
  const recorded = await holder(p0, 7);
  recorded.socket.end();
  await recorded.closed;
  await sendRaw(p0, recorded.handshake);

  // The right secret but an index that may not dial there: refused at the offer.
  for (const [port, index] of [
    [p0, 0],
    [p1, 1],
    [p1, 0],
  ] as const) {
    const claim = await openRaw(port);
    claim.socket.write(encodeOffer({ index, role: "process", nonce: newNonce() }));
    await claim.closed;
    expect(claim.received().length, `index ${index} to port ${port}`).toBe(0);
  }
  // ...or the index of a process that is connected: told to try again later, nothing more.
  const twin = await dialAs(p0, {
    secret: TEST_SECRET_BYTES,
    flowId: FLOW_ID,
    who: { index: 1, role: "process" },
    listener: 0,
  });
  twin.send({
    kind: "hello",
    process: 1,
    processCount: 2,
    workersPerProcess: 1,
    flowId: FLOW_ID,
    recovery: true,
    holder: false,
  });
  await twin.closed;

  // Authenticated holders sending what a holder may not, one connection each.
  const forbidden: Frame[][] = [
    [{ kind: "exchange", from: 0, to: 0, messages: [] }],
    [control({ kind: "committed", worker: 0, frontier: 1_000_000 })],
    [
      control({
        kind: "plan",
        plan: {
          execution: 9,
          resumeEpoch: 1,
          resumedFrom: 0,
          sources: 0,
          processCount: 2,
          workersPerProcess: 1,
          stores: [],
        },
      }),
    ],
    [control({ kind: "released" })],
    [control({ kind: "rows", rows: [["count", "k1", 1, 1_000_000]] })],
    [holderHello(5)],
    // State queries and answers: holders run no workers, so they neither ask nor answer.
    [{ kind: "query", id: 1, query: { kind: "get", stepId: "count.stateful_batch", key: "k1", consistency: "live" } }],
    [{ kind: "answer", id: 0, answer: { kind: "value", json: "1" } }],
  ];
  for (const frames of forbidden) {
    const member = await holder(p0, 5);
    for (const frame of frames) member.send(frame);
    await member.closed;
  }
  // ...and bytes after the handshake that are not a frame, or a frame of no known kind.
  for (const body of [
    randomBytes(200),
    serialize(null),
    serialize({ kind: "hello" }),
    serialize({ kind: "rows", rows: 1 }),
    // A well-formed control frame whose recovery payload is not: refused by recovery, which reads it.
    serialize({ kind: "control", tag: "recovery", payload: serialize({ kind: "rows", rows: 1 }) }),
    // A state query past its bounds (a page of a billion keys, a 5000-character key), an answer without an id.
    serialize({
      kind: "query",
      id: 1,
      query: { kind: "list", stepId: "count", prefix: "", after: "", limit: 1e9, consistency: "live" },
    }),
    serialize({
      kind: "query",
      id: 2,
      query: { kind: "get", stepId: "count", key: "k".repeat(5000), consistency: "live" },
    }),
    serialize({ kind: "answer", answer: { kind: "value" } }),
  ]) {
    const member = await holder(p0, 6);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    member.socket.write(Buffer.concat([header, body]));
    await member.closed;
  }

  await silent.closed;
  expect(Date.now() - silentSince).toBeLessThan(15_000);

  const counted = refusals((await http(api0, "/metrics")).body);
  // 7 foreign byte strings, the wrong secret, the replay, the claimed index 0, the silent connection.
  expect(counted.handshake).toBeGreaterThanOrEqual(11);
  // exchange, committed, plan, released, rows, a second hello, a state query and an answer from a holder.
  expect(counted.role).toBeGreaterThanOrEqual(8);
  // Random bytes, a null, a hello without its fields, rows that are not a list (bare, and as a recovery payload),
  // two unbounded queries, an answer without id.
  expect(counted.frame).toBeGreaterThanOrEqual(8);
  expect((await http(api0, "/readyz")).status).toBe(200);

  const exits = await Promise.all(c.runs.map((r) => r.exit));
  for (const exit of exits) expect(exit, exit.stderr).toMatchObject({ code: 0 });
  const [first] = exits;
  expect(first?.stderr).toMatch(
    /^warning: cluster port: refused connection from 127\.0\.0\.1:\d+: did not speak the cluster protocol$/m,
  );
  expect(first?.stderr).toMatch(/failed authentication: wrong cluster secret or dataflow$/m);
  expect(first?.stderr).toMatch(/^warning: cluster port: refused holder 5 sent snapshot rows it does not hold/m);
  expect(first?.stderr).toMatch(
    /^warning: cluster port: refused holder 6 sent a malformed recovery control frame "rows"$/m,
  );
  expect(first?.stderr).not.toMatch(/TypeError|\n\s+at /);
  expectExactOutput(c.out);
}, 120_000);

test("the HTTP port given as a peer's address: one line saying it does not speak the cluster protocol", async () => {
  const [api, other] = (await freePorts(2)) as [number, number];
  processes.start([CLI, "run", "runtime/test/cli-fixtures/endless.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: String(api) },
    stdio: "ignore",
  });
  await expect
    .poll(async () => (await http(api, "/livez").catch(() => ({ status: 0 }))).status, { timeout: 30_000 })
    .toBe(200);
  const run = processes.start(
    [CLI, "run", "runtime/test/cli-fixtures/endless.ts", "-i", "1", "-a", `127.0.0.1:${api};127.0.0.1:${other}`],
    {
      cwd: ROOT,
      // Quiet: the failure is the only line, without the start line before it.
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: "0",
        WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        WAXFLOW_QUIET: "true",
      },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  const exit = await run.exit;
  expect(exit.code).toBe(1);
  expect(exit.stderr).toMatch(
    /^error: process 0 at 127\.0\.0\.1:\d+ did not speak the cluster protocol \(it sent "HTTP\/1\.1 400 .*"\); check that the address is its cluster port, not its HTTP port\n$/,
  );
}, 60_000);

test("with --cluster-tls the cluster's output is exact; a process without TLS, or plain bytes, are turned away", async () => {
  const c = await cluster(["--cluster-tls"], 20);
  const [p0] = c.ports as [number, number];
  const [api0] = c.apiPorts as [number, number];
  await ready(api0);
  await sendRaw(p0, encodeOffer({ index: 1, role: "process", nonce: newNonce() }));
  expect(refusals((await http(api0, "/metrics")).body).handshake).toBeGreaterThanOrEqual(1);
  const plain = processes.start(
    [CLI, "run", FLOW, "-i", "1", "-a", `127.0.0.1:${p0};127.0.0.1:1`, "-r", processes.tempDir("waxflow-plain-")],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: "0",
        WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        WAXFLOW_RECOVERY_INIT: "true",
      },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  const refused = await plain.exit;
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(
    /^error: process 0 at 127\.0\.0\.1:\d+ closed 3 connections without answering the handshake: every process needs the same --cluster-tls setting/m,
  );
  const exits = await Promise.all(c.runs.map((r) => r.exit));
  for (const exit of exits) expect(exit, exit.stderr).toMatchObject({ code: 0 });
  expectExactOutput(c.out);
}, 120_000);
