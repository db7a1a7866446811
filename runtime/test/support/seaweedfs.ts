// A real S3-compatible object store for backup tests: SeaweedFS's `weed mini` (master,
// volume, filer and S3 gateway in one process) on loopback ports, with static test keys
// so a wrong key is refused for real. Built by e2e/toolchain/seaweedfs.sh.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tool } from "../../../e2e/toolchain/test-tools.ts";
import { BackupBucket } from "../../src/recovery/backup.ts";
import type { BackupConfig } from "../../src/recovery/backup-config.ts";
import { freePorts } from "./ports.ts";

export const S3_ACCESS_KEY = "waxflowtestkey";
export const S3_SECRET_KEY = "waxflow-test-secret-0123456789";
export const S3_BUCKET = "waxflow-backups";

export interface ObjectStore {
  readonly endpoint: string;
  /** The environment a process needs to reach it with the right keys. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

/** How long `weed mini` may take to answer S3 requests on a busy 2-core machine. */
const READY_TIMEOUT_MS = 90_000;

export async function startObjectStore(): Promise<ObjectStore> {
  const weed = tool("seaweedfs");
  const dir = mkdtempSync(join(tmpdir(), "waxflow-seaweedfs-"));
  const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc] = (await freePorts(8)) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const args = [
    "mini",
    `-dir=${dir}`,
    "-ip=127.0.0.1",
    "-ip.bind=127.0.0.1",
    `-master.port=${master}`,
    `-master.port.grpc=${masterGrpc}`,
    "-master.telemetry=false",
    `-volume.port=${volume}`,
    `-volume.port.grpc=${volumeGrpc}`,
    `-filer.port=${filer}`,
    `-filer.port.grpc=${filerGrpc}`,
    `-filer.localSocket=${join(dir, "filer.sock")}`,
    `-s3.port=${s3}`,
    `-s3.port.grpc=${s3Grpc}`,
    `-s3.localSocket=${join(dir, "s3.sock")}`,
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    "-s3.autoCreateBucket=false",
    "-webdav=false",
    "-admin.ui=false",
    "-admin.port.legacy=0",
  ];
  // weed mini creates the user from these and pre-creates the bucket.
  const child: ChildProcess = spawn(weed, args, {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
      S3_BUCKET,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  });
  child.stderr?.on("data", (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const endpoint = `http://127.0.0.1:${s3}`;
  const stop = async (): Promise<void> => {
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  // Ready once the bucket is listed with the test keys (the gateway answers before the filer does).
  const probe = new BackupBucket(backupConfig(endpoint));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`weed mini exited (${child.exitCode}): ${output.slice(-2000)}`);
      try {
        await probe.check();
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          await stop();
          throw new Error(
            `weed mini did not serve bucket ${S3_BUCKET} in time: ${String(err)}\n${output.slice(-2000)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    probe.close();
  }
  return {
    endpoint,
    env: {
      AWS_ACCESS_KEY_ID: S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: S3_SECRET_KEY,
      WAXFLOW_BACKUP_ENDPOINT: endpoint,
      WAXFLOW_BACKUP_BUCKET: S3_BUCKET,
    },
    stop,
  };
}

/** The store's bucket with the test keys, for a test's own look at it. */
export function backupConfig(endpoint: string, prefix = ""): BackupConfig {
  return {
    endpoint,
    bucket: S3_BUCKET,
    prefix,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
  };
}
