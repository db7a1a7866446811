// Savepoints and start-from on real `waxflow run` processes and a real S3-compatible store
// (SeaweedFS): a savepoint taken through process 0's HTTP API while a 3-process count
// runs, a fork cluster started from it, the start-from marker, fresh starts, list and
// delete, and the one-line failures of a missing or damaged savepoint.
import { cpSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { stateQueryToken } from "../src/api/state-token.ts";
import { applyRetention, BackupBucket, type BackupManifest } from "../src/recovery/backup.ts";
import { type SavepointManifest, type SavepointRecord, Savepoints } from "../src/recovery/savepoint.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses, type Exit, type Run } from "./support/processes.ts";
import { expectExactlyOnce, succeeds } from "./support/recovery-counts.ts";
import { backupConfig, type ObjectStore, startObjectStore } from "./support/seaweedfs.ts";
import { TEST_SECRET, TEST_SECRET_BYTES } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FLOW = "runtime/test/fixtures/recovery-flow.ts";
const TOKEN = stateQueryToken(TEST_SECRET_BYTES);

const processes = childProcesses();
let store: ObjectStore;

beforeAll(async () => {
  store = await startObjectStore();
}, 120_000);
afterAll(async () => {
  await store?.stop();
});

interface Workspace {
  readonly root: string;
  readonly out: string;
  readonly store: (i: number) => string;
}

function workspace(name: string): Workspace {
  const root = processes.tempDir(`waxflow-savepoint-${name}-`);
  const out = join(root, "out");
  mkdirSync(out);
  return { root, out, store: (i) => join(root, `process-${i}`) };
}

/** `count` processes (-w 2), snapshots every 0.1 s, a backup every 0.5 s; process i's API on apiPorts[i]. */
async function cluster(
  count: number,
  ws: Workspace,
  env: Record<string, string>,
): Promise<{ runs: Run[]; apiPorts: number[] }> {
  const ports = await freePorts(2 * count);
  const addresses = ports
    .slice(0, count)
    .map((p) => `127.0.0.1:${p}`)
    .join(";");
  const apiPorts = ports.slice(count);
  const runs = apiPorts.map((api, i) =>
    processes.start(
      [
        CLI,
        "run",
        FLOW,
        ...[
          "-i",
          String(i),
          "-a",
          addresses,
          "-w",
          "2",
          "-r",
          ws.store(i),
          "--recovery-init",
          "-s",
          "0.1",
          "-b",
          "0.5",
        ],
      ],
      {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "",
          WAXFLOW_API_PORT: String(api),
          WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
          WAXFLOW_STATEFULSET_NAME: "source",
          RF_OUT: ws.out,
          ...store.env,
          ...env,
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    ),
  );
  return { runs, apiPorts };
}

interface Reply {
  readonly status: number;
  readonly json: Record<string, unknown>;
}

async function api(
  port: number,
  method: string,
  path: string,
  opts: { token?: string | null; body?: string } = {},
): Promise<Reply> {
  const token = opts.token === undefined ? TOKEN : opts.token;
  const headers: Record<string, string> = token === null ? {} : { "x-waxflow-state-token": token };
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body: opts.body });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as Record<string, unknown> };
}

/** Process 0's savepoint, once it is no longer pending. */
async function settled(port: number, id: string): Promise<SavepointRecord> {
  let record: SavepointRecord | undefined;
  await expect
    .poll(
      async () => {
        const reply = await api(port, "GET", `/savepoints/${id}`);
        record = reply.json as unknown as SavepointRecord;
        return record.state;
      },
      { timeout: 30_000, interval: 200 },
    )
    .not.toBe("pending");
  return record as SavepointRecord;
}

function startOffsets(exits: readonly Exit[]): number[] {
  return exits.flatMap(({ stderr }) => [...stderr.matchAll(/^gen p\d+ from (\d+)$/gm)].map((m) => Number(m[1])));
}

/** Each partition's start offset, as `p<i>=<offset>` in partition order: which worker runs it may differ. */
function partitionStarts(exits: readonly Exit[]): string[] {
  const starts = exits.flatMap(({ stderr }) => [...stderr.matchAll(/^gen (p\d+) from (\d+)$/gm)]);
  return starts.map((m) => `${m[1]}=${m[2]}`).sort();
}

