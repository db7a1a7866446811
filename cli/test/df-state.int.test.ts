// `df state` against a real kube-apiserver, as df-top.int.test.ts does: the test creates
// the pod, its status points at this machine's own address, where a real `waxflow run
// --state-query` process serves its API; the API server's pod proxy carries the token
// header through to it. A user who may not read the Dataflow's cluster Secret cannot query.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CoreV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, test, vi } from "vitest";
import { Kube } from "../../controller/src/kube/client.ts";
import { installCrd } from "../../controller/src/kube/crd.ts";
import { createDataflow, startCluster, type TestCluster, waitFor } from "../../controller/test/harness/apiserver.ts";
import { freePorts } from "../../runtime/test/support/ports.ts";
import { childProcesses } from "../../runtime/test/support/processes.ts";
import { TEST_SECRET, TEST_SECRET_BYTES } from "../../runtime/test/support/secret.ts";
import type { StateAnswer } from "../src/commands/df/state.ts";
import { createProcessPod } from "./process-pod.ts";
import { type Outcome, waxctl } from "./waxctl.ts";

vi.setConfig({ testTimeout: 60_000 });

const ROOT = resolve(import.meta.dirname, "../..");
const processes = childProcesses();
let cluster: TestCluster;
let apiPort: number;

const run = (...args: string[]): Promise<Outcome> => waxctl([...args, "--kubeconfig", cluster.kubeconfigPath]);

beforeAll(async () => {
  cluster = await startCluster();
  await installCrd(new Kube(cluster.kubeConfig()));
  const spec = { image: `registry.example/live@sha256:${"a".repeat(64)}`, module: "/app/flow.js" };
  await createDataflow(cluster.kubeConfig(), "default", "counts", { ...spec, stateQuery: true });
  await createDataflow(cluster.kubeConfig(), "default", "closed", spec);
  const core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  // What the controller makes: the cluster secret every pod mounts.
  await core.createNamespacedSecret({
    namespace: "default",
    body: {
      metadata: { name: "counts-cluster-secret" },
      data: { secret: TEST_SECRET_BYTES.toString("base64") },
    },
  });
  [apiPort] = (await freePorts(1)) as [number];
  await createProcessPod(cluster.kubeConfig(), { name: "counts-0", dataflow: "counts", apiPort });
}, 3_600_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

test("df state reads a key's count from a running process through the pod proxy, lists keys, and says why it cannot", async () => {
  processes.start(
    [
      "--conditions=waxflow-source",
      resolve(ROOT, "runtime/src/cli.ts"),
      "run",
      "runtime/test/fixtures/state-query-flow.ts",
      "-w",
      "2",
      "-s",
      "0.2",
      "-r",
      processes.tempDir("waxflow-df-state-"),
      "--recovery-init",
      "--state-query",
    ],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        WAXFLOW_API_PORT: String(apiPort),
        WAXFLOW_QUIET: "true",
        WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        SQ_KEYS: "30",
        SQ_TIMES: "5",
      },
      stdio: "ignore",
    },
  );
  const answer = await waitFor(
    "df state to answer the count of k7",
    async () => {
      const outcome = await run("df", "state", "counts", "count", "k7", "--committed", "--json");
      const parsed = JSON.parse(outcome.stdout) as StateAnswer;
      return "value" in parsed && parsed.value === 5 && parsed;
    },
    30_000,
  );
  expect(answer).toMatchObject({ step: "state_query.count.stateful_batch", consistency: "committed", key: "k7" });

  const live = await run("df", "state", "counts", "count.stateful_batch", "k12");
  expect(live.error).toBeUndefined();
  expect(live.stdout).toBe("5\n");
  const odd = await run("df", "state", "counts", "remember", "map");
  expect(odd.stdout).toBe('{\n  "a": 1\n}\n');

  const page = await run("df", "state", "counts", "count", "--prefix", "k2", "--limit", "5");
  expect(page.stdout).toBe(["k2", "k20", "k21", "k22", "k23", '(more: --after "k23")', ""].join("\n"));
  const rest = JSON.parse(
    (await run("df", "state", "counts", "count", "--prefix", "k2", "--after", "k23", "--json")).stdout,
  );
  expect(rest).toMatchObject({ keys: ["k24", "k25", "k26", "k27", "k28", "k29"], next: null });

  // The process's own one line, with the pod that said it.
  const missing = await run("df", "state", "counts", "count", "nobody");
  expect(missing.error?.oclif?.exit).toBe(1);
  expect(missing.stderr).toBe(
    'error: pod counts-0: key "nobody" has no state in step "state_query.count.stateful_batch"\n',
  );
  const unknown = await run("df", "state", "counts", "nope", "k1");
  expect(unknown.stderr).toMatch(
    /^error: pod counts-0: dataflow "state_query" has no stateful step "nope"; its stateful/,
  );
  const closed = await run("df", "state", "closed", "count", "k1");
  expect(closed.stderr).toBe(
    "error: dataflow closed does not answer state queries: set spec.stateQuery: true (waxctl df deploy --state-query), which restarts its processes\n",
  );
});

test("a user who may proxy to pods but not read the cluster Secret cannot query", async () => {
  const kc = cluster.kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace: "default", body: { metadata: { name: "viewer" } } });
  await rbac.createNamespacedRole({
    namespace: "default",
    body: {
      metadata: { name: "viewer" },
      rules: [
        { apiGroups: ["waxflow.io"], resources: ["dataflows"], verbs: ["get", "list"] },
        { apiGroups: [""], resources: ["pods", "pods/proxy"], verbs: ["get", "list"] },
      ],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: "default",
    body: {
      metadata: { name: "viewer" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "viewer" },
      subjects: [{ kind: "ServiceAccount", name: "viewer", namespace: "default" }],
    },
  });
  const token = await core.createNamespacedServiceAccountToken({
    namespace: "default",
    name: "viewer",
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const kubeconfig = join(cluster.dir, "viewer.kubeconfig");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server: cluster.server, "insecure-skip-tls-verify": true } }],
      users: [{ name: "viewer", user: { token: token.status?.token } }],
      contexts: [{ name: "test", context: { cluster: "test", user: "viewer", namespace: "default" } }],
      "current-context": "test",
    }),
  );
  const denied = await waxctl(["df", "state", "counts", "count", "k1", "--kubeconfig", kubeconfig]);
  expect(denied.error?.oclif?.exit).toBe(1);
  expect(denied.stderr).toMatch(
    /^error: reading Secret counts-cluster-secret in namespace default: .*forbidden.*; ask the cluster's admin for access/,
  );
});
