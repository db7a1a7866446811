import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { expectedCounts, type ReadingsSettings, settingsEnv } from "../examples/running-count.ts";
import { BackupBucket } from "../runtime/src/recovery/backup.ts";
import {
  applyList,
  CLUSTER,
  envFlags,
  eventually,
  isReady,
  KUBECONFIG,
  killPods,
  kubectl,
  kubectlJson,
  loadImageArchives,
  type Pod,
  pods,
  replaced,
  restarts,
  restrictedNamespace,
  tryKubectl,
  volumeLines,
  waxctl,
} from "./lib/cluster.ts";
import { checkCounts, checkResumedCounts, runningCountDeploy } from "./lib/counts.ts";
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
/** B3's source dataflow and its fork: output on stdout, read with kubectl logs (no process restarts). */
const SOURCE = "e2e-sp";
const FORK = `${SOURCE}-fork`;
/** B4's dataflow, its output on a claim of its own (its processes are replaced three times). */
const UPGRADED = "e2e-upgrade";
const UPGRADED_OUTPUT = `${UPGRADED}-output`;
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
beforeAll(() => loadImageArchives(process.env.WAXFLOW_SEAWEEDFS_ARCHIVE), 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const STORE_SETTINGS = { namespace: NS, name: STORE, bucket: BUCKET } as const;
const testEnv = { ...process.env, KUBECONFIG };
let store: Promise<void> | undefined;

/**
 * The operator and the object store every scenario here uses, set up by the first scenario
 * that runs (so `-t B3` alone works too): `waxctl install`, the SeaweedFS Deployment with
 * the test keys, the credentials Secret, and a bucket that lists with those keys.
 */
function storeUp(): Promise<void> {
  store ??= (async () => {
    expect(controllerImage, "run through `npm run e2e`, which builds the images").toBeDefined();
    expect(storeImage, "run through `npm run e2e`, which builds the SeaweedFS image").toBeDefined();
    const install = await waxctl(["install", "--image", controllerImage ?? "", "--wait", "--json"]);
    expect(install.code, install.stderr).toBe(0);
    await apply([
      ...objectStoreManifests({ ...STORE_SETTINGS, image: storeImage ?? "", keys: { [accessKeyId]: secretAccessKey } }),
      credentialsSecret(NS, CREDENTIALS, accessKeyId, secretAccessKey),
    ]);
    const rollout = await tryKubectl("rollout", "status", `deployment/${STORE}`, "-n", NS, "--timeout=180s");
    if (rollout.code !== 0) {
      const log = await tryKubectl("logs", "-n", NS, `deployment/${STORE}`);
      throw new Error(`object store not ready: ${rollout.stderr.trim()}\n${log.stdout}${log.stderr}`);
    }
    const bucket = await openBucket(STORE_SETTINGS, { accessKeyId, secretAccessKey, prefix: PREFIX }, testEnv);
    try {
      // The gateway answers before its filer is up: ready once the bucket lists with the keys.
      await eventually("the bucket to list with the test keys", async () => {
        await bucket.bucket.check();
        return true;
      });
    } finally {
      bucket.close();
    }
  })();
  return store;
}

const apply = (manifests: readonly Manifest[]): Promise<void> => applyList(work, manifests);

/** The claim `claimName` and the pod template overlay that mounts it at OUTPUT_MOUNT in every process. */
function outputOverlay(claimName = OUTPUT_CLAIM): { claim: Manifest; template: string } {
  const template = join(work, `pod-template-${claimName}.json`);
  writeFileSync(
    template,
    JSON.stringify({
      spec: {
        volumes: [{ name: "output", persistentVolumeClaim: { claimName } }],
        containers: [{ name: "waxflow", volumeMounts: [{ name: "output", mountPath: OUTPUT_MOUNT }] }],
      },
    }),
  );
  const claim = {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: claimName, namespace: NS },
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

async function untilReady(processes: number, flow = FLOW): Promise<Pod[]> {
  return eventually(
    `${processes} pods of ${flow} Ready`,
    async () => {
      const now = await pods(NS, flow);
      return now.length === processes && now.every(isReady) ? now : undefined;
    },
    { timeoutMs: 240_000 },
  );
}

/** -p 3 -w 2, its output on the claim `template` mounts, waiting until Ready: the flags B1 and B4 deploy with. */
function countingOnClaim(template: string): string[] {
  return [
    ...["-p", "3", "-w", "2", "--pod-template", template, "-e", `OUTPUT_DIR=${OUTPUT_MOUNT}`],
    ...["--wait", "--timeout", "5m"],
  ];
}

/** `waxctl df deploy` of the running count with recovery on and backups to the store's bucket under its own name. */
function deployFlags(name: string, endpoint: string, credentials: string, readings = READINGS): string[] {
  return [
    ...runningCountDeploy(name, NS),
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
    ...envFlags(settingsEnv(readings)),
    "--json",
  ];
}

/** What B1 leaves running for B2: its pods after the restore and the complete sets then. */
let running: { readonly pods: readonly Pod[]; readonly sets: readonly string[] } | undefined;

const RESTORED = /process (\d+): restored the recovery store from backup set (\S+) \(execution (\d+), epoch (\d+)/;

describe("restore from a bucket on kind", { timeout: 900_000 }, () => {
  test("B1. every pod and every recovery claim of a -p 3 running count deleted: it restores from the bucket and counts on exactly once", async () => {
    const t0 = Date.now();
    const at = (): string => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
    await storeUp();
    const output = outputOverlay();
    await apply([output.claim]);
    const bucket = await openBucket(STORE_SETTINGS, { accessKeyId, secretAccessKey, prefix: PREFIX }, testEnv);
    try {
      const storeReady = at();

      const deploy = await waxctl([
        ...deployFlags(FLOW, s3Endpoint(STORE_SETTINGS), CREDENTIALS),
        ...countingOnClaim(output.template),
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
  test("B3. savepoint create, list, fork from it, delete: the fork resumes from the savepoint's counts, both count on exactly once, the bucket keeps nothing of the deleted savepoint", async () => {
    const t0 = Date.now();
    const at = (): string => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
    await storeUp();
    const deploy = await waxctl([
      ...deployFlags(SOURCE, s3Endpoint(STORE_SETTINGS), CREDENTIALS),
      "-p",
      "3",
      "-w",
      "2",
      "--wait",
      "--timeout",
      "5m",
    ]);
    expect(deploy.code, deploy.stderr).toBe(0);
    const deployed = at();
    const total = READINGS.partitions * READINGS.perPartition;
    const expected = expectedCounts(READINGS);
    const counted = await eventually(
      `${SOURCE} to count a sixth of the readings`,
      async () => {
        const report = checkCounts(await stdoutCounts(SOURCE), expected);
        return report.counted >= total / 6 ? report.counted : undefined;
      },
      { timeoutMs: 120_000 },
    );

    // Waits until complete by default: the first complete backup set after the request.
    const create = await waxctl(["df", "savepoint", "create", SOURCE, "-n", NS, "--json"]);
    expect(create.code, create.stderr).toBe(0);
    const taken = JSON.parse(create.stdout) as Savepoint;
    expect(taken).toMatchObject({ state: "complete", processCount: 3 });
    expect(taken.epoch).toBeGreaterThan(0);
    const savepointAt = at();
    const list = await waxctl(["df", "savepoint", "list", SOURCE, "-n", NS, "--json"]);
    expect(list.code, list.stderr).toBe(0);
    const listed = (JSON.parse(list.stdout) as { savepoints: Savepoint[] }).savepoints;
    expect(listed.find((r) => r.id === taken.id)).toMatchObject({
      id: taken.id,
      state: "complete",
      epoch: taken.epoch,
      processCount: 3,
    });

    const fork = await waxctl(["df", "fork", SOURCE, "--name", FORK, "-n", NS, "--from-savepoint", taken.id]);
    expect(fork.code, fork.stderr).toBe(0);
    expect(fork.stdout).toContain(
      `dataflow ${FORK} created in namespace ${NS} from savepoint ${taken.id} of ${SOURCE}`,
    );
    await untilReady(3, FORK);
    const forkReady = at();
    for (const i of [0, 1, 2]) {
      const log = await kubectl("logs", "-n", NS, `${FORK}-${i}`);
      expect(log, `${FORK}-${i} did not start from the savepoint:\n${log.slice(-3000)}`).toMatch(
        new RegExp(
          `process ${i}: restored the recovery store from savepoint ${taken.id} \\(backup set \\S+, execution \\d+, epoch ${taken.epoch},`,
        ),
      );
    }

    // Both count every reading: the source 1..n, the fork from the savepoint's count of
    // each sensor to n, each once. The savepoint was taken after `counted` readings were.
    const done = await eventually(
      `${SOURCE} and ${FORK} to count every reading`,
      async () => {
        const source = checkCounts(await stdoutCounts(SOURCE), expected);
        const forked = checkResumedCounts(await stdoutCounts(FORK), expected);
        if ([source, forked].some((r) => r.duplicates.length > 0 || r.malformed.length > 0)) return { source, forked };
        return source.complete === READINGS.sensors && forked.complete === READINGS.sensors
          ? { source, forked }
          : undefined;
      },
      { timeoutMs: 180_000, everyMs: 3_000 },
    );
    expect(done.source).toMatchObject({ complete: READINGS.sensors, duplicates: [], gaps: [], malformed: [] });
    expect(done.forked).toMatchObject({ complete: READINGS.sensors, duplicates: [], gaps: [], malformed: [] });
    const resumed = [...done.forked.resumedAt.values()].reduce((a, b) => a + b, 0);
    expect(resumed, "the fork resumed from the savepoint, not from the start").toBeGreaterThanOrEqual(counted);
    expect(resumed, "the savepoint was taken mid-stream").toBeLessThan(total);

    const deleted = await waxctl(["df", "savepoint", "delete", SOURCE, taken.id, "-n", NS, "--json"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(JSON.parse(deleted.stdout)).toEqual({ deleted: taken.id });
    const bucket = await openBucket(STORE_SETTINGS, { accessKeyId, secretAccessKey, prefix: SOURCE }, testEnv);
    try {
      expect(await bucket.bucket.list(bucket.bucket.savepointPrefix(taken.id))).toEqual([]);
    } finally {
      bucket.close();
    }
    const after = await waxctl(["df", "savepoint", "list", SOURCE, "-n", NS, "--json"]);
    expect((JSON.parse(after.stdout) as { savepoints: Savepoint[] }).savepoints.map((r) => r.id)).not.toContain(
      taken.id,
    );
    console.log(
      [
        `savepoint e2e: savepoint ${taken.id} (epoch ${taken.epoch}) of ${SOURCE} after ${counted} of ${total} readings; the fork resumed after ${resumed}`,
        `  seconds: deployed ${deployed}, savepoint complete ${savepointAt}, fork Ready ${forkReady}, both complete and savepoint deleted ${at()}`,
      ].join("\n"),
    );
    for (const name of [FORK, SOURCE]) {
      const gone = await waxctl(["df", "delete", name, "-n", NS, "--purge", "--yes", "--wait"]);
      expect(gone.code, gone.stderr).toBe(0);
    }
  });

  test("B4. upgradeMode savepoint: a new image takes a savepoint and its processes start from it; a broken image rolls back to the last Ready spec; a good one rolls forward; counts exactly once throughout", async () => {
    const t0 = Date.now();
    const at = (): string => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
    await storeUp();
    const output = outputOverlay(UPGRADED_OUTPUT);
    await apply([output.claim]);
    const deploy = await waxctl([
      ...deployFlags(UPGRADED, s3Endpoint(STORE_SETTINGS), CREDENTIALS),
      ...countingOnClaim(output.template),
    ]);
    expect(deploy.code, deploy.stderr).toBe(0);
    const expected = expectedCounts(READINGS);
    const total = READINGS.partitions * READINGS.perPartition;
    const upgradedCounts = async () => checkCounts(await volumeLines(NS, UPGRADED_OUTPUT, ""), expected);
    const df = `dataflow/${UPGRADED}`;
    const original = (await kubectlJson<{ spec: Release }>("get", df, "-n", NS)).spec;
    // Two more releases, built and loaded into the node while the first runs.
    const [v2, broken] = await Promise.all([
      release("e2e/fixtures/running-count-v2.ts"),
      release("e2e/fixtures/running-count-broken.ts", "--no-check"),
    ]);
    expect(new Set([original.image, v2.image, broken.image]).size).toBe(3);
    // No waxctl flag for it: set as a GitOps user would, in the spec.
    const first = await pods(NS, UPGRADED);
    await kubectl("patch", df, "-n", NS, "--type=merge", "-p", '{"spec":{"upgradeMode":"savepoint"}}');
    const deployed = at();

    // 1. A new image, as a GitOps pipeline would set it: a savepoint first (the first
    // complete backup set after the request, so mid-stream), the new processes start from it.
    await kubectl("patch", df, "-n", NS, "--type=merge", "-p", JSON.stringify({ spec: v2 }));
    const generation = (await kubectlJson<{ metadata: { generation: number } }>("get", df, "-n", NS)).metadata
      .generation;
    const upgraded = await untilRolled(first, v2);
    const savepoint = (await dataflowStatus(UPGRADED)).lastSavepoint;
    // Taken for this edit's roll (the controller names it after the generation).
    expect(savepoint?.id).toMatch(new RegExp(`^sp-\\d{8}-\\d{6}-g${generation}$`));
    expect(await eventReasons(UPGRADED)).toContain("SavepointTaken");
    await expectStartedFrom(savepoint?.id ?? "");
    expect((await tryKubectl("wait", "--for=condition=Ready", df, "-n", NS, "--timeout=60s")).code).toBe(0);
    const mid = await upgradedCounts();
    expectOnce(mid);
    expect(mid.complete, "the upgrade must land mid-stream").toBeLessThan(READINGS.sensors);
    const upgradeDone = at();

    // 2. A broken image (its module throws as it loads) with rollback on: a savepoint, the
    // new processes fail, and after readyTimeout the last Ready spec runs again from it.
    await kubectl(
      "patch",
      df,
      "-n",
      NS,
      "--type=merge",
      "-p",
      '{"spec":{"rollback":{"enabled":true,"readyTimeout":"40s"}}}',
    );
    await kubectl("patch", df, "-n", NS, "--type=merge", "-p", JSON.stringify({ spec: broken }));
    const failing = await untilRolled(upgraded, broken, false);
    const rolledBack = await eventually(
      "the rollback to the last Ready spec",
      async () => {
        const status = await dataflowStatus(UPGRADED);
        const ready = status.conditions?.find((c) => c.type === "Ready");
        return ready?.reason === "RolledBack" ? { status, ready } : undefined;
      },
      { timeoutMs: 150_000 },
    );
    expect(rolledBack.ready.status).toBe("False");
    const brokenSavepoint = rolledBack.status.lastSavepoint?.id ?? "";
    expect(brokenSavepoint).not.toBe(savepoint?.id);
    expect(await eventReasons(UPGRADED)).toContain("RolledBack");
    // The last Ready spec's pods (v2), from the savepoint taken before the broken image.
    await untilRolled(failing, v2);
    await expectStartedFrom(brokenSavepoint);
    const wait = await tryKubectl("wait", "--for=condition=Ready", df, "-n", NS, "--timeout=5s");
    expect(wait.code, "kubectl wait must not pass while rolled back").not.toBe(0);
    expectOnce(await upgradedCounts());
    const rolledBackAt = at();

    // 3. A good image rolls forward: the first release again.
    const forward = await pods(NS, UPGRADED);
    const again = { image: original.image, module: original.module };
    await kubectl("patch", df, "-n", NS, "--type=merge", "-p", JSON.stringify({ spec: again }));
    await untilRolled(forward, again);
    expect((await tryKubectl("wait", "--for=condition=Ready", df, "-n", NS, "--timeout=120s")).code).toBe(0);
    expect((await dataflowStatus(UPGRADED)).rolledBack).toBeUndefined();
    const forwardAt = at();

    const after = await eventually(
      `${UPGRADED} to count every reading`,
      async () => {
        const report = await upgradedCounts();
        if (report.duplicates.length > 0 || report.malformed.length > 0) return report;
        return report.complete === READINGS.sensors ? report : undefined;
      },
      { timeoutMs: 240_000, everyMs: 3_000 },
    );
    expect(after).toMatchObject({ complete: READINGS.sensors, duplicates: [], gaps: [], malformed: [] });
    console.log(
      [
        `upgrade e2e: savepoints ${savepoint?.id} (upgrade to ${v2.image}), ${brokenSavepoint} (broken image, rolled back); ${total} readings exactly once`,
        `  seconds: deployed ${deployed}, upgraded ${upgradeDone}, rolled back ${rolledBackAt}, rolled forward ${forwardAt}, complete ${at()}`,
      ].join("\n"),
    );
    const gone = await waxctl(["df", "delete", UPGRADED, "-n", NS, "--purge", "--yes", "--wait"]);
    expect(gone.code, gone.stderr).toBe(0);
  });
});

interface Savepoint {
  readonly id: string;
  readonly state: string;
  readonly epoch?: number;
  readonly processCount?: number;
}

/** The `sensor,count` lines every process of `name` printed (stdout, beside its log lines). */
async function stdoutCounts(name: string): Promise<string[]> {
  const logs = await Promise.all((await pods(NS, name)).map((p) => kubectl("logs", "-n", NS, p.metadata.name)));
  return logs.flatMap((l) => l.split("\n")).filter((l) => /^sensor-\d+,\d+$/.test(l));
}

function expectOnce(report: ReturnType<typeof checkCounts>): void {
  expect(report).toMatchObject({ duplicates: [], gaps: [], malformed: [] });
}

/** A release of B4's dataflow: what a GitOps pipeline sets in its spec. */
interface Release {
  readonly image: string;
  readonly module: string;
}

/** `waxctl image build FILE -o kind:CLUSTER`: the image by digest, loaded into the node, and its module. */
async function release(file: string, ...flags: string[]): Promise<Release> {
  const built = await waxctl([
    "image",
    "build",
    file,
    "-N",
    "running-count",
    "-o",
    `kind:${CLUSTER}`,
    "--json",
    ...flags,
  ]);
  expect(built.code, built.stderr).toBe(0);
  const { reference, module } = JSON.parse(built.stdout) as { reference: string; module: string };
  return { image: reference, module };
}

interface DataflowStatus {
  lastSavepoint?: { id: string; epoch?: number };
  rolledBack?: { generation: number };
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

async function dataflowStatus(name: string): Promise<DataflowStatus> {
  return (await kubectlJson<{ status?: DataflowStatus }>("get", "dataflow", "-n", NS, name)).status ?? {};
}

async function eventReasons(name: string): Promise<string[]> {
  const events = await kubectlJson<{ items: { reason?: string }[] }>(
    "get",
    "events",
    "-n",
    NS,
    "--field-selector",
    `involvedObject.name=${name},involvedObject.kind=Dataflow`,
  );
  return events.items.map((e) => e.reason ?? "");
}

interface ReleasePod extends Pod {
  spec?: { containers?: { name: string; image?: string }[] };
}

const podImage = (pod: ReleasePod): string | undefined =>
  pod.spec?.containers?.find((c) => c.name === "waxflow")?.image;

/**
 * Until every process of B4's dataflow is a new pod (none of `before`'s UIDs) running
 * `wanted`'s image, all Ready (or, `ready` false, merely there: a broken release never is).
 */
async function untilRolled(before: readonly Pod[], wanted: Release, ready = true) {
  const old = new Set(before.map((p) => p.metadata.uid));
  return eventually(
    `the processes of ${wanted.image}`,
    async () => {
      const now = (await pods(NS, UPGRADED)) as ReleasePod[];
      const fresh = now.filter((p) => !old.has(p.metadata.uid) && podImage(p) === wanted.image);
      return fresh.length === 3 && now.length === 3 && (!ready || now.every(isReady)) ? now : undefined;
    },
    { timeoutMs: 180_000 },
  );
}

/** Every process of B4's dataflow logged that it started from savepoint `id`. */
async function expectStartedFrom(id: string): Promise<void> {
  for (const i of [0, 1, 2]) {
    const log = await kubectl("logs", "-n", NS, `${UPGRADED}-${i}`);
    expect(log, `${UPGRADED}-${i} did not start from savepoint ${id}:\n${log.slice(-3000)}`).toContain(
      `process ${i}: restored the recovery store from savepoint ${id} `,
    );
  }
}
