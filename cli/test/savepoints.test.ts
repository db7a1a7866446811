// The pure parts of df savepoint, df fork and deploy --from-savepoint: the pod proxy
// request's shape (the test API server runs no pods, so the proxied POST and DELETE are
// checked here for method, path, headers and body; df-savepoint.int.test.ts drives them
// through a real API server to a real process), the fork's Dataflow and the flag rules.
import type { Dataflow } from "@waxflow/crds";
import { expect, test } from "vitest";
import { savepointRow } from "../src/commands/df/savepoint/list.ts";
import { forkedDataflow } from "../src/deploy/fork.ts";
import { dataflowManifest } from "../src/deploy/manifest.ts";
import { type DeployFlags, deployOptions } from "../src/deploy/options.ts";
import { proxyRequestOptions } from "../src/kube.ts";
import { answerLine, type SavepointRecord, waitForSavepoint } from "../src/savepoints.ts";
import { waxctl } from "./waxctl.ts";

const pod = {
  metadata: { name: "orders-0" },
  spec: { containers: [{ name: "waxflow", ports: [{ name: "api", containerPort: 3030 }] }] },
};

test("a POST through the pod proxy carries the method, the JSON body's type and length, and the token header", () => {
  const body = JSON.stringify({ id: "sp-1" });
  const options = proxyRequestOptions(
    "https://10.0.0.1:6443/prefix/",
    "streams",
    pod,
    "savepoints",
    { "x-waxflow-state-token": "t" },
    { method: "POST", body },
  );
  expect(options).toEqual({
    protocol: "https:",
    hostname: "10.0.0.1",
    port: "6443",
    method: "POST",
    path: "/prefix/api/v1/namespaces/streams/pods/orders-0%3A3030/proxy/savepoints",
    headers: { "x-waxflow-state-token": "t", "content-type": "application/json", "content-length": "13" },
  });
  const del = proxyRequestOptions("https://[::1]:6443", "ns", pod, "savepoints/sp-1", {}, { method: "DELETE" });
  expect(del).toMatchObject({ hostname: "::1", method: "DELETE", headers: {} });
  expect(proxyRequestOptions("https://h", "ns", pod, "state/x", {}).method).toBe("GET");
});

const recovery = { enabled: true, backup: { bucket: "b", endpoint: "http://s3:8333", prefix: "streams/orders" } };
const source: Dataflow = {
  apiVersion: "waxflow.io/v1alpha1",
  kind: "Dataflow",
  metadata: { name: "orders", namespace: "streams", uid: "u1", resourceVersion: "7" },
  spec: {
    image: `r/orders@sha256:${"a".repeat(64)}`,
    module: "/app/flow.js",
    processes: 3,
    workersPerProcess: 2,
    state: "suspended",
    restartNonce: 4,
    recovery,
    env: [{ name: "A", value: "1" }],
    restoreFrom: { savepoint: "older" },
  },
};

