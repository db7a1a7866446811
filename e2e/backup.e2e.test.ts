// Restore after losing every volume, on kind: an S3-compatible store in the cluster (the
// waxflow-seaweedfs image, e2e/lib/s3.ts), a running count deployed by waxctl with
// -p 3 --recovery and backups to its bucket, then every pod AND every recovery claim of
// the dataflow deleted. The StatefulSet recreates them empty; each process must restore
// its store from the newest complete backup set, and every sensor's count must still be
// exactly 1..n: the sink truncates its files back to the backup's positions. Then a
// second dataflow with a wrong secret key must stop with one line naming the refused
// credentials while the first goes on backing up to the same store.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { expectedCounts, type ReadingsSettings } from "../examples/running-count.ts";
import { BackupBucket } from "../runtime/src/recovery/backup.ts";
import {
  CLUSTER,
  eventually,
  isReady,
  KUBECONFIG,
  killPods,
  kubectl,
  kubectlJson,
  type Pod,
  pods,
  replaced,
  restarts,
  restrictedNamespace,
  tryKubectl,
  volumeLines,
  waxctl,
} from "./lib/cluster.ts";
import { checkCounts } from "./lib/counts.ts";
import type { Manifest } from "./lib/kafka.ts";
import { completeSets, credentialsSecret, objectStoreManifests, openBucket, s3Endpoint } from "./lib/s3.ts";

const NS = "waxflow-e2e-backup";
const FLOW = "e2e-backup";
const STORE = "seaweedfs";
const BUCKET = "waxflow-backups";
const PREFIX = FLOW;
const CREDENTIALS = "backup-credentials";
/** B2's dataflow, and its Secret: the right access key id with a wrong secret key. */
const WRONG = "e2e-wrong-key";
const WRONG_CREDENTIALS = "wrong-credentials";
/** Output on a claim of its own, which the loss spares: the recovery claims are what is lost. */
const OUTPUT_CLAIM = `${FLOW}-output`;
const OUTPUT_MOUNT = "/var/lib/waxflow/output";
/** The recovery claims of the dataflow (the StatefulSet's volumeClaimTemplate labels them). */
const RECOVERY_CLAIMS = `waxflow.io/dataflow=${FLOW}`;
const PROCESSES = ["app.kubernetes.io/name=waxflow", `waxflow.io/dataflow=${FLOW}`].join(",");

/** 4 feeds of 2400 readings, 5 every 100 ms: about 50 s of input, paced so the loss lands mid-stream. */
const READINGS: ReadingsSettings = {
  partitions: 4,
  perPartition: 2400,
  batch: 5,
  intervalMs: 100,
  sensors: 12,
  follow: true,
};

const controllerImage = process.env.WAXFLOW_CONTROLLER_IMAGE;
const storeImage = process.env.WAXFLOW_SEAWEEDFS_IMAGE;
const work = mkdtempSync(join(tmpdir(), "waxflow-e2e-backup-"));
const accessKeyId = `e2e${randomBytes(6).toString("hex")}`;
const secretAccessKey = randomBytes(18).toString("hex");

restrictedNamespace(NS);

// The store's image goes into the node here, not in run.sh: only this file needs it.
beforeAll(() => {
  const archive = process.env.WAXFLOW_SEAWEEDFS_ARCHIVE;
  if (archive === undefined) return;
  const t0 = Date.now();
  execFileSync("kind", ["load", "image-archive", archive, "--name", CLUSTER], { stdio: "pipe" });
  console.log(`kind load image-archive ${archive}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function apply(manifests: readonly Manifest[]): Promise<void> {
  const file = join(work, `apply-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "List", items: manifests }));
  await kubectl("apply", "-f", file);
}

/** The claim the output goes to and the pod template overlay that mounts it in every process. */
function outputOverlay(): { claim: Manifest; template: string } {
  const template = join(work, "pod-template.json");
  writeFileSync(
    template,
    JSON.stringify({
      spec: {
        volumes: [{ name: "output", persistentVolumeClaim: { claimName: OUTPUT_CLAIM } }],
        containers: [{ name: "waxflow", volumeMounts: [{ name: "output", mountPath: OUTPUT_MOUNT }] }],
      },
    }),
  );
  const claim = {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: OUTPUT_CLAIM, namespace: NS },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "100Mi" } } },
  };
  return { claim, template };
}

