/**
 * Backups of the recovery stores to an S3-compatible bucket, and restore from them.
 *
 * Sets. The processes agree on committed epochs (every process hears every worker's
 * commits), so each one backs up when the cluster's committed frontier crosses a
 * multiple of the backup lag (the backup interval in epochs): the set is named after
 * that boundary, so the copies of one set are taken within one backup interval of each
 * other, the window garbage collection keeps snapshots for. A copy is SQLite's
 * `VACUUM INTO` from its own connection in a helper thread (never the live file), with
 * the workers' frontiers pinned to the values read before the copy started, so
 * partitions copied a moment apart still agree. Each process uploads its partitions and
 * then a small record of their sizes and SHA-256; process 0 waits for every process's
 * record and writes the manifest (or gives up on the set once a process that skipped it has
 * moved past it). A set is complete only when its manifest is there.
 *
 * Layout under the prefix: sets/<execution>-<resume epoch>-<epoch>/ holding
 * process-<i>/part-<j>.sqlite3.zst, process-<i>.json and manifest.json.
 *
 * Encoding. Each copy is compressed with zstd (level 3) before it is uploaded: a copy of a
 * 200k-key store is 80–220 MB and compresses about 30 times, and the upload and the store
 * receiving it were most of a backup's cost (bench/README.md). The record names the
 * encoding and the file's length; the key says it too (`.zst`), so an object downloaded by
 * hand tells what it holds and a compressed and a raw object of one partition never share a
 * key. `bytes` and `sha256` are the object's, as uploaded: verified before anything is
 * decoded. Sets written before this (no `encoding`) hold the files themselves and restore
 * as they did.
 *
 * Retention (process 0, after each manifest): the newest `keep` complete sets and those
 * younger than `keepAgeMs` stay; other sets go (manifest first, so no reader sees a
 * manifest without its objects), and so do incomplete leftovers older than
 * `leftoverAgeMs`.
 *
 * Restore: a process whose recovery directory holds no partitions verifies the newest
 * complete set (every object, so all processes reach the same verdict), falling back to
 * older ones, and puts its own copies in place before the store is opened.
 *
 * Savepoints (recovery/savepoint.ts) live beside the sets under savepoints/<id>/, which
 * retention never lists; process 0 copies a set there as soon as its manifest is written.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { closeSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { PassThrough, type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { Worker as Thread } from "node:worker_threads";
import { createZstdDecompress } from "node:zlib";
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { type BackupConfig, DEFAULT_BACKUP_KEEP } from "./backup-config.ts";
import { RecoveryError } from "./errors.ts";

/** A backup or restore that cannot go on; the line names the bucket, key or endpoint at fault. */
export class BackupError extends RecoveryError {
  override name = "BackupError";
}

/** How an object holds its partition file; an object with none is the file itself. */
export type BackupEncoding = "zstd";

const ENCODINGS: Readonly<Record<BackupEncoding, string>> = { zstd: ".zst" };

/** One uploaded object of a set, as the manifest lists it. */
export interface BackupObject {
  readonly key: string;
  readonly process: number;
  /** The partition file it restores to (`part-<j>.sqlite3`). */
  readonly file: string;
  /** The object's length in the bucket, which `sha256` is of. */
  readonly bytes: number;
  readonly sha256: string;
  /** Absent in sets written before compression: the object is the file. */
  readonly encoding?: BackupEncoding;
  /** The file's length once decoded; absent with no encoding (it is `bytes`). */
  readonly fileBytes?: number;
}

/** The object's name under process-<i>/: the file's, plus the encoding's suffix. */
export function objectName(o: { readonly file: string; readonly encoding?: BackupEncoding }): string {
  return o.encoding === undefined ? o.file : `${o.file}${ENCODINGS[o.encoding]}`;
}

/** The partition file's length once restored. */
export function fileBytes(o: BackupObject): number {
  return o.fileBytes ?? o.bytes;
}