test("a savepoint taken through process 0's API while 3 processes count; a fork cluster started from it and the source both count exactly once; a restart keeps the fork's newer state, the savepoint under a new token restores again; fresh starts empty", async () => {
  const source = workspace("source");
  const env = { WAXFLOW_BACKUP_PREFIX: "sp-source", WAXFLOW_BACKUP_KEEP: "2" };
  // Paced over about 12 s: time to take and list savepoints while it runs.
  const a = await cluster(3, source, { ...env, RF_UNTIL: "600", RF_PACE_MS: "100" });
  const [api0, api1] = a.apiPorts as [number, number];
  // Served once the cluster has resumed (503 before, or no answer at all yet).
  await expect
    .poll(
      () =>
        api(api0, "GET", "/savepoints").then(
          (r) => r.status,
          () => 0,
        ),
      { timeout: 60_000, interval: 200 },
    )
    .toBe(200);

  const created = await api(api0, "POST", "/savepoints", { body: JSON.stringify({ id: "sp-one" }) });
  expect(created.status).toBe(202);
  expect(created.json).toMatchObject({ id: "sp-one", state: "pending" });
  const generated = await api(api0, "POST", "/savepoints", { body: "{}" });
  expect(generated.status).toBe(202);
  const generatedId = String(generated.json.id);
  expect(generatedId).toMatch(/^sp-\d{8}-\d{6}-[0-9a-f]{4}$/);
  expect((await api(api0, "POST", "/savepoints", { body: '{"id":"sp-one"}' })).status).toBe(409);

  const one = await settled(api0, "sp-one");
  expect(one).toMatchObject({ id: "sp-one", state: "complete", execution: 1, processCount: 3 });
  expect(one.bytes).toBeGreaterThan(0);
  expect((await settled(api0, generatedId)).state).toBe("complete");
  const listed = await api(api0, "GET", "/savepoints");
  expect((listed.json.savepoints as SavepointRecord[]).map((r) => r.id)).toEqual([generatedId, "sp-one"]);

  // Refusals: no or a wrong token, another process, hostile bodies, ids and methods.
  expect(await api(api0, "GET", "/savepoints", { token: null })).toEqual({
    status: 401,
    json: { error: "savepoints need this dataflow's token in the x-waxflow-state-token header" },
  });
  expect((await api(api0, "POST", "/savepoints", { token: "wrong", body: "x".repeat(100_000) })).status).toBe(401);
  expect(await api(api1, "GET", "/savepoints")).toEqual({
    status: 409,
    json: { error: "savepoints are served by process 0 (pod source-0)" },
  });
  expect((await api(api0, "POST", "/savepoints", { body: JSON.stringify({ id: "x".repeat(5000) }) })).status).toBe(413);
  for (const body of ['{"id":"Bad_Id"}', '{"id":7}', '{"name":"x"}', "[]", "not json", '{"id":"-x"}']) {
    expect((await api(api0, "POST", "/savepoints", { body })).status, body).toBe(400);
  }
  expect((await api(api0, "GET", "/savepoints/UPPER")).status).toBe(400);
  expect((await api(api0, "GET", "/savepoints/%E0%A4%A")).status).toBe(400);
  expect((await api(api0, "PUT", "/savepoints", { body: "{}" })).status).toBe(405);
  expect((await api(api0, "POST", "/savepoints/sp-one")).status).toBe(405);
  expect((await api(api0, "GET", "/savepoints/no-such")).status).toBe(404);

  // Delete: savepoint.json first, then its objects; nothing of it is left in the bucket.
  const bucket = new BackupBucket(backupConfig(store.endpoint, "sp-source"));
  expect(await api(api0, "DELETE", `/savepoints/${generatedId}`)).toEqual({
    status: 200,
    json: { deleted: generatedId },
  });
  expect((await api(api0, "GET", `/savepoints/${generatedId}`)).status).toBe(404);
  expect((await api(api0, "DELETE", `/savepoints/${generatedId}`)).status).toBe(404);
  expect((await bucket.list(bucket.savepointPrefix(generatedId))).length).toBe(0);

  const aExits = await succeeds(a.runs);
  expectExactlyOnce(source.out, 600);
  // The savepoint outlived retention (keep 2) of the sets it was copied from.
  const savepoint = JSON.parse(
    (await bucket.getText(`${bucket.savepointPrefix("sp-one")}savepoint.json`)) ?? "",
  ) as SavepointManifest;
  expect(savepoint).toMatchObject({ id: "sp-one", epoch: one.epoch, sourceSet: one.sourceSet, processCount: 3 });
  const leftSets = (await bucket.list(bucket.setsPrefix)).map((o) => o.key);
  expect(leftSets.some((k) => k.includes(`/${savepoint.sourceSet}/`))).toBe(false);
  const spKeys = (await bucket.list(bucket.savepointsPrefix)).map((o) => o.key).sort();
  expect(spKeys).toEqual(
    [...savepoint.objects.map((o) => o.key), `${bucket.savepointPrefix("sp-one")}savepoint.json`].sort(),
  );
  // Copied as they were uploaded: compressed, and the records say so.
  const spObjects = await bucket.list(bucket.savepointPrefix("sp-one"));
  for (const o of savepoint.objects) {
    expect(o).toMatchObject({ encoding: "zstd", key: expect.stringMatching(/\/process-\d\/part-\d+\.sqlite3\.zst$/) });
    expect(o.fileBytes).toBeGreaterThan(o.bytes);
    expect(spObjects.find((l) => l.key === o.key)?.bytes).toBe(o.bytes);
  }
  expect(aExits[0]?.stderr).toMatch(/savepoint sp-one complete: backup set \S+ \(epoch \d+, \d+ bytes\)/);

  // The fork: its own directories and prefix, the source's files as its sink saw them
  // (a resume truncates each back to the savepoint's positions), started from sp-one.
  const fork = workspace("fork");
  cpSync(source.out, fork.out, { recursive: true });
  const forkEnv = {
    WAXFLOW_BACKUP_PREFIX: "sp-fork",
    WAXFLOW_START_FROM: "savepoint:sp-one",
    WAXFLOW_SAVEPOINT_PREFIX: "sp-source",
  };
  const b = await succeeds((await cluster(3, fork, { ...forkEnv, RF_UNTIL: "600" })).runs);
  for (const [i, exit] of b.entries()) {
    expect(exit.stderr).toMatch(
      new RegExp(
        `process ${i}: restored the recovery store from savepoint sp-one \\(backup set ${savepoint.sourceSet}, execution 1, epoch ${savepoint.epoch},`,
      ),
    );
    expect(readFileSync(join(fork.store(i), "start-from"), "utf8")).toBe("savepoint:sp-one\n");
  }
  // Resumed mid-stream: from the savepoint, not from 0 and not from where the source ended.
  const forkStarts = startOffsets(b);
  expect(Math.min(...forkStarts)).toBeGreaterThan(0);
  expect(Math.max(...forkStarts)).toBeLessThan(600);
  expectExactlyOnce(fork.out, 600);

  // A restart with the same start-from keeps the volume's newer state (the marker).
  const again = await succeeds((await cluster(3, fork, { ...forkEnv, RF_UNTIL: "900" })).runs);
  expect(startOffsets(again)).toEqual(Array(6).fill(600));
  for (const exit of again) expect(exit.stderr).not.toMatch(/restored the recovery store/);
  expectExactlyOnce(fork.out, 900);

  // The same savepoint under a new token (the controller's rollback to it) restores it again:
  // every process goes back to the savepoint's offsets, and the output stays exactly once.
  const rollback = { ...forkEnv, WAXFLOW_START_FROM: "savepoint:sp-one@rollback-2", RF_UNTIL: "900" };
  const rolledBack = await succeeds((await cluster(3, fork, rollback)).runs);
  expect(partitionStarts(rolledBack)).toEqual(partitionStarts(b));
  for (const [i, exit] of rolledBack.entries()) {
    expect(exit.stderr).toMatch(new RegExp(`process ${i}: restored the recovery store from savepoint sp-one `));
  }
  expect(readFileSync(join(fork.store(0), "start-from"), "utf8")).toBe("savepoint:sp-one@rollback-2\n");
  expectExactlyOnce(fork.out, 900);

  // fresh:<token> starts empty, once: not from the volume and not from the fork's backups.
  const fresh = workspace("fresh");
  for (let i = 0; i < 3; i++) cpSync(fork.store(i), fresh.store(i), { recursive: true });
  const freshEnv = { ...forkEnv, WAXFLOW_START_FROM: "fresh:t1" };
  const started = await succeeds((await cluster(3, fresh, { ...freshEnv, RF_UNTIL: "300" })).runs);
  expect(startOffsets(started)).toEqual(Array(6).fill(0));
  for (const exit of started) expect(exit.stderr).toMatch(/starting with an empty store \(fresh:t1, applied once\)/);
  expectExactlyOnce(fresh.out, 300);
  expect(readFileSync(join(fresh.store(0), "start-from"), "utf8")).toBe("fresh:t1\n");
  bucket.close();
}, 240_000);