async function counts() {
  return checkCounts(await volumeLines(NS, OUTPUT_CLAIM, ""), expectedCounts(READINGS));
}

interface Claim {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  status?: { phase?: string };
}

async function recoveryClaims(): Promise<Claim[]> {
  return (await kubectlJson<{ items: Claim[] }>("get", "pvc", "-n", NS, "-l", RECOVERY_CLAIMS)).items;
}

async function untilReady(processes: number): Promise<Pod[]> {
  return eventually(
    `${processes} pods of ${FLOW} Ready`,
    async () => {
      const now = await pods(NS, FLOW);
      return now.length === processes && now.every(isReady) ? now : undefined;
    },
    { timeoutMs: 240_000 },
  );
}

/** `waxctl df deploy` of the running count with recovery on and backups to the store's bucket under its own name. */
function deployFlags(name: string, endpoint: string, credentials: string): string[] {
  return [
    "df",
    "deploy",
    "examples/running-count.ts",
    "--name",
    name,
    "-n",
    NS,
    "--recovery",
    "--recovery-snapshot-interval",
    "2s",
    "--recovery-backup-interval",
    "6s",
    "--backup-bucket",
    BUCKET,
    "--backup-endpoint",
    endpoint,
    "--backup-prefix",
    name,
    "--backup-credentials-secret",
    credentials,
    "-e",
    `READINGS_PARTITIONS=${READINGS.partitions}`,
    "-e",
    `READINGS_PER_PARTITION=${READINGS.perPartition}`,
    "-e",
    `READINGS_BATCH=${READINGS.batch}`,
    "-e",
    `READINGS_INTERVAL_MS=${READINGS.intervalMs}`,
    "-e",
    `READINGS_FOLLOW=${READINGS.follow}`,
    "--json",
  ];
}

/** What B1 leaves running for B2: its pods after the restore and the complete sets then. */
let running: { readonly pods: readonly Pod[]; readonly sets: readonly string[] } | undefined;