export interface BackupManifest {
  readonly format: 1;
  readonly set: string;
  readonly flowId: string;
  readonly execution: number;
  readonly epoch: number;
  readonly processCount: number;
  readonly createdAt: string;
  readonly objects: readonly BackupObject[];
}

/** A set's name: ordered by execution, then epoch, as strings. */
export function setName(execution: number, resumeEpoch: number, epoch: number): string {
  const pad = (n: number, width: number) => String(n).padStart(width, "0");
  return `${pad(execution, 8)}-${pad(resumeEpoch, 12)}-${pad(epoch, 12)}`;
}

/** A process's record of a set, beside its partitions: written last, so its presence says the process is done. */
export function recordName(processId: number): string {
  return `process-${processId}.json`;
}

/** Where a listed key sits under sets/: its set and its first entry there (`process-1.json`, `process-1`, `manifest.json`). */
export function placeOf(key: string, setsPrefix: string): { readonly set: string; readonly entry: string } {
  const [set = "", entry = ""] = key.slice(setsPrefix.length).split("/", 2);
  return { set, entry };
}

/**
 * What process 0 reads, in a listing of the sets, of the set whose records it waits for:
 * complete once every process's record is there; skipped once every process whose record is
 * missing has objects in a newer set (each process backs up one set at a time, in order, its
 * record last: one busy with the set before skips a boundary, and its record never comes).
 */
export function setProgress(
  objects: readonly ListedObject[],
  setsPrefix: string,
  set: string,
  processCount: number,
): "complete" | "skipped" | "waiting" {
  const inSet = new Set<string>();
  const inNewer = new Set<string>();
  for (const o of objects) {
    const place = placeOf(o.key, setsPrefix);
    if (place.set === set) inSet.add(place.entry);
    else if (place.set > set) inNewer.add(place.entry);
  }
  const missing = Array.from({ length: processCount }, (_, p) => p).filter((p) => !inSet.has(recordName(p)));
  if (missing.length === 0) return "complete";
  const movedPast = (p: number): boolean => inNewer.has(`process-${p}`) || inNewer.has(recordName(p));
  return missing.every(movedPast) ? "skipped" : "waiting";
}

/** The boundary a cluster frontier has crossed: the newest multiple of `lag` at or below it. */
export function boundaryOf(frontier: number, lag: number): number {
  return Math.floor(frontier / lag) * lag;
}

export interface ListedObject {
  readonly key: string;
  readonly bytes: number;
  readonly modified: number;
}

/** What retention deletes, given every object under sets/: a pure decision. */
export function retentionVictims(
  objects: readonly ListedObject[],
  setsPrefix: string,
  rule: { readonly keep: number; readonly keepAgeMs: number; readonly leftoverAgeMs: number; readonly now: number },
): string[] {
  const sets = new Map<string, ListedObject[]>();
  for (const o of objects) {
    const name = placeOf(o.key, setsPrefix).set;
    sets.set(name, [...(sets.get(name) ?? []), o]);
  }
  const complete = [...sets.keys()].filter((s) => sets.get(s)?.some((o) => o.key.endsWith("/manifest.json"))).sort();
  const kept = new Set(complete.slice(Math.max(0, complete.length - rule.keep)));
  const victims: string[] = [];
  const manifestFirst = (list: ListedObject[]) =>
    list.map((o) => o.key).sort((a, b) => Number(b.endsWith("/manifest.json")) - Number(a.endsWith("/manifest.json")));
  for (const name of complete) {
    const list = sets.get(name) ?? [];
    const manifest = list.find((o) => o.key.endsWith("/manifest.json"));
    if (kept.has(name) || (manifest !== undefined && rule.now - manifest.modified < rule.keepAgeMs)) continue;
    victims.push(...manifestFirst(list));
  }
  for (const [name, list] of sets) {
    if (complete.includes(name)) continue;
    const newest = Math.max(...list.map((o) => o.modified));
    if (rule.now - newest >= rule.leftoverAgeMs) victims.push(...list.map((o) => o.key));
  }
  return victims;
}

