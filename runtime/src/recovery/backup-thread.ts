/**
 * The helper thread of a process's backups (recovery/backup.ts), started once so the S3
 * client loads once; for each job it copies each partition (backup-copy.ts: `VACUUM
 * INTO` from its own connection, frontiers pinned), compresses (zstd), hashes and uploads the copies, then
 * uploads this process's record of the set. Off the process's thread, whose event loop
 * may be busy running a worker: there an upload would crawl, here it does not slow the
 * dataflow.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parentPort } from "node:worker_threads";
import { constants, createZstdCompress } from "node:zlib";
import {
  BackupBucket,
  type BackupEncoding,
  type BackupObject,
  type CopyJob,
  objectName,
  recordName,
} from "./backup.ts";
import { copyPartition } from "./backup-copy.ts";

/**
 * zstd's default level. Measured on a 101.5 MB copy of a 200k-key store (bench/README.md,
 * Backups): level 1 made 3.97 MB in 0.08 s of CPU, level 3 3.04 MB in 0.10 s. The bytes
 * are what the upload and the store receiving it pay for; 0.01 s of CPU is not.
 */
const ZSTD_LEVEL = constants.ZSTD_CLEVEL_DEFAULT;
const ENCODING: BackupEncoding = "zstd";

let bucket: BackupBucket | undefined;

/** Compresses `path` into `packed` (the upload needs its length), then removes `path`. */
async function compress(path: string, packed: string): Promise<void> {
  await pipeline(
    createReadStream(path),
    createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: ZSTD_LEVEL } }),
    createWriteStream(packed),
  );
  rmSync(path, { force: true });
}

async function run(job: CopyJob): Promise<BackupObject[]> {
  bucket ??= new BackupBucket(job.config);
  const objects: BackupObject[] = [];
  for (const file of job.files) {
    const path = join(job.out, file);
    const name = objectName({ file, encoding: ENCODING });
    const packed = join(job.out, name);
    rmSync(path, { force: true });
    copyPartition(join(job.dir, file), path, job.frontiers);
    if (file === job.files.at(-1)) parentPort?.postMessage({ copied: true });
    const fileBytes = statSync(path).size;
    await compress(path, packed);
    const bytes = statSync(packed).size;
    // Hashed as it is uploaded: what the bucket holds, one read, never all of it in memory.
    const hash = createHash("sha256");
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const key = `${job.setPrefix}process-${job.processId}/${name}`;
    await bucket.put(key, createReadStream(packed).pipe(hashing), bytes);
    rmSync(packed, { force: true });
    const sha256 = hash.digest("hex");
    objects.push({ key, process: job.processId, file, bytes, sha256, encoding: ENCODING, fileBytes });
  }
  await bucket.put(`${job.setPrefix}${recordName(job.processId)}`, JSON.stringify(objects));
  return objects;
}

// One job at a time: Backups waits for each before it sends the next.
parentPort?.on("message", (job: CopyJob) => {
  run(job).then(
    (objects) => parentPort?.postMessage({ ok: objects }),
    (err: unknown) => parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  );
});