/** Exits of `count` processes that must each fail with exactly this one error line. */
async function failEach(runs: readonly Run[], line: RegExp): Promise<void> {
  for (const exit of await Promise.all(runs.map((r) => r.exit))) {
    expect(exit.code, exit.stderr).toBe(1);
    expect(exit.stderr.split("\n").filter((l) => l.startsWith("error:"))).toEqual([expect.stringMatching(line)]);
  }
}

test("a savepoint of 2 processes starts 3; a missing savepoint, a truncated savepoint object and fewer processes than the savepoint's fail the start in one line naming the id and the object; retention leaves savepoints alone", async () => {
  const ws = workspace("damaged");
  const prefix = "sp-damaged";
  await succeeds((await cluster(2, ws, { WAXFLOW_BACKUP_PREFIX: prefix, RF_UNTIL: "200", RF_PACE_MS: "20" })).runs);
  const bucket = new BackupBucket(backupConfig(store.endpoint, prefix));
  const manifests = (await bucket.list(bucket.setsPrefix)).map((o) => o.key).filter((k) => k.endsWith("manifest.json"));
  const newest = JSON.parse((await bucket.getText(manifests.sort().at(-1) ?? "")) ?? "") as BackupManifest;
  // The savepoint the API would make of that set, made here without a running cluster.
  const savepoints = new Savepoints({ bucket, knownFrontier: () => 0, timeoutMs: 60_000, log: () => {} });
  expect(await savepoints.create("sp-two")).toMatchObject({ created: { id: "sp-two", state: "pending" } });
  await savepoints.setCompleted(newest);
  expect(await savepoints.get("sp-two")).toMatchObject({ state: "complete", processCount: 2, epoch: newest.epoch });
  // Retention with no grace deletes every set but the newest: never a savepoint.
  await applyRetention(bucket, 0, Date.now() + 3_600_000);
  expect((await bucket.list(bucket.savepointPrefix("sp-two"))).length).toBe(newest.objects.length + 1);

  const fork = (name: string, count: number, startFrom: string) =>
    cluster(count, workspace(name), {
      WAXFLOW_BACKUP_PREFIX: `${prefix}-${name}`,
      WAXFLOW_SAVEPOINT_PREFIX: prefix,
      WAXFLOW_START_FROM: startFrom,
      RF_UNTIL: "300",
    });
  // More processes than the savepoint's: the new one starts empty and gets its share through the hand-off.
  const wider = workspace("wider");
  cpSync(ws.out, wider.out, { recursive: true });
  const widened = await succeeds(
    (
      await cluster(3, wider, {
        WAXFLOW_BACKUP_PREFIX: `${prefix}-wider`,
        WAXFLOW_SAVEPOINT_PREFIX: prefix,
        WAXFLOW_START_FROM: "savepoint:sp-two",
        RF_UNTIL: "300",
      })
    ).runs,
  );
  expect(widened[2]?.stderr).toMatch(
    /process 2 was not in savepoint sp-two \(2 processes\): it starts with an empty store/,
  );
  expectExactlyOnce(wider.out, 300);

  await failEach(
    (await fork("missing", 1, "savepoint:no-such")).runs,
    /^error: savepoint no-such not found: sp-damaged\/savepoints\/no-such\/savepoint\.json is missing in bucket "waxflow-backups" at http:\/\/127\.0\.0\.1:\d+; /,
  );
  await failEach(
    (await fork("fewer", 1, "savepoint:sp-two")).runs,
    /^error: savepoint sp-two was taken with 2 processes; restoring onto 1 is not supported .*: start 2 processes, then scale down$/,
  );
  const damaged = `${bucket.savepointPrefix("sp-two")}process-1/part-0.sqlite3.zst`;
  const chunks: Buffer[] = [];
  for await (const chunk of (await bucket.get(damaged)) ?? []) chunks.push(chunk as Buffer);
  await bucket.put(damaged, Buffer.concat(chunks).subarray(0, 100));
  await failEach(
    (await fork("truncated", 2, "savepoint:sp-two")).runs,
    /^error: savepoint sp-two is unusable: sp-damaged\/savepoints\/sp-two\/process-1\/part-0\.sqlite3\.zst is truncated or padded \(100 bytes, the manifest says \d+\); no other savepoint is tried/,
  );
  bucket.close();
}, 180_000);
