// Backups of the recovery stores to a real S3-compatible store (SeaweedFS) and restore
// from them, across real `waxflow run` processes writing real files: compressed sets,
// sets written before compression, and damaged or hostile objects and records.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { zstdDecompressSync } from "node:zlib";
import { afterAll, beforeAll, expect, test } from "vitest";
import {
  applyRetention,
  BackupBucket,
  type BackupManifest,
  type BackupObject,
  type ListedObject,
  restoreIfEmpty,
  setName,
} from "../src/recovery/backup.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses, type Exit, type Run } from "./support/processes.ts";
import { countsByKey, expectExactlyOnce, succeeds } from "./support/recovery-counts.ts";
import { backupConfig, type ObjectStore, S3_BUCKET, startObjectStore } from "./support/seaweedfs.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FLOW = "runtime/test/fixtures/recovery-flow.ts";

const processes = childProcesses();
let store: ObjectStore;

beforeAll(async () => {
  store = await startObjectStore();
}, 120_000);
afterAll(async () => {
  await store?.stop();
});

function waxflow(args: string[], env: Record<string, string>): Run {
  return processes.start([CLI, "run", FLOW, ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      WAXFLOW_API_PORT: "0",
      WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
      ...store.env,
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

function workspace(): { out: string; store: (i: number) => string; root: string } {
  const root = processes.tempDir("waxflow-backup-");
  const out = join(root, "out");
  mkdirSync(out);
  return { root, out, store: (i) => join(root, `process-${i}`) };
}

/** `count` processes (-w 2), snapshots every 0.1 s, a backup every 0.5 s to `prefix`. */
async function cluster(count: number, ws: ReturnType<typeof workspace>, env: Record<string, string>): Promise<Run[]> {
  const ports = await freePorts(count);
  const addresses = ports.map((p) => `127.0.0.1:${p}`).join(";");
  return Array.from({ length: count }, (_, i) =>
    waxflow(
      ["-i", String(i), "-a", addresses, "-w", "2", "-r", ws.store(i), "--recovery-init", "-s", "0.1", "-b", "0.5"],
      { RF_OUT: ws.out, ...env },
    ),
  );
}

function startOffsets(exits: readonly Exit[]): number[] {
  return exits.flatMap(({ stderr }) => [...stderr.matchAll(/^gen p\d+ from (\d+)$/gm)].map((m) => Number(m[1])));
}

/** The sets under `prefix`: their names, in order, and which are complete. */
async function sets(bucket: BackupBucket): Promise<{ objects: ListedObject[]; complete: string[]; all: string[] }> {
  const objects = await bucket.list(bucket.setsPrefix);
  const name = (key: string) => key.slice(bucket.setsPrefix.length).split("/")[0] ?? "";
  const all = [...new Set(objects.map((o) => name(o.key)))].sort();
  const complete = all.filter((s) => objects.some((o) => o.key === `${bucket.setPrefix(s)}manifest.json`));
  return { objects, complete, all };
}

async function manifest(bucket: BackupBucket, set: string): Promise<BackupManifest> {
  return JSON.parse((await bucket.getText(`${bucket.setPrefix(set)}manifest.json`)) ?? "") as BackupManifest;
}

const deleteStores = (ws: ReturnType<typeof workspace>, count: number) => {
  for (let i = 0; i < count; i++) rmSync(ws.store(i), { recursive: true, force: true });
};

test("3 processes back up while counting; every recovery directory deleted, they restore and continue exactly once; retention leaves no orphans", async () => {
  const ws = workspace();
  const prefix = "restore-all";
  const bucket = new BackupBucket({ ...backupConfig(store.endpoint, prefix), keep: 2 });
  const env = { WAXFLOW_BACKUP_PREFIX: prefix, WAXFLOW_BACKUP_KEEP: "2" };
  // Paced over about 3 s: several backup intervals of 0.5 s.
  await succeeds(await cluster(3, ws, { ...env, RF_UNTIL: "600", RF_PACE_MS: "25" }));
  const first = await sets(bucket);
  expect(first.complete.length).toBeGreaterThanOrEqual(1);
  // Retention ran after each manifest: never more than 2 complete sets.
  expect(first.complete.length).toBeLessThanOrEqual(2);
  const newest = first.complete.at(-1) as string;
  const m = await manifest(bucket, newest);
  expect(m).toMatchObject({ processCount: 3, set: newest, flowId: "recovery_cluster" });
  expect(new Set(m.objects.map((o) => o.process))).toEqual(new Set([0, 1, 2]));
  for (const o of m.objects) {
    expect(o.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(first.objects.find((l) => l.key === o.key)?.bytes).toBe(o.bytes);
    // Compressed: the key and the record say so, and the record keeps the file's length.
    expect(o).toMatchObject({ encoding: "zstd", key: `${bucket.setPrefix(newest)}process-${o.process}/${o.file}.zst` });
    expect(o.fileBytes).toBeGreaterThan(o.bytes);
  }

  deleteStores(ws, 3);
  // A restore writes only inside the recovery directory: on Kubernetes it is a volume's
  // mount point, and beside it is the read-only root filesystem.
  for (let i = 0; i < 3; i++) writeFileSync(`${ws.store(i)}.restoring`, "not the restore's");
  const exits = await succeeds(await cluster(3, ws, { ...env, RF_UNTIL: "900", RF_PACE_MS: "2" }));
  for (const [i, exit] of exits.entries()) {
    expect(exit.stderr).toMatch(
      new RegExp(`process ${i}: restored the recovery store from backup set ${newest} \\(execution 1, epoch \\d+`),
    );
    expect(readFileSync(`${ws.store(i)}.restoring`, "utf8")).toBe("not the restore's");
  }
  // Resumed from the backup's positions, not from 0.
  expect(Math.min(...startOffsets(exits))).toBeGreaterThan(0);
  expectExactlyOnce(ws.out, 900);

  // The second run's last set may still be incomplete (no process waits at its end):
  // retention with no grace removes it, and nothing else is left that no manifest lists.
  await applyRetention(bucket, 0);
  const after = await sets(bucket);
  expect(after.complete.length).toBeGreaterThanOrEqual(1);
  expect(after.complete.length).toBeLessThanOrEqual(2);
  expect(after.all).toEqual(after.complete);
  const listed = new Set<string>();
  for (const set of after.complete) {
    listed.add(`${bucket.setPrefix(set)}manifest.json`);
    for (let i = 0; i < 3; i++) listed.add(`${bucket.setPrefix(set)}process-${i}.json`);
    for (const o of (await manifest(bucket, set)).objects) listed.add(o.key);
  }
  expect(after.objects.map((o) => o.key).sort()).toEqual([...listed].sort());
  bucket.close();
}, 120_000);

test("a truncated object in the newest set: every process falls back to the previous set, saying so in one line, and counts continue exactly once", async () => {
  const ws = workspace();
  const prefix = "fallback";
  const bucket = new BackupBucket(backupConfig(store.endpoint, prefix));
  const env = { WAXFLOW_BACKUP_PREFIX: prefix, WAXFLOW_BACKUP_KEEP: "5" };
  // Paced over about 7 s: a process still uploading when a boundary passes skips it, so
  // under load some sets stay incomplete; this leaves room for at least two complete ones.
  await succeeds(await cluster(3, ws, { ...env, RF_UNTIL: "600", RF_PACE_MS: "60" }));
  const { complete } = await sets(bucket);
  expect(complete.length).toBeGreaterThanOrEqual(2);
  const [previous, newest] = complete.slice(-2) as [string, string];
  const damaged = (await manifest(bucket, newest)).objects.find((o) => o.process === 1);
  if (damaged === undefined) throw new Error(`set ${newest} lists no object of process 1`);
  const chunks: Buffer[] = [];
  for await (const chunk of (await bucket.get(damaged.key)) ?? []) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  expect(body.length).toBe(damaged.bytes);
  await bucket.put(damaged.key, body.subarray(0, Math.floor(body.length / 2)));

  // The outcome carries the fallback line (what /status serves and the operator turns into
  // a RestoreFellBack event), the same line the log has.
  const direct = join(ws.root, "direct-restore");
  mkdirSync(direct);
  const logged: string[] = [];
  const restored = await restoreIfEmpty({
    bucket,
    dir: direct,
    processId: 0,
    processCount: 3,
    log: (l) => logged.push(l),
  });
  expect(restored?.set).toBe(previous);
  expect(restored?.fellBack).toEqual([
    expect.stringMatching(
      new RegExp(
        `^backup set ${newest} is unusable: .*process-1/part-0\\.sqlite3\\.zst is truncated or padded .*; falling back to set ${previous}$`,
      ),
    ),
  ]);
  expect(restored?.fellBack).toEqual(logged);

  deleteStores(ws, 3);
  const exits = await succeeds(await cluster(3, ws, { ...env, RF_UNTIL: "900", RF_PACE_MS: "2" }));
  for (const [i, exit] of exits.entries()) {
    const fallback = exit.stderr.split("\n").filter((l) => l.startsWith(`backup set ${newest} is unusable`));
    expect(fallback).toEqual([
      expect.stringMatching(
        new RegExp(
          `^backup set ${newest} is unusable: .*process-1/part-0\\.sqlite3\\.zst is truncated or padded \\(\\d+ bytes, the manifest says ${damaged.bytes}\\); falling back to set ${previous}$`,
        ),
      ),
    ]);
    expect(exit.stderr).toMatch(new RegExp(`process ${i}: restored the recovery store from backup set ${previous} `));
  }
  expectExactlyOnce(ws.out, 900);
  bucket.close();
}, 120_000);

test("a set of 3 processes restores onto 4 through the hand-off, and is refused in one line onto 2", async () => {
  const ws = workspace();
  const env = { WAXFLOW_BACKUP_PREFIX: "rescale" };
  await succeeds(await cluster(3, ws, { ...env, RF_UNTIL: "600", RF_PACE_MS: "25" }));

  deleteStores(ws, 3);
  const [first, second] = await Promise.all((await cluster(2, ws, { ...env, RF_UNTIL: "900" })).map((r) => r.exit));
  for (const exit of [first, second]) {
    expect(exit?.code).toBe(1);
    expect(exit?.stderr).toMatch(
      /^error: backup set \S+ was taken with 3 processes; restoring onto 2 is not supported \(it would need holders for the missing stores\): start 3 processes, then scale down$/m,
    );
  }

  deleteStores(ws, 3);
  const exits = await succeeds(await cluster(4, ws, { ...env, RF_UNTIL: "900", RF_PACE_MS: "2" }));
  expect(exits[3]?.stderr).toMatch(
    /process 3 was not in backup set \S+ \(3 processes\): it starts with an empty store/,
  );
  for (const exit of exits.slice(0, 3)) expect(exit.stderr).toMatch(/restored the recovery store from backup set/);
  expectExactlyOnce(ws.out, 900);
}, 120_000);

/** One process with a bucket setting gone wrong: it must exit with one line naming what. */
async function failsWith(env: Record<string, string>, line: RegExp): Promise<void> {
  const ws = workspace();
  const run = waxflow(["-r", ws.store(0), "--recovery-init", "-s", "0.1", "-b", "1"], {
    RF_OUT: ws.out,
    RF_UNTIL: "10",
    WAXFLOW_BACKUP_PREFIX: "wrong",
    ...env,
  });
  const exit = await run.exit;
  expect(exit.code).toBe(1);
  const errors = exit.stderr.split("\n").filter((l) => l.startsWith("error:"));
  expect(errors).toEqual([expect.stringMatching(line)]);
  // Nothing ran: the process stopped before data flowed.
  expect(countsByKey(ws.out).size).toBe(0);
}

test("a wrong key, a wrong bucket or an unreachable endpoint fails the start with one line naming which", async () => {
  await failsWith(
    { AWS_SECRET_ACCESS_KEY: "not-the-secret" },
    /^error: backup credentials refused by http:\/\/127\.0\.0\.1:\d+ for bucket "waxflow-backups" \((SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied)\): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
  );
  await failsWith(
    { WAXFLOW_BACKUP_BUCKET: "no-such-bucket" },
    /^error: backup bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+ \(--backup-bucket, WAXFLOW_BACKUP_BUCKET\)$/,
  );
  const [closed] = (await freePorts(1)) as [number];
  await failsWith(
    { WAXFLOW_BACKUP_ENDPOINT: `http://127.0.0.1:${closed}` },
    new RegExp(
      `^error: backup endpoint http://127\\.0\\.0\\.1:${closed} is unreachable \\(ECONNREFUSED\\) \\(--backup-endpoint, WAXFLOW_BACKUP_ENDPOINT\\)$`,
    ),
  );
  expect(S3_BUCKET).toBe("waxflow-backups");
}, 60_000);

async function download(bucket: BackupBucket, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of (await bucket.get(key)) ?? []) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

test("a set written before compression (raw objects, records with no encoding) still restores, and counts continue exactly once", async () => {
  const ws = workspace();
  const prefix = "raw-set";
  const bucket = new BackupBucket(backupConfig(store.endpoint, prefix));
  const env = { WAXFLOW_BACKUP_PREFIX: prefix, WAXFLOW_BACKUP_KEEP: "5" };
  await succeeds(await cluster(2, ws, { ...env, RF_UNTIL: "400", RF_PACE_MS: "25" }));
  const { complete } = await sets(bucket);
  const newest = complete.at(-1) as string;
  // Rewritten as the previous version wrote it: each file itself under part-<j>.sqlite3,
  // the records and the manifest without encoding or fileBytes; the newer sets go.
  const m = await manifest(bucket, newest);
  const raw: BackupObject[] = [];
  for (const o of m.objects) {
    const file = zstdDecompressSync(await download(bucket, o.key));
    expect(file.length).toBe(o.fileBytes);
    const key = `${bucket.setPrefix(newest)}process-${o.process}/${o.file}`;
    await bucket.put(key, file);
    raw.push({ key, process: o.process, file: o.file, bytes: file.length, sha256: sha256(file) });
  }
  await bucket.delete(m.objects.map((o) => o.key));
  for (let i = 0; i < 2; i++) {
    const record = raw.filter((o) => o.process === i);
    await bucket.put(`${bucket.setPrefix(newest)}process-${i}.json`, JSON.stringify(record));
  }
  await bucket.put(`${bucket.setPrefix(newest)}manifest.json`, JSON.stringify({ ...m, objects: raw }));
  const newer = (await bucket.list(bucket.setsPrefix)).filter((o) => o.key > `${bucket.setPrefix(newest)}~`);
  await bucket.delete(newer.map((o) => o.key));

  deleteStores(ws, 2);
  const exits = await succeeds(await cluster(2, ws, { ...env, RF_UNTIL: "600", RF_PACE_MS: "2" }));
  for (const [i, exit] of exits.entries()) {
    expect(exit.stderr).not.toMatch(/is unusable/);
    expect(exit.stderr).toMatch(new RegExp(`process ${i}: restored the recovery store from backup set ${newest} `));
  }
  expect(Math.min(...startOffsets(exits))).toBeGreaterThan(0);
  expectExactlyOnce(ws.out, 600);
  bucket.close();
}, 120_000);

test("a compressed object flipped, undecodable, decoding longer than recorded, or a record with an unknown encoding or a hostile file: the set is unusable in one line naming it and the object, and restore falls back", async () => {
  const ws = workspace();
  const prefix = "damaged-zstd";
  const bucket = new BackupBucket(backupConfig(store.endpoint, prefix));
  await succeeds(await cluster(1, ws, { WAXFLOW_BACKUP_PREFIX: prefix, RF_UNTIL: "200", RF_PACE_MS: "25" }));
  const good = (await sets(bucket)).complete.at(-1) as string;
  const m = await manifest(bucket, good);
  const victim = m.objects.find((o) => o.file === "part-0.sqlite3") as BackupObject;
  const packed = await download(bucket, victim.key);
  const unpacked = zstdDecompressSync(packed);

  /** A newer set: the good one's objects, with part-0's object and record changed by `damage`. */
  const newerSet = async (
    name: string,
    damage: (o: BackupObject) => { record: Record<string, unknown>; body: Buffer },
  ): Promise<string> => {
    const objects: Record<string, unknown>[] = [];
    for (const o of m.objects) {
      const key = `${bucket.setPrefix(name)}process-${o.process}/${o.key.split("/").at(-1)}`;
      if (o !== victim) {
        await bucket.copy(o.key, key);
        objects.push({ ...o, key });
        continue;
      }
      const { record, body } = damage({ ...o, key });
      await bucket.put(key, body);
      objects.push(record);
    }
    await bucket.put(`${bucket.setPrefix(name)}manifest.json`, JSON.stringify({ ...m, set: name, objects }));
    return `${bucket.setPrefix(name)}process-0/part-0.sqlite3.zst`;
  };
  const notZstd = Buffer.from("not a zstd frame, though the manifest's hash matches it");
  const cases: [string, (o: BackupObject) => { record: Record<string, unknown>; body: Buffer }, RegExp][] = [
    [
      "flipped",
      (o) => {
        const body = Buffer.from(packed);
        body[body.length >> 1] = (body[body.length >> 1] as number) ^ 0xff;
        return { record: { ...o }, body };
      },
      /is damaged \(SHA-256 differs from the manifest\)/,
    ],
    [
      "undecodable",
      (o) => ({ record: { ...o, bytes: notZstd.length, sha256: sha256(notZstd) }, body: notZstd }),
      /does not decode as zstd: /,
    ],
    [
      "longer",
      (o) => ({ record: { ...o, fileBytes: 1000 }, body: packed }),
      /decodes to more than the 1000 bytes the manifest says/,
    ],
    [
      "unknown-encoding",
      (o) => ({ record: { ...o, encoding: "br" }, body: packed }),
      /manifest\.json object \d+ \(\S+part-0\.sqlite3\.zst\): encoding "br" is not one this version reads \(zstd, or none\): restore with the version that wrote it/,
    ],
    [
      "encoding-shape",
      (o) => ({ record: { ...o, encoding: { name: "zstd" } }, body: packed }),
      /\(\S+part-0\.sqlite3\.zst\): encoding \{"name":"zstd"\} is not one this version reads/,
    ],
    [
      "hostile-file",
      (o) => ({ record: { ...o, file: "../../escaped.sqlite3" }, body: packed }),
      /\(\S+part-0\.sqlite3\.zst\): file is not part-<n>\.sqlite3/,
    ],
  ];
  for (const [i, [what, damage, reason]] of cases.entries()) {
    const name = setName(99, 0, i);
    const key = await newerSet(name, damage);
    const dir = join(ws.root, `restore-${what}`);
    mkdirSync(dir);
    const restored = await restoreIfEmpty({ bucket, dir, processId: 0, processCount: 1, log: () => {} });
    expect(restored?.set, what).toBe(good);
    expect(restored?.fellBack, what).toEqual([
      expect.stringMatching(
        new RegExp(`^backup set ${name} is unusable: .*${reason.source}.*; falling back to set ${good}$`),
      ),
    ]);
    expect(restored?.fellBack[0], what).toContain(key.split("/").slice(-2).join("/"));
    // What was placed is the good set's file, decoded; nothing escaped the directory.
    expect(readFileSync(join(dir, "part-0.sqlite3")).equals(unpacked), what).toBe(true);
    expect(existsSync(join(ws.root, "escaped.sqlite3"))).toBe(false);
    await bucket.delete((await bucket.list(bucket.setPrefix(name))).map((o) => o.key));
  }
  bucket.close();
}, 120_000);