/** The S3 client and the keys of one bucket and prefix; every failure becomes one line. */
export class BackupBucket {
  readonly config: BackupConfig;
  readonly #s3: S3Client;
  readonly #prefix: string;

  constructor(config: BackupConfig) {
    this.config = config;
    const prefix = config.prefix ?? "";
    this.#prefix = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
    this.#s3 = new S3Client({
      endpoint: config.endpoint,
      region: config.region ?? "us-east-1",
      credentials: config.credentials,
      // Self-hosted stores (SeaweedFS, MinIO) serve buckets as paths, not host names.
      forcePathStyle: config.endpoint !== undefined,
      // Few retries: a wrong endpoint should fail the start in seconds, not minutes.
      maxAttempts: 2,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  get setsPrefix(): string {
    return `${this.#prefix}sets/`;
  }

  setPrefix(set: string): string {
    return `${this.setsPrefix}${set}/`;
  }

  /** Beside sets/, never listed by retention. */
  get savepointsPrefix(): string {
    return `${this.#prefix}savepoints/`;
  }

  savepointPrefix(id: string): string {
    return `${this.savepointsPrefix}${id}/`;
  }

  /** Fails with one line unless the bucket answers a listing with these credentials. */
  async check(): Promise<void> {
    await this.#call("list", this.setsPrefix, () =>
      this.#s3.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: this.setsPrefix, MaxKeys: 1 })),
    );
  }

  async list(prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.#call("list", prefix, () =>
        this.#s3.send(
          new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken: token }),
        ),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined) continue;
        out.push({ key: o.Key, bytes: o.Size ?? 0, modified: o.LastModified?.getTime() ?? 0 });
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out;
  }

  async put(key: string, body: string | Uint8Array | Readable, bytes?: number): Promise<void> {
    await this.#call("upload", key, () =>
      this.#s3.send(new PutObjectCommand({ Bucket: this.config.bucket, Key: key, Body: body, ContentLength: bytes })),
    );
  }

  /** The object's body as a stream; undefined when there is no such key. */
  async get(key: string): Promise<Readable | undefined> {
    try {
      const res = await this.#call("download", key, () =>
        this.#s3.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key })),
      );
      return res.Body as Readable;
    } catch (err) {
      if (err instanceof BackupError && err.cause instanceof S3ServiceException && err.cause.name === "NoSuchKey") {
        return undefined;
      }
      throw err;
    }
  }

  async getText(key: string): Promise<string | undefined> {
    const body = await this.get(key);
    if (body === undefined) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  /** A server-side copy inside the bucket (CopyObject): the bytes never pass through this process. */
  async copy(from: string, to: string): Promise<void> {
    const source = `${this.config.bucket}/${from.split("/").map(encodeURIComponent).join("/")}`;
    await this.#call("copy", from, () =>
      this.#s3.send(new CopyObjectCommand({ Bucket: this.config.bucket, Key: to, CopySource: source })),
    );
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await this.#call("delete", batch[0] ?? "", () =>
        this.#s3.send(
          new DeleteObjectsCommand({
            Bucket: this.config.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
      );
    }
  }

  close(): void {
    this.#s3.destroy();
  }

  async #call<T>(what: string, key: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (err) {
      throw new BackupError(describeS3Failure(err, this.config, what, key), { cause: err });
    }
  }
}

/** One line naming what is wrong: the endpoint, the bucket or the credentials. */
export function describeS3Failure(err: unknown, config: BackupConfig, what: string, key: string): string {
  const where = config.endpoint ?? `AWS S3 (${config.region ?? "us-east-1"})`;
  const name = err instanceof Error ? err.name : "";
  const code = (err as { code?: unknown }).code;
  const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
  if (name === "NoSuchBucket") {
    return `backup bucket "${config.bucket}" does not exist at ${where} (--backup-bucket, WAXFLOW_BACKUP_BUCKET)`;
  }
  if (
    ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken"].includes(name) ||
    status === 403
  ) {
    return (
      `backup credentials refused by ${where} for bucket "${config.bucket}" (${name || status}): ` +
      "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS credentials file)"
    );
  }
  if (name === "CredentialsProviderError") {
    return `no backup credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS credentials file) for ${where}`;
  }
  const network = typeof code === "string" ? code : name;
  if (
    ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "TimeoutError"].includes(
      network,
    )
  ) {
    return `backup endpoint ${where} is unreachable (${network}) (--backup-endpoint, WAXFLOW_BACKUP_ENDPOINT)`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `backup ${what} of ${key} in bucket "${config.bucket}" at ${where} failed: ${name ? `${name}: ` : ""}${message}`;
}

