/**
 * The helper thread of a process's backups (recovery/backup.ts), started once so the S3
 * client loads once; for each job it copies each partition (backup-copy.ts: `VACUUM
 * INTO` from its own connection, frontiers pinned), hashes and uploads the copies, then
 * uploads this process's record of the set. Off the process's thread, whose event loop
 * may be busy running a worker: there an upload would crawl, here it does not slow the
 * dataflow.
 */
import { createHash } from "node:crypto";
import { createReadStream, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { Transform } from "node:stream";
import { parentPort } from "node:worker_threads";
import { BackupBucket, type BackupObject, type CopyJob } from "./backup.ts";
import { copyPartition } from "./backup-copy.ts";

let bucket: BackupBucket | undefined;

async function run(job: CopyJob): Promise<BackupObject[]> {
  bucket ??= new BackupBucket(job.config);
  {
    const objects: BackupObject[] = [];
    for (const file of job.files) {
      const path = join(job.out, file);
      rmSync(path, { force: true });
      copyPartition(join(job.dir, file), path, job.frontiers);
      if (file === job.files.at(-1)) parentPort?.postMessage({ copied: true });
      const bytes = statSync(path).size;
      // Hashed as it is uploaded: one read of the copy, never all of it in memory.
      const hash = createHash("sha256");
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      const key = `${job.setPrefix}process-${job.processId}/${file}`;
      await bucket.put(key, createReadStream(path).pipe(hashing), bytes);
      objects.push({ key, process: job.processId, file, bytes, sha256: hash.digest("hex") });
    }
    await bucket.put(`${job.setPrefix}process-${job.processId}.json`, JSON.stringify(objects));
    return objects;
  }
}

// One job at a time: Backups waits for each before it sends the next.
parentPort?.on("message", (job: CopyJob) => {
  run(job).then(
    (objects) => parentPort?.postMessage({ ok: objects }),
    (err: unknown) => parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  );
});
