// GET /state on real `waxflow run` processes: a 3-process cluster answers every key from
// whichever process is asked (routed over the mesh to the owner), live and committed, lists
// keys in pages, refuses hostile requests with one line each and runs on; a rescale to 2
// processes and a holder moves keys to new owners, which answer the same counts.
import { join, resolve } from "node:path";
import { expect, test } from "vitest";
import { stateQueryToken } from "../src/api/state-token.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses, type Run } from "./support/processes.ts";
import { TEST_SECRET, TEST_SECRET_BYTES } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FLOW = "runtime/test/fixtures/state-query-flow.ts";
const KEYS = 50;
const TIMES = 4;
const TOKEN = stateQueryToken(TEST_SECRET_BYTES);

const processes = childProcesses();

interface Cluster {
  readonly runs: Run[];
  readonly apiPorts: number[];
  readonly addresses: string;
}

/** `count` processes (-w 2) of the fixture, each with its store under `root`; `spare` more free ports. */
async function cluster(root: string, count: number, spare = 0): Promise<Cluster & { spare: number[] }> {
  const ports = await freePorts(2 * count + spare);
  const addresses = ports
    .slice(0, count)
    .map((p) => `127.0.0.1:${p}`)
    .join(";");
  const apiPorts = ports.slice(count, 2 * count);
  const runs = apiPorts.map((api, i) =>
    waxflow(
      ["-i", String(i), "-a", addresses, "-w", "2", "-r", join(root, `p${i}`), "--recovery-init", "-s", "0.2"],
      api,
    ),
  );
  return { runs, apiPorts, addresses, spare: ports.slice(2 * count) };
}