// --- copies -------------------------------------------------------------------------

/** What the helper thread (backup-thread.ts) copies, hashes and uploads. */
export interface CopyJob {
  readonly config: BackupConfig;
  readonly dir: string;
  readonly files: readonly string[];
  /** A private scratch folder for the copies. */
  readonly out: string;
  readonly frontiers: readonly { execution: number; worker: number; frontier: number }[];
  readonly setPrefix: string;
  readonly processId: number;
}

const THREAD = new URL(`./backup-thread${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

type ThreadMessage = { ok?: BackupObject[]; error?: string; copied?: true };

/** The helper thread (backup-thread.ts), started on first use; it runs one job at a time. */
class CopyThread {
  #thread: Thread | undefined;
  #pending: { resolve: (o: BackupObject[]) => void; reject: (e: unknown) => void; copied: () => void } | undefined;

  run(job: CopyJob, onCopied: () => void): Promise<BackupObject[]> {
    const thread = this.#start();
    // Referenced while it works, so a process waiting for it stays up; idle, it is not.
    thread.ref();
    return new Promise<BackupObject[]>((resolve, reject) => {
      this.#pending = { resolve, reject, copied: onCopied };
      thread.postMessage(job);
    }).finally(() => thread.unref());
  }

  async stop(): Promise<void> {
    const thread = this.#thread;
    this.#thread = undefined;
    await thread?.terminate();
  }

  #start(): Thread {
    if (this.#thread !== undefined) return this.#thread;
    const thread = new Thread(THREAD);
    // An idle helper must not keep a finished process alive.
    thread.unref();
    thread.on("message", (m: ThreadMessage) => {
      const pending = this.#pending;
      if (pending === undefined) return;
      if (m.copied === true) return pending.copied();
      this.#pending = undefined;
      if (m.ok !== undefined) pending.resolve(m.ok);
      else pending.reject(new BackupError(m.error ?? "the backup thread failed"));
    });
    const failed = (err: unknown): void => {
      this.#thread = undefined;
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.reject(err);
    };
    thread.once("error", failed);
    thread.once("exit", (code) => failed(new BackupError(`the backup thread exited with code ${code}`)));
    this.#thread = thread;
    return thread;
  }
}

// --- backups while running ------------------------------------------------------------

/** What backups need of the running store (RecoveryStore). */
export interface BackedUpStore {
  readonly dir: string;
  readonly execution: number;
  readonly resumeEpoch: number;
  partitionFiles(): string[];
  storedFrontiers(execution: number): { execution: number; worker: number; frontier: number }[];
  holdCollection(below: number | undefined): void;
}

export interface BackupRunOptions {
  readonly bucket: BackupBucket;
  readonly store: BackedUpStore;
  readonly flowId: string;
  readonly processId: number;
  readonly processCount: number;
  /** The backup interval in epochs: the store's garbage-collection lag. */
  readonly lagEpochs: number;
  /** The backup interval in ms: how long process 0 waits for the others' copies, and the leftover age. */
  readonly intervalMs: number;
  readonly log: (line: string) => void;
  /** Told of each set this process uploaded its copy to, and how long it took. */
  readonly onUploaded?: (set: string, bytes: number, seconds: number) => void;
  /** Process 0: told of each manifest written, before retention may delete its set (savepoints copy it). */
  readonly onManifest?: (manifest: BackupManifest) => Promise<void>;
}

/** Backs up this process's store each time the cluster's committed frontier crosses a boundary. */
export class Backups {
  readonly #o: BackupRunOptions;
  #last: number;
  #busy: Promise<void> | undefined;
  readonly #stop = new AbortController();
  readonly #thread = new CopyThread();

  constructor(opts: BackupRunOptions) {
    this.#o = opts;
    this.#last = boundaryOf(opts.store.resumeEpoch, opts.lagEpochs);
  }

  /** The cluster's committed frontier rose (RecoveryStore.onClusterCommit). */
  clusterCommitted(frontier: number): void {
    const boundary = boundaryOf(frontier, this.#o.lagEpochs);
    if (boundary <= this.#last || this.#stop.signal.aborted) return;
    // Busy with the previous set: this boundary is skipped here (its set stays
    // incomplete and retention removes it); the next one is taken.
    if (this.#busy !== undefined) return;
    this.#last = boundary;
    this.#busy = this.#backup(boundary)
      .then(
        () => {},
        (err: unknown) => {
          if (this.#stop.signal.aborted) return;
          // Running pods are not disturbed by a failing bucket: one line per failure.
          this.#o.log(
            `warning: backup at epoch ${boundary} failed: ${err instanceof Error ? err.message : String(err)}`,
          );
        },
      )
      .finally(() => {
        this.#busy = undefined;
      });
  }

  /** Waits for the upload under way (up to `waitMs`), then stops. */
  async close(waitMs = 10_000): Promise<void> {
    const busy = this.#busy;
    if (busy !== undefined) {
      const timer = setTimeout(() => this.#stop.abort(), waitMs);
      await busy;
      clearTimeout(timer);
    }
    this.#stop.abort();
    await this.#thread.stop();
    this.#o.bucket.close();
  }

  async #backup(epoch: number): Promise<void> {
    const { store, bucket, processId, processCount } = this.#o;
    const started = performance.now();
    const set = setName(store.execution, store.resumeEpoch, epoch);
    // Every process's copy of the set resumes at `epoch` or later (their frontiers had
    // passed it); garbage collected meanwhile, a slow copy could lack what that needs.
    const out = join(tmpdir(), `waxflow-backup-${process.pid}-${processId}`);
    let held = true;
    const release = (): void => {
      if (held) store.holdCollection(undefined);
      held = false;
    };
    store.holdCollection(epoch - 1);
    try {
      mkdirSync(out, { recursive: true });
      const objects = await this.#thread.run(
        {
          config: bucket.config,
          dir: store.dir,
          files: store.partitionFiles(),
          out,
          // Read before the copy starts: every snapshot below these frontiers is committed already.
          frontiers: store.storedFrontiers(store.execution),
          setPrefix: bucket.setPrefix(set),
          processId,
        },
        release,
      );
      const bytes = objects.reduce((n, o) => n + o.bytes, 0);
      this.#o.onUploaded?.(set, bytes, (performance.now() - started) / 1000);
      if (processId === 0) await this.#complete(set, store.execution, epoch, processCount);
    } finally {
      release();
      rmSync(out, { recursive: true, force: true });
    }
  }

  /**
   * Process 0: waits for every process's record of the set, writes the manifest, applies
   * retention. Gives up on a set that cannot complete, at the deadline or as soon as every
   * process whose record is missing has moved past it: process 0 takes no set while it waits,
   * so waiting out the deadline for a skipped set made it skip the sets after it in turn.
   */
  async #complete(set: string, execution: number, epoch: number, processCount: number): Promise<void> {
    const { bucket } = this.#o;
    const deadline = Date.now() + Math.max(this.#o.intervalMs * 2, 10_000);
    for (;;) {
      const progress = setProgress(await bucket.list(bucket.setsPrefix), bucket.setsPrefix, set, processCount);
      if (progress === "complete") break;
      if (progress === "skipped") return;
      if (Date.now() > deadline || this.#stop.signal.aborted) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    const objects: BackupObject[] = [];
    for (let p = 0; p < processCount; p++) {
      const key = `${bucket.setPrefix(set)}${recordName(p)}`;
      const record: unknown = JSON.parse((await bucket.getText(key)) ?? "[]");
      if (!Array.isArray(record)) throw new BackupError(`${key} is not a list of backup objects`);
      for (const [i, o] of record.entries()) {
        checkObject(o, `${key} object ${i}`);
        objects.push(o);
      }
    }
    const manifest: BackupManifest = {
      format: 1,
      set,
      flowId: this.#o.flowId,
      execution,
      epoch,
      processCount,
      createdAt: new Date().toISOString(),
      objects,
    };
    await bucket.put(`${bucket.setPrefix(set)}manifest.json`, JSON.stringify(manifest, null, 1));
    await this.#o.onManifest?.(manifest);
    await applyRetention(bucket, this.#o.intervalMs);
  }
}

/** Deletes what the retention rule says (see the file's comment); returns the keys deleted. */
export async function applyRetention(bucket: BackupBucket, intervalMs: number, now = Date.now()): Promise<string[]> {
  const { keep = DEFAULT_BACKUP_KEEP, keepAgeMs = 0, leftoverAgeMs = intervalMs * 2 } = bucket.config;
  const victims = retentionVictims(await bucket.list(bucket.setsPrefix), bucket.setsPrefix, {
    keep,
    keepAgeMs,
    leftoverAgeMs,
    now,
  });
  await bucket.delete(victims);
  return victims;
}

// --- restore --------------------------------------------------------------------------

const PART_FILE = /^part-(\d+)\.sqlite3$/;

export function hasPartitions(dir: string): boolean {
  try {
    return readdirSync(dir).some((f) => PART_FILE.test(f));
  } catch {
    return false;
  }
}

export function parseManifest(text: string, key: string): BackupManifest {
  const m = JSON.parse(text) as Partial<BackupManifest>;
  if (
    m.format !== 1 ||
    typeof m.set !== "string" ||
    typeof m.processCount !== "number" ||
    typeof m.execution !== "number" ||
    typeof m.epoch !== "number" ||
    !Array.isArray(m.objects)
  ) {
    throw new Error(`${key} is not a waxflow backup manifest`);
  }
  for (const [i, o] of (m.objects as unknown[]).entries()) checkObject(o, `${key} object ${i}`);
  return m as BackupManifest;
}

const natural = (n: unknown): boolean => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

/**
 * Throws one line naming `where` and the object's key unless `o` is a BackupObject this
 * version can restore: read from the bucket, it is not trusted (its `file` names a path
 * restore writes).
 */
export function checkObject(o: unknown, where: string): asserts o is BackupObject {
  if (typeof o !== "object" || o === null || typeof (o as { key?: unknown }).key !== "string") {
    throw new Error(`${where} is not a backup object (no key)`);
  }
  const { key, process: owner, file, bytes, sha256, encoding, fileBytes } = o as Record<string, unknown>;
  const wrong = (what: string) => new Error(`${where} (${String(key)}): ${what}`);
  if (!natural(owner)) throw wrong("process is not a process index");
  if (typeof file !== "string" || !PART_FILE.test(file)) throw wrong("file is not part-<n>.sqlite3");
  if (!natural(bytes)) throw wrong("bytes is not a length");
  if (typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256)) throw wrong("sha256 is not 64 hex digits");
  if (encoding !== undefined && !(typeof encoding === "string" && Object.hasOwn(ENCODINGS, encoding))) {
    throw wrong(
      `encoding ${JSON.stringify(encoding)} is not one this version reads (${Object.keys(ENCODINGS).join(", ")}, ` +
        "or none): restore with the version that wrote it",
    );
  }
  if (encoding === undefined ? fileBytes !== undefined : !natural(fileBytes)) {
    throw wrong(encoding === undefined ? "fileBytes without an encoding" : "fileBytes is not a length");
  }
}

/**
 * Why an object does not match the manifest, or undefined when it does; mine are decoded
 * into `into`. Streamed: the body is hashed and decoded as it arrives, a chunk at a time.
 * Every object is decoded, not only mine, so every process reaches the same verdict.
 */
async function verify(bucket: BackupBucket, o: BackupObject, into: string | undefined): Promise<string | undefined> {
  const body = await bucket.get(o.key);
  if (body === undefined) return `${o.key} is missing`;
  const path = into === undefined ? undefined : join(into, o.file);
  const file = new DecodedFile(path, fileBytes(o));
  const decoder = o.encoding === "zstd" ? createZstdDecompress() : new PassThrough();
  const decoded = pipeline(decoder, file).then(
    () => undefined,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  const hash = createHash("sha256");
  let bytes = 0;
  try {
    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      // Undecodable: read on, so the length and hash say whether the object was damaged.
      if (decoder.destroyed) continue;
      if (!decoder.write(chunk)) await Promise.race([once(decoder, "drain").catch(() => {}), decoded]);
    }
    if (!decoder.destroyed) decoder.end();
    const failure = await decoded;
    if (file.localFailure !== undefined) throw new BackupError(`cannot write ${path}: ${file.localFailure.message}`);
    if (bytes !== o.bytes) return `${o.key} is truncated or padded (${bytes} bytes, the manifest says ${o.bytes})`;
    if (hash.digest("hex") !== o.sha256) return `${o.key} is damaged (SHA-256 differs from the manifest)`;
    if (failure !== undefined && !file.overflow) return `${o.key} does not decode as ${o.encoding}: ${failure.message}`;
    if (file.overflow) return `${o.key} decodes to more than the ${fileBytes(o)} bytes the manifest says`;
    if (file.bytes !== fileBytes(o)) {
      return `${o.key} decodes to ${file.bytes} bytes, the manifest says ${fileBytes(o)}`;
    }
    return undefined;
  } finally {
    decoder.destroy();
    file.destroy();
  }
}

/** A decoded object's sink: written to `path` (or only counted), and never past `limit` bytes. */
class DecodedFile extends Writable {
  bytes = 0;
  overflow = false;
  /** A failure of this machine (disk full), not of the object. */
  localFailure: Error | undefined;
  readonly #limit: number;
  #fd: number | undefined;

  constructor(path: string | undefined, limit: number) {
    super();
    this.#limit = limit;
    if (path !== undefined) this.#fd = openSync(path, "w");
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.bytes += chunk.length;
    // A decoder's output can be far larger than its input: stop at the manifest's length.
    if (this.bytes > this.#limit) {
      this.overflow = true;
      done(new Error("longer than the manifest says"));
      return;
    }
    try {
      for (let at = 0; this.#fd !== undefined && at < chunk.length; ) at += writeSync(this.#fd, chunk, at);
      done();
    } catch (err) {
      this.localFailure = err as Error;
      done(err as Error);
    }
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    done(err);
  }
}

/**
 * Verifies every object of `manifest` (so every process reaches the same verdict) and puts
 * this process's copies in `dir`; a process beyond the manifest's count gets none.
 */
export async function placeCopies(
  bucket: BackupBucket,
  manifest: BackupManifest,
  dir: string,
  processId: number,
): Promise<"placed" | "not-in-set" | { reason: string }> {
  // Inside the directory, not beside it: on Kubernetes the directory is a volume's mount
  // point and its parent the read-only root filesystem; a rename within the volume is also
  // the only one that cannot cross file systems. The store reads only its part-*.sqlite3
  // files, so a staging folder left by a crash is ignored (and replaced by the next restore).
  const staging = join(dir, ".restoring");
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    for (const o of manifest.objects) {
      const reason = await verify(bucket, o, o.process === processId ? staging : undefined);
      if (reason !== undefined) return { reason };
    }
    if (processId >= manifest.processCount) return "not-in-set";
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(staging)) renameSync(join(staging, f), join(dir, f));
    return "placed";
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Refused in one line: the hand-off needs a holder for each store the cluster lacks. */
export function checkProcessCount(what: string, taken: number, processCount: number): void {
  if (taken > processCount) {
    throw new BackupError(
      `${what} was taken with ${taken} processes; restoring onto ${processCount} ` +
        `is not supported (it would need holders for the missing stores): start ${taken} processes, then scale down`,
    );
  }
}

export function outcome(
  manifest: BackupManifest,
  processId: number,
  started: number,
  fellBack: readonly string[] = [],
): RestoreOutcome {
  const bytes = manifest.objects.filter((o) => o.process === processId).reduce((n, o) => n + fileBytes(o), 0);
  return {
    set: manifest.set,
    epoch: manifest.epoch,
    execution: manifest.execution,
    bytes,
    seconds: (performance.now() - started) / 1000,
    fellBack,
  };
}

export interface RestoreOutcome {
  readonly set: string;
  readonly epoch: number;
  readonly execution: number;
  /** This process's partition files, decoded. */
  readonly bytes: number;
  readonly seconds: number;
  /** The `backup set X is unusable: …` lines of the newer sets passed over, oldest decision first. */
  readonly fellBack: readonly string[];
}

/**
 * What a process restored its empty recovery directory from: served in /status so the
 * operator can tell it as events on the Dataflow (`Restored`, `RestoreFellBack`).
 */
export interface RestoreReport {
  /** `backup set <name>` or `savepoint <id>`. */
  readonly from: string;
  readonly epoch: number;
  /** The `backup set X is unusable: …` lines, in order. */
  readonly fellBack: readonly string[];
}

/**
 * Before the store is opened: when `dir` holds no partitions and the bucket has a
 * complete set, puts this process's copies from the newest usable set in place.
 * Returns undefined when nothing was restored (no set, or this process is beyond the
 * set's process count and starts empty, receiving its share through the hand-off).
 */
export async function restoreIfEmpty(opts: {
  readonly bucket: BackupBucket;
  readonly dir: string;
  readonly processId: number;
  readonly processCount: number;
  readonly log: (line: string) => void;
}): Promise<RestoreOutcome | undefined> {
  const { bucket, dir, processId, processCount, log } = opts;
  await bucket.check();
  if (hasPartitions(dir)) return undefined;
  const started = performance.now();
  const manifests = (await bucket.list(bucket.setsPrefix))
    .map((o) => o.key)
    .filter((k) => k.endsWith("/manifest.json"))
    .sort()
    .reverse();
  if (manifests.length === 0) return undefined;
  const refused: string[] = [];
  const fellBack: string[] = [];
  for (const [i, key] of manifests.entries()) {
    const text = await bucket.getText(key);
    let reason: string | undefined;
    let manifest: BackupManifest | undefined;
    try {
      manifest = text === undefined ? undefined : parseManifest(text, key);
      if (manifest === undefined) reason = `${key} is missing`;
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
    }
    if (manifest !== undefined) {
      checkProcessCount(`backup set ${manifest.set}`, manifest.processCount, processCount);
      const placed = await placeCopies(bucket, manifest, dir, processId);
      if (placed === "placed" || placed === "not-in-set") {
        if (placed === "not-in-set") {
          log(
            `process ${processId} was not in backup set ${manifest.set} (${manifest.processCount} processes): ` +
              "it starts with an empty store and receives its share through the hand-off",
          );
          return undefined;
        }
        return outcome(manifest, processId, started, fellBack);
      }
      reason = placed.reason;
    }
    const next = manifests[i + 1];
    const name = (k: string) => placeOf(k, bucket.setsPrefix).set;
    const line =
      `backup set ${name(key)} is unusable: ${reason}; ` +
      (next === undefined ? "no older complete set is left" : `falling back to set ${name(next)}`);
    log(line);
    fellBack.push(line);
    refused.push(name(key));
  }
  throw new BackupError(
    `no usable backup set in bucket "${bucket.config.bucket}" (tried ${refused.join(", ")}); ` +
      `the recovery directory ${dir} stays empty`,
  );
}
