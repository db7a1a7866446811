// `df savepoint` and `df fork` against a real kube-apiserver, a real `waxflow run` process
// and a real S3-compatible store (SeaweedFS), as df-state.int.test.ts does: the test creates
// pod source-0 whose status points at this machine, where the process serves its API; the
// API server's pod proxy carries POST, GET and DELETE with the token header through to it.
import { resolve } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { Kube } from "../../controller/src/kube/client.ts";
import { installCrd } from "../../controller/src/kube/crd.ts";
import { createDataflow, startCluster, type TestCluster } from "../../controller/test/harness/apiserver.ts";
import { BackupBucket } from "../../runtime/src/recovery/backup.ts";
import { freePorts } from "../../runtime/test/support/ports.ts";
import { childProcesses } from "../../runtime/test/support/processes.ts";
import { backupConfig, type ObjectStore, S3_BUCKET, startObjectStore } from "../../runtime/test/support/seaweedfs.ts";
import { TEST_SECRET, TEST_SECRET_BYTES } from "../../runtime/test/support/secret.ts";
import type { SavepointRecord } from "../src/savepoints.ts";
import { createProcessPod } from "./process-pod.ts";
import { type Outcome, waxctl } from "./waxctl.ts";

vi.setConfig({ testTimeout: 90_000 });

const ROOT = resolve(import.meta.dirname, "../..");
const IMAGE = `registry.example/live@sha256:${"a".repeat(64)}`;
const processes = childProcesses();
let cluster: TestCluster;
let store: ObjectStore;
let apiPort: number;

const run = (...args: string[]): Promise<Outcome> => waxctl([...args, "--kubeconfig", cluster.kubeconfigPath]);

beforeAll(async () => {
  [cluster, store] = await Promise.all([startCluster(), startObjectStore()]);
  await installCrd(new Kube(cluster.kubeConfig()));
  const recovery = {
    enabled: true,
    backup: { bucket: S3_BUCKET, endpoint: store.endpoint, prefix: "default/source" },
  };
  await createDataflow(cluster.kubeConfig(), "default", "source", { image: IMAGE, module: "/app/flow.js", recovery });
  await createDataflow(cluster.kubeConfig(), "default", "plain", { image: IMAGE, module: "/app/flow.js" });
  await cluster
    .kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespacedSecret({
      namespace: "default",
      body: { metadata: { name: "source-cluster-secret" }, data: { secret: TEST_SECRET_BYTES.toString("base64") } },
    });
  [apiPort] = (await freePorts(1)) as [number];
  await createProcessPod(cluster.kubeConfig(), { name: "source-0", dataflow: "source", apiPort });
}, 3_600_000);

afterAll(async () => {
  await Promise.all([cluster?.stop(), store?.stop()]);
}, 60_000);

/** Process 0 of `source`: a running count backing up every 0.5 s, for as long as the test needs. */
function startSource(): void {
  processes.start(
    [
      resolve(ROOT, "runtime/src/cli.ts"),
      "run",
      "runtime/test/fixtures/recovery-flow.ts",
      ...["-w", "2", "-s", "0.1", "-b", "0.5", "-r", processes.tempDir("waxctl-savepoint-"), "--recovery-init"],
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: String(apiPort),
        WAXFLOW_QUIET: "true",
        WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        WAXFLOW_BACKUP_PREFIX: "default/source",
        RF_OUT: processes.tempDir("waxctl-savepoint-out-"),
        RF_UNTIL: "1000000",
        RF_PACE_MS: "50",
        ...store.env,
      },
      stdio: "ignore",
    },
  );
}

test("df savepoint create, list and delete reach process 0 through the pod proxy; df fork takes one and applies a Dataflow starting from it", async () => {
  startSource();
  // The process answers once its cluster (of one) has resumed.
  await expect
    .poll(async () => (await run("df", "savepoint", "list", "source", "--json")).error?.message, {
      timeout: 60_000,
      interval: 500,
    })
    .toBeUndefined();

  const created = await run("df", "savepoint", "create", "source", "--id", "sp-a", "--json");
  expect(created.error).toBeUndefined();
  const record = JSON.parse(created.stdout) as SavepointRecord;
  expect(record).toMatchObject({ id: "sp-a", state: "complete", processCount: 1 });
  expect(record.epoch).toBeGreaterThan(0);

  const pending = await run("df", "savepoint", "create", "source", "--no-wait");
  expect(pending.stdout).toMatch(/^savepoint sp-\d{8}-\d{6}-[0-9a-f]{4} of dataflow source requested; /);
  const again = await run("df", "savepoint", "create", "source", "--id", "sp-a");
  expect(again.error?.oclif?.exit).toBe(1);
  expect(again.stderr).toBe("error: pod source-0: savepoint sp-a exists; pick another id or delete it first\n");

  const table = await run("df", "savepoint", "list", "source");
  expect(table.stdout).toMatch(/^ID\s+STATE\s+EPOCH\s+CREATED\s+SIZE\s+PROCESSES\n/);
  expect(table.stdout).toMatch(/^sp-a\s+complete\s+\d+\s+\S+ ago\s+\d/m);

  const deleted = await run("df", "savepoint", "delete", "source", "sp-a", "--json");
  expect(JSON.parse(deleted.stdout)).toEqual({ deleted: "sp-a" });
  const bucket = new BackupBucket(backupConfig(store.endpoint, "default/source"));
  expect(await bucket.list(bucket.savepointPrefix("sp-a"))).toEqual([]);
  const gone = await run("df", "savepoint", "delete", "source", "sp-a");
  expect(gone.stderr).toBe("error: pod source-0: no savepoint sp-a\n");

  // The fork: a savepoint first, then a Dataflow with its own prefix starting from it.
  const forked = await run("df", "fork", "source", "--name", "source-copy", "--json");
  expect(forked.error).toBeUndefined();
  const fork = JSON.parse(forked.stdout) as { spec: Record<string, unknown> };
  const restoreFrom = fork.spec.restoreFrom as { savepoint: string; prefix: string };
  expect(restoreFrom.prefix).toBe("default/source");
  expect(fork.spec).toMatchObject({
    image: IMAGE,
    module: "/app/flow.js",
    recovery: { enabled: true, backup: { bucket: S3_BUCKET, endpoint: store.endpoint, prefix: "default/source-copy" } },
  });
  const savepoint = JSON.parse(
    (await bucket.getText(`${bucket.savepointPrefix(restoreFrom.savepoint)}savepoint.json`)) ?? "{}",
  ) as { id?: string };
  expect(savepoint.id).toBe(restoreFrom.savepoint);
  bucket.close();

  const samePrefix = await run("df", "fork", "source", "--name", "other", "--backup-prefix", "default/source");
  expect(samePrefix.stderr).toMatch(/^error: --backup-prefix "default\/source" is source's own: /);
  const exists = await run("df", "fork", "source", "--name", "source-copy", "--from-savepoint", "sp-x");
  expect(exists.stderr).toBe(
    "error: dataflow source-copy exists in namespace default; pick another --name or delete it first\n",
  );
});

test("a Dataflow without backups has no savepoints: one line saying what to deploy", async () => {
  const outcome = await run("df", "savepoint", "list", "plain");
  expect(outcome.error?.oclif?.exit).toBe(1);
  expect(outcome.stderr).toBe(
    "error: dataflow plain has no backups to take savepoints from: deploy it with --recovery --backup-bucket BUCKET (spec.recovery.backup)\n",
  );
  const fork = await run("df", "fork", "plain", "--name", "plain-copy");
  expect(fork.stderr).toMatch(/^error: dataflow plain has no backups, so no savepoint to fork from/);
});