function waxflow(args: string[], apiPort: number, extraEnv: Record<string, string> = {}): Run {
  return processes.start([CLI, "run", FLOW, ...args, "--no-supervise", "--state-query"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      WAXFLOW_API_PORT: String(apiPort),
      WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
      WAXFLOW_QUIET: "true",
      SQ_KEYS: String(KEYS),
      SQ_TIMES: String(TIMES),
      ...extraEnv,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

/** `token` null: the request carries none. */
async function state(port: number, path: string, token: string | null = TOKEN): Promise<Reply> {
  const headers: Record<string, string> = token === null ? {} : { "x-waxflow-state-token": token };
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: res.status, body: await res.text() };
}

/** A key's count as `port` answers it; undefined while the cluster is not there to answer. */
async function countOf(port: number, key: string, consistency = "live"): Promise<number | undefined> {
  const reply = await state(port, `/state/count?key=${key}&consistency=${consistency}`).catch(() => undefined);
  if (reply === undefined || reply.status === 503 || reply.status === 504) return undefined;
  // Keys not counted yet have no state.
  if (reply.status === 404 && reply.body.includes("has no state")) return 0;
  if (reply.status !== 200) throw new Error(`${reply.status} ${reply.body}`);
  return (JSON.parse(reply.body) as { value: number }).value;
}

/** The lowest epoch any worker of these processes has committed, from /metrics. */
async function lowestCommit(ports: readonly number[]): Promise<number> {
  const epochs: number[] = [];
  for (const port of ports) {
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const m of metrics.matchAll(/^waxflow_worker_committed_epoch\{worker="\d+"\} (\d+)$/gm))
      epochs.push(Number(m[1]));
  }
  return epochs.length === 2 * ports.length ? Math.min(...epochs) : -1;
}

const allKeys = Array.from({ length: KEYS }, (_, i) => `k${i}`);

async function everyCount(ports: readonly number[], consistency: string): Promise<number[]> {
  const counts = await Promise.all(ports.flatMap((p) => allKeys.map((k) => countOf(p, k, consistency))));
  return counts.map((n) => n ?? -1);
}

test("3 processes: every process answers every key from its owner, live and committed, pages keys and says what JSON cannot hold", async () => {
  const root = processes.tempDir("waxflow-state-query-");
  const c = await cluster(root, 3);
  const [api0, api1, api2] = c.apiPorts as [number, number, number];
  await expect
    .poll(() => everyCount(c.apiPorts, "live"), { timeout: 60_000, interval: 300 })
    .toEqual(Array(3 * KEYS).fill(TIMES));
  await expect
    .poll(() => everyCount(c.apiPorts, "committed"), { timeout: 20_000, interval: 300 })
    .toEqual(Array(3 * KEYS).fill(TIMES));

  const live = await state(api1, "/state/count.stateful_batch?key=k7");
  expect(live.status).toBe(200);
  expect(JSON.parse(live.body)).toEqual({
    step: "state_query.count.stateful_batch",
    consistency: "live",
    key: "k7",
    value: TIMES,
  });
  const committed = JSON.parse((await state(api2, "/state/count?key=k7&consistency=committed")).body);
  expect(committed).toMatchObject({ key: "k7", value: TIMES });
  expect(committed.epoch).toBeGreaterThan(0);

  // Pages of 7 keys from every process's workers, merged in key order, followed to the end.
  for (const consistency of ["live", "committed"]) {
    const listed: string[] = [];
    let after = "";
    for (let pages = 0; pages < 20; pages++) {
      const page = await state(api0, `/state/count?limit=7&after=${after}&consistency=${consistency}`);
      expect(page.status, page.body).toBe(200);
      const { keys, next } = JSON.parse(page.body) as { keys: string[]; next: string | null };
      listed.push(...keys);
      if (next === null) break;
      after = next;
    }
    expect(listed, consistency).toEqual([...allKeys].sort());
  }
  const prefixed = JSON.parse((await state(api2, "/state/count?prefix=k1")).body) as { keys: string[] };
  expect(prefixed.keys).toEqual(["k1", "k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19"]);

  // States JSON has no plain value for: converted where JSON has a faithful form, else one line.
  expect(JSON.parse((await state(api0, "/state/remember?key=map")).body).value).toEqual({ a: 1 });
  expect(JSON.parse((await state(api0, "/state/remember?key=big")).body).value).toBe(String(2n ** 70n));
  expect(await state(api0, "/state/remember?key=nan")).toEqual({
    status: 422,
    body: "the state is NaN, which JSON cannot express\n",
  });
  expect(await state(api1, "/state/odd?key=k0&consistency=committed")).toEqual({
    status: 422,
    body: "the state[0][1] is NaN, which JSON cannot express\n",
  });
  expect(await state(api1, "/state/count?key=nobody")).toEqual({
    status: 404,
    body: 'key "nobody" has no state in step "state_query.count.stateful_batch"\n',
  });

  // Hostile requests: one line each, and the process answers on.
  const hostile: Array<[string, string | null, number, RegExp]> = [
    ["/state/nope?key=k1", TOKEN, 404, /^dataflow "state_query" has no stateful step "nope"; its stateful steps are /],
    [`/state/count?key=${"x".repeat(8000)}`, TOKEN, 414, /^key is longer than 4096 bytes; no key is that long$/],
    ["/state/count?key=k1", null, 401, /^state queries need the dataflow's token in the x-waxflow-state-token header$/],
    [
      "/state/count?key=k1",
      "0".repeat(64),
      403,
      /^the x-waxflow-state-token header does not hold this dataflow's token$/,
    ],
    ["/state/count?key=k1", "", 403, /^the x-waxflow-state-token header does not hold/],
    ["/state/count?limit=100000", TOKEN, 400, /^limit must be a whole number from 1 to 1000, got "100000"$/],
    ["/state/count?key=k1&consistency=eventual", TOKEN, 400, /^consistency must be live or committed/],
    ["/state/%E0%A4%A", TOKEN, 400, /^the step in the path is not valid percent-encoding$/],
    ["/state/", TOKEN, 400, /^name a step: \/state\/STEP\?key=KEY$/],
  ];
  for (const [path, token, status, line] of hostile) {
    const reply = await state(api1, path, token);
    expect(reply.status, path).toBe(status);
    expect(reply.body.split("\n"), path).toHaveLength(2);
    expect(reply.body.trimEnd(), path).toMatch(line);
  }
  // A URL past Node's header limit is refused by the HTTP parser itself.
  expect((await state(api1, `/state/count?key=${"y".repeat(100_000)}`)).status).toBe(431);
  expect(await countOf(api1, "k3")).toBe(TIMES);
  for (const run of c.runs) expect(run.child.exitCode).toBeNull();
  expect(c.runs.map((r) => r.stderrSoFar()).join("")).not.toMatch(/TypeError|\n\s+at /);
}, 120_000);

test("a rescale from 3 processes to 2 and a holder: each moved key is answered by its new owner, with its count", async () => {
  const root = processes.tempDir("waxflow-state-query-rescale-");
  const before = await cluster(root, 3);
  await expect
    .poll(() => everyCount(before.apiPorts, "committed"), { timeout: 60_000, interval: 300 })
    .toEqual(Array(3 * KEYS).fill(TIMES));
  // Epochs go on after the feeds ran dry: once every worker has committed two more, the
  // resume epoch is past the last item and the new cluster has nothing to replay.
  const settled = await lowestCommit(before.apiPorts);
  await expect
    .poll(() => lowestCommit(before.apiPorts), { timeout: 30_000, interval: 200 })
    .toBeGreaterThanOrEqual(settled + 2);
  for (const run of before.runs) run.child.kill("SIGTERM");
  await Promise.all(before.runs.map((r) => r.exit));

  const after = await cluster(root, 2, 1);
  const [holderApi] = after.spare as [number];
  waxflow(["-i", "2", "-a", after.addresses, "--holder", "-r", join(root, "p2")], holderApi);
  // While the cluster re-forms a query may find nobody to answer; never a wrong or missing count.
  const seen = new Set<number>();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const counts = await Promise.all(after.apiPorts.flatMap((p) => allKeys.map((k) => countOf(p, k))));
    for (const n of counts) if (n !== undefined) seen.add(n);
    if (counts.every((n) => n === TIMES)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect([...seen]).toEqual([TIMES]);
  expect(await everyCount(after.apiPorts, "live")).toEqual(Array(2 * KEYS).fill(TIMES));
  expect(await everyCount(after.apiPorts, "committed")).toEqual(Array(2 * KEYS).fill(TIMES));
  // The holder holds no workers: it says so rather than answering from its old store.
  expect(await state(holderApi, "/state/count?key=k1")).toEqual({
    status: 503,
    body: "a holder runs no workers and holds no live state\n",
  });
}, 150_000);

test("one process, its worker in the process's own thread, answers; without --state-query, /state is off: 404 before the token or the URL is read", async () => {
  const [on, off] = (await freePorts(2)) as [number, number];
  const env = { PATH: process.env.PATH ?? "", WAXFLOW_QUIET: "true", SQ_KEYS: String(KEYS), SQ_TIMES: String(TIMES) };
  const start = (port: number, args: string[], extra: Record<string, string> = {}): Run =>
    processes.start([CLI, "run", FLOW, ...args], {
      cwd: ROOT,
      env: { ...env, WAXFLOW_API_PORT: String(port), ...extra },
      stdio: ["ignore", "ignore", "pipe"],
    });
  const single = start(on, ["--state-query"], { WAXFLOW_CLUSTER_SECRET: TEST_SECRET });
  const closed = start(off, []);
  await expect.poll(() => countOf(on, "k9"), { timeout: 30_000, interval: 300 }).toBe(TIMES);
  expect(await state(on, "/state/count?key=k9&consistency=committed")).toEqual({
    status: 409,
    body: "consistency=committed reads the recovery store, and this dataflow runs without recovery (-r)\n",
  });
  await expect
    .poll(async () => (await fetch(`http://127.0.0.1:${off}/readyz`).catch(() => undefined))?.status, {
      timeout: 30_000,
    })
    .toBe(200);
  for (const token of [TOKEN, null]) {
    expect(await state(off, "/state/%%%?key=k1", token)).toEqual({
      status: 404,
      body: "state queries are off: start the process with --state-query (WAXFLOW_STATE_QUERY=true)\n",
    });
  }
  expect(single.child.exitCode).toBeNull();
  expect(closed.child.exitCode).toBeNull();
}, 60_000);