const RESTORED = /process (\d+): restored the recovery store from backup set (\S+) \(execution (\d+), epoch (\d+)/;

describe("restore from a bucket on kind", { timeout: 900_000 }, () => {
  test("B1. every pod and every recovery claim of a -p 3 running count deleted: it restores from the bucket and counts on exactly once", async () => {
    expect(controllerImage, "run through `npm run e2e`, which builds the images").toBeDefined();
    expect(storeImage, "run through `npm run e2e`, which builds the SeaweedFS image").toBeDefined();
    const t0 = Date.now();
    const at = (): string => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
    const install = await waxctl(["install", "--image", controllerImage ?? "", "--wait", "--json"]);
    expect(install.code, install.stderr).toBe(0);

    const store = { namespace: NS, name: STORE, image: storeImage ?? "", bucket: BUCKET };
    const output = outputOverlay();
    await apply([
      ...objectStoreManifests({ ...store, keys: { [accessKeyId]: secretAccessKey } }),
      credentialsSecret(NS, CREDENTIALS, accessKeyId, secretAccessKey),
      output.claim,
    ]);
    const rollout = await tryKubectl("rollout", "status", `deployment/${STORE}`, "-n", NS, "--timeout=180s");
    if (rollout.code !== 0) {
      const log = await tryKubectl("logs", "-n", NS, `deployment/${STORE}`);
      throw new Error(`object store not ready: ${rollout.stderr.trim()}\n${log.stdout}${log.stderr}`);
    }
    const bucket = await openBucket(
      store,
      { accessKeyId, secretAccessKey, prefix: PREFIX },
      {
        ...process.env,
        KUBECONFIG,
      },
    );
    try {
      // The gateway answers before its filer is up: ready once the bucket lists with the keys.
      await eventually("the bucket to list with the test keys", async () => {
        await bucket.bucket.check();
        return true;
      });
      const storeReady = at();

      const deploy = await waxctl([
        ...deployFlags(FLOW, s3Endpoint(store), CREDENTIALS),
        "-p",
        "3",
        "-w",
        "2",
        "--pod-template",
        output.template,
        "-e",
        `OUTPUT_DIR=${OUTPUT_MOUNT}`,
        "--wait",
        "--timeout",
        "5m",
      ]);
      expect(deploy.stderr).toBe("");
      expect(deploy.code).toBe(0);
      const deployed = at();

      // A complete set (manifest written by process 0 once every process uploaded), and
      // the stream well under way: the restore must resume mid-stream, not from the start.
      const total = READINGS.partitions * READINGS.perPartition;
      const before = await eventually(
        "a complete backup set, with a quarter of the readings counted",
        async () => {
          const sets = await completeSets(bucket.bucket);
          const report = await counts();
          return sets.length > 0 && report.counted >= total / 4 ? { sets, report } : undefined;
        },
        { timeoutMs: 180_000 },
      );
      expect(before.report).toMatchObject({ duplicates: [], gaps: [], malformed: [] });
      expect(before.report.complete, "the loss must land mid-stream").toBeLessThan(READINGS.sensors);
      const newestBefore = before.sets.at(-1) ?? "";
      const backedUp = at();

      // The loss: the claims first (kept by their protection until no pod uses them), then
      // the pods. The StatefulSet recreates both, empty.
      const lostClaims = await recoveryClaims();
      expect(lostClaims.map((c) => c.metadata.name).sort()).toEqual([0, 1, 2].map((i) => `recovery-${FLOW}-${i}`));
      await kubectl("delete", "pvc", "-n", NS, "-l", RECOVERY_CLAIMS, "--wait=false");
      const kill = await killPods(NS, PROCESSES, "--grace-period=0", "--force");
      const lostAt = Date.now();
      const lost = at();

      const back = await untilReady(3);
      expect(
        back
          .filter((p) => replaced(kill, p))
          .map((p) => p.metadata.name)
          .sort(),
      ).toEqual([0, 1, 2].map((i) => `${FLOW}-${i}`));
      const readyAgain = ((Date.now() - lostAt) / 1000).toFixed(0);
      const claims = await recoveryClaims();
      const oldUids = new Set(lostClaims.map((c) => c.metadata.uid));
      expect(claims.filter((c) => oldUids.has(c.metadata.uid)).map((c) => c.metadata.name)).toEqual([]);
      expect(claims.map((c) => c.status?.phase)).toEqual(["Bound", "Bound", "Bound"]);

      // Each process says which set it restored: one set for all, at least as new as the
      // newest complete one before the loss.
      const restored = await Promise.all(
        [0, 1, 2].map(async (i) => {
          // The restore is the first container's: a later one finds its volume filled.
          const previous = await tryKubectl("logs", "-n", NS, `${FLOW}-${i}`, "--previous");
          const log = `${previous.code === 0 ? previous.stdout : ""}${await kubectl("logs", "-n", NS, `${FLOW}-${i}`)}`;
          const m = RESTORED.exec(log);
          expect(m, `${FLOW}-${i} did not restore:\n${log.slice(-3000)}`).not.toBeNull();
          return { process: Number(m?.[1]), set: m?.[2] ?? "", execution: Number(m?.[3]), epoch: Number(m?.[4]) };
        }),
      );
      expect(restored.map((r) => r.process)).toEqual([0, 1, 2]);
      expect(new Set(restored.map((r) => r.set)).size, JSON.stringify(restored)).toBe(1);
      const set = restored[0]?.set ?? "";
      expect(set >= newestBefore, `restored ${set}, older than ${newestBefore}`).toBe(true);
      expect(restored[0]?.epoch).toBeGreaterThan(0);

      const after = await eventually(
        `${FLOW} to count every reading`,
        async () => {
          const report = await counts();
          if (report.duplicates.length > 0 || report.malformed.length > 0) return report;
          return report.complete === READINGS.sensors ? report : undefined;
        },
        { timeoutMs: 300_000, everyMs: 3_000 },
      );
      expect(after).toMatchObject({ complete: READINGS.sensors, duplicates: [], gaps: [], malformed: [] });
      // The restored processes back up again, as a new execution.
      const setsAfter = await completeSets(bucket.bucket);
      console.log(
        [
          `backup e2e: ${total} readings, ${READINGS.sensors} sensors exactly once; restored set ${set} (epoch ${restored[0]?.epoch}) after the loss of 3 pods and 3 claims`,
          `  counted before the loss: ${before.report.counted}; complete sets before: ${before.sets.join(", ")}; after: ${setsAfter.join(", ")}`,
          `  restarts after the loss: ${back.map((p) => `${p.metadata.name}=${restarts(p)}`).join(", ")}`,
          `  seconds: store ready ${storeReady}, deployed ${deployed}, backed up ${backedUp}, lost ${lost}, Ready again ${readyAgain} s after the loss, complete ${at()}`,
        ].join("\n"),
      );
      running = { pods: back, sets: setsAfter };
    } finally {
      bucket.close();
    }
  });

  test("B2. a wrong secret key: deploy stops with one line naming the refused credentials, in the Dataflow's status and df describe; the running dataflow on the same store goes on backing up", async () => {
    expect(running, "B1 must leave its dataflow running").toBeDefined();
    const t0 = Date.now();
    await apply([credentialsSecret(NS, WRONG_CREDENTIALS, accessKeyId, `${secretAccessKey}x`)]);
    // Without --json: the error line is what the user reads.
    const deploy = await waxctl([
      ...deployFlags(WRONG, s3Endpoint({ name: STORE, namespace: NS }), WRONG_CREDENTIALS).filter(
        (f) => f !== "--json",
      ),
      "-p",
      "1",
      "-w",
      "1",
      "--wait",
      "--timeout",
      "5m",
    ]);
    const took = Date.now() - t0;
    const line =
      `backup credentials refused by ${s3Endpoint({ name: STORE, namespace: NS })} for bucket "${BUCKET}" (SignatureDoesNotMatch): ` +
      "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS credentials file)";
    expect(deploy.code).toBe(1);
    const errors = deploy.stderr.trimEnd().split("\n");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      new RegExp(`^error: dataflow ${WRONG} failed: process ${WRONG}-0 failed 2 times in a row with exit code 1: `),
    );
    expect(errors[0]).toContain(line);
    // Two runs and the kubelet's first back-off, not the timeout.
    expect(took).toBeLessThan(120_000);

    const row = (await kubectl("get", "df", "-n", NS, WRONG)).split("\n")[1];
    expect(row).toMatch(new RegExp(`^${WRONG}\\s+0/1\\s+running\\s+Failed\\s`));
    expect(row).toContain(line);
    const df = await kubectlJson<{ status?: { conditions?: { type: string; status: string; message?: string }[] } }>(
      "get",
      "dataflow",
      "-n",
      NS,
      WRONG,
    );
    expect(df.status?.conditions?.find((c) => c.type === "Degraded" && c.status === "True")?.message).toContain(line);
    const describe = await waxctl(["df", "describe", WRONG, "-n", NS]);
    expect(describe.code, describe.stderr).toBe(0);
    const described = describe.stdout.split("\n").filter((l) => l.includes(line));
    expect(described.length, describe.stdout).toBeGreaterThan(0);

    // The running dataflow on the same store: the same pods, no restart, and a new
    // complete set since (the wrong key wrote nothing and refused nothing of its).
    const bucket = await openBucket(
      { namespace: NS, name: STORE, bucket: BUCKET },
      { accessKeyId, secretAccessKey, prefix: PREFIX },
      { ...process.env, KUBECONFIG },
    );
    try {
      const newest = running?.sets.at(-1) ?? "";
      const sets = await eventually("a new complete backup set of the running dataflow", async () => {
        const now = await completeSets(bucket.bucket);
        return (now.at(-1) ?? "") > newest ? now : undefined;
      });
      const now = await pods(NS, FLOW);
      expect(now.map((p) => p.metadata.uid).sort()).toEqual(running?.pods.map((p) => p.metadata.uid).sort());
      expect(now.map(restarts)).toEqual([0, 0, 0]);
      expect(now.every(isReady)).toBe(true);
      const wrote = new BackupBucket({
        endpoint: bucket.bucket.config.endpoint,
        bucket: BUCKET,
        prefix: WRONG,
        credentials: { accessKeyId, secretAccessKey },
      });
      try {
        expect(await wrote.list(wrote.setsPrefix)).toEqual([]);
      } finally {
        wrote.close();
      }
      console.log(
        `  wrong key: df deploy failed after ${(took / 1000).toFixed(0)} s with: ${errors[0]}\n  running dataflow's sets since: ${sets.join(", ")}`,
      );
    } finally {
      bucket.close();
    }

    for (const name of [WRONG, FLOW]) {
      const deleted = await waxctl(["df", "delete", name, "-n", NS, "--purge", "--yes", "--wait"]);
      expect(deleted.code, deleted.stderr).toBe(0);
    }
  });
});