test("a fork copies the spec under its own name and prefix, starting from the savepoint under the source's prefix", () => {
  const fork = forkedDataflow({ source, name: "orders-canary", namespace: "streams", savepoint: "sp-1" });
  expect(fork.metadata).toEqual({
    name: "orders-canary",
    namespace: "streams",
    labels: expect.objectContaining({ "app.kubernetes.io/managed-by": "waxctl" }),
  });
  expect(fork.spec).toEqual({
    image: source.spec.image,
    module: "/app/flow.js",
    processes: 3,
    workersPerProcess: 2,
    recovery: { ...recovery, backup: { ...recovery.backup, prefix: "streams/orders-canary" } },
    env: [{ name: "A", value: "1" }],
    restoreFrom: { savepoint: "sp-1", prefix: "streams/orders" },
  });
  expect(() =>
    forkedDataflow({ source, name: "x", namespace: "streams", savepoint: "sp-1", backupPrefix: "streams/orders" }),
  ).toThrow(/^--backup-prefix "streams\/orders" is orders's own: /);
  const plain = { ...source, spec: { ...source.spec, recovery: { enabled: true } } };
  expect(() => forkedDataflow({ source: plain, name: "x", namespace: "n", savepoint: "s" })).toThrow(
    /^dataflow orders has no backups, so no savepoint to fork from/,
  );
});

const base: DeployFlags = { name: "orders", processes: 1, workers: 1, env: [], recovery: true, backupBucket: "b" };

test("--from-savepoint and --savepoint-prefix become spec.restoreFrom, and need a bucket", () => {
  const options = deployOptions({ ...base, fromSavepoint: "sp-1", savepointPrefix: "streams/orders" });
  expect(options.restoreFrom).toEqual({ savepoint: "sp-1", prefix: "streams/orders" });
  const manifest = dataflowManifest({ options, namespace: "n", image: "i", module: "m" });
  expect(manifest.spec.restoreFrom).toEqual({ savepoint: "sp-1", prefix: "streams/orders" });
  expect(deployOptions({ ...base, fromSavepoint: "sp-1" }).restoreFrom).toEqual({ savepoint: "sp-1" });
  expect(() => deployOptions({ ...base, backupBucket: undefined, fromSavepoint: "sp-1" })).toThrow(
    "--from-savepoint reads the savepoint from the backup bucket; add --backup-bucket",
  );
  expect(() => deployOptions({ ...base, fromSavepoint: "Sp_1" })).toThrow(
    /^--from-savepoint "Sp_1" is not a savepoint id/,
  );
});

test("waiting polls until complete, says why a savepoint failed, and gives up at the timeout", async () => {
  const states: SavepointRecord["state"][] = ["pending", "pending", "complete"];
  const seen: string[] = [];
  const record = await waitForSavepoint(
    { get: async (id) => ({ id, state: states.shift() ?? "complete", requestedAt: "" }) },
    "sp-1",
    10_000,
    (r) => seen.push(r.state),
    1,
  );
  expect(record.state).toBe("complete");
  expect(seen).toEqual(["pending", "pending", "complete"]);
  await expect(
    waitForSavepoint(
      { get: async (id) => ({ id, state: "failed", requestedAt: "", error: "no set" }) },
      "sp-1",
      1000,
      () => {},
      1,
    ),
  ).rejects.toThrow("savepoint sp-1 failed: no set");
  await expect(
    waitForSavepoint({ get: async (id) => ({ id, state: "pending", requestedAt: "" }) }, "sp-1", 5, () => {}, 1),
  ).rejects.toThrow(/^savepoint sp-1 is still pending after 0 s/);
});

test("the process's error line is shown as is; a row shows a failure's reason in place of its size", () => {
  expect(answerLine(409, '{"error":"savepoints are served by process 0 (pod orders-0)"}\n')).toBe(
    "savepoints are served by process 0 (pod orders-0)",
  );
  const now = new Date("2026-12-05T10:00:00Z");
  expect(
    savepointRow(
      {
        id: "a",
        state: "complete",
        requestedAt: "",
        createdAt: "2026-12-05T09:59:00Z",
        epoch: 7,
        bytes: 2500,
        processCount: 3,
      },
      now,
    ),
  ).toEqual(["a", "complete", "7", "60s ago", "2.5 kB", "3"]);
  expect(savepointRow({ id: "b", state: "failed", requestedAt: "", error: "no set" }, now)).toEqual([
    "b",
    "failed",
    "-",
    "-",
    "no set",
    "-",
  ]);
});

test.each(["savepoint create", "savepoint list", "savepoint delete", "fork"])(
  "df %s --help shows examples, --json and the shared cluster flags",
  async (command) => {
    const { stdout } = await waxctl(["df", ...command.split(" "), "--help"]);
    expect(stdout).toContain(`$ waxctl df ${command}`);
    expect(stdout).toContain("--json");
    expect(stdout).toContain("-n, --namespace=NAME");
  },
);

test("df deploy --dry-run prints spec.restoreFrom", async () => {
  const { stdout } = await waxctl([
    "df",
    "deploy",
    "examples/wordcount.ts",
    "-N",
    "wc",
    "--recovery",
    "--backup-bucket",
    "b",
    "--from-savepoint",
    "sp-1",
    "--savepoint-prefix",
    "prod/wc",
    "--dry-run",
    "-o",
    "json",
    "--no-check",
  ]);
  expect((JSON.parse(stdout) as Dataflow).spec.restoreFrom).toEqual({ savepoint: "sp-1", prefix: "prod/wc" });
});
