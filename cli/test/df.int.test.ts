// The df topic against a real kube-apiserver (no controller runs, so no pods ever appear):
// what each command writes, what it refuses, and the one-line errors it gives.

import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { type Dataflow, GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { RegistryClient } from "@waxflow/oci";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { Kube } from "../../controller/src/kube/client.ts";
import { installCrd } from "../../controller/src/kube/crd.ts";
import { startCluster, type TestCluster, waitFor } from "../../controller/test/harness/apiserver.ts";
import { standInBase } from "./base-image.ts";
import { startRegistry } from "./registry-server.ts";
import { registryBinary } from "./tools.ts";
import { type Outcome, waxctl } from "./waxctl.ts";

vi.setConfig({ testTimeout: 60_000 });

const wordcount = join(import.meta.dirname, "..", "..", "examples", "wordcount.ts");
const image = (c: string) => `registry.example/wordcount@sha256:${c.repeat(64)}`;
let cluster: TestCluster;
let custom: CustomObjectsApi;

beforeAll(async () => {
  cluster = await startCluster();
  custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
}, 3_600_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

const run = (...args: string[]): Promise<Outcome> => waxctl([...args, "--kubeconfig", cluster.kubeconfigPath]);

async function read(name: string, namespace = "default"): Promise<Dataflow> {
  return (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace,
    name,
  })) as Dataflow;
}

/** The error line, checked to be the only line on stderr. */
function oneLine(outcome: Outcome): string {
  const lines = outcome.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

describe("without the CRD", () => {
  test.each([
    ["df", "deploy", wordcount, "-N", "wc", "--image", image("a"), "--no-wait"],
    ["df", "list"],
    ["df", "suspend", "wc"],
  ])("%s %s says to run waxctl install, exit 1", async (...args) => {
    const outcome = await run(...args);
    expect(oneLine(outcome)).toBe(
      "error: the Dataflow CRD is not installed in this cluster (context test); run `waxctl install`",
    );
    expect(outcome.error?.oclif?.exit).toBe(1);
  });
});

/** `wc`: 2 processes of 3 workers, with this image. */
const wcFlags = (ref: string) => ["-N", "wc", "-p", "2", "-w", "3", "--image", ref] as const;
/** The same deploy of wordcount as `wc`, with this image. */
const deployWc = (ref: string) => ["df", "deploy", wordcount, ...wcFlags(ref), "-e", "LOG_LEVEL=debug"] as const;

describe("with the CRD", () => {
  beforeAll(async () => {
    await installCrd(new Kube(cluster.kubeConfig()));
  }, 60_000);

  test("deploy --image --no-wait applies the Dataflow as field manager waxctl", async () => {
    const { stdout, error } = await run(...deployWc(image("a")), "--no-wait");
    expect(error).toBeUndefined();
    expect(stdout).toMatch(/^✓ bundle: wordcount\.js/m);
    expect(stdout).toMatch(/^✓ apply: created/m);
    expect(stdout).toContain("dataflow wc created in namespace default");
    const df = await read("wc");
    expect(df.spec).toMatchObject({
      image: image("a"),
      module: "/app/wordcount.js",
      processes: 2,
      workersPerProcess: 3,
      state: "running",
      env: [{ name: "LOG_LEVEL", value: "debug" }],
    });
    expect(df.metadata?.labels).toEqual({
      "app.kubernetes.io/name": "waxflow",
      "app.kubernetes.io/instance": "wc",
      "app.kubernetes.io/managed-by": "waxctl",
      "waxflow.io/dataflow": "wc",
    });
    expect(df.metadata?.managedFields).toEqual([expect.objectContaining({ manager: "waxctl", operation: "Apply" })]);
  });

  test("deploying the same image and flags again is a no-op", async () => {
    const before = await read("wc");
    const { stdout, error } = await run(...deployWc(image("a")), "--no-wait");
    expect(error).toBeUndefined();
    expect(stdout).toMatch(/^✓ apply: unchanged/m);
    expect(stdout).toContain("dataflow wc in namespace default is unchanged");
    expect((await read("wc")).metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  });

  test("changing a running dataflow's image is refused without --yes, with the next step", async () => {
    const outcome = await run(...deployWc(image("b")), "--no-wait");
    expect(oneLine(outcome)).toBe(
      "error: dataflow wc in namespace default is running and this deploy changes spec.image, which replaces every process (their state is lost: the dataflow has no --recovery); add --yes to replace it",
    );
    expect(outcome.error?.oclif?.exit).toBe(1);
    expect((await read("wc")).spec.image).toBe(image("a"));
  });

  test("--yes replaces it; leaving out -e drops the variable", async () => {
    const { stdout, error } = await run("df", "deploy", wordcount, ...wcFlags(image("b")), "--no-wait", "--yes");
    expect(error).toBeUndefined();
    expect(stdout).toMatch(/^✓ apply: updated spec\.env, spec\.image/m);
    const df = await read("wc");
    expect(df.spec.image).toBe(image("b"));
    expect(df.spec.env).toBeUndefined();
  });

  test("--image without PATH keeps the deployed entry; --json prints one result", async () => {
    const { stdout, error } = await run("df", "deploy", ...wcFlags(image("c")), "--yes", "--no-wait", "--json");
    expect(error).toBeUndefined();
    const result = JSON.parse(stdout) as { action: string; dataflow: Dataflow; ready: boolean };
    expect(result.action).toBe("updated");
    expect(result.ready).toBe(false);
    expect(result.dataflow.spec).toMatchObject({ image: image("c"), module: "/app/wordcount.js" });
  });

  test("-o json prints the Dataflow as applied, instead of progress", async () => {
    const { stdout, error } = await run("df", "deploy", ...wcFlags(image("c")), "--no-wait", "-o", "json");
    expect(error).toBeUndefined();
    const df = JSON.parse(stdout) as Dataflow;
    expect(df.metadata?.uid).toBeDefined();
    expect(df.spec.recovery).toMatchObject({ enabled: false, snapshotInterval: "10s" });
  });

  test("deploy --registry pushes the image to a real registry and deploys it by digest", async () => {
    const served = await startRegistry(registryBinary());
    const work = mkdtempSync(join(tmpdir(), "waxctl-df-push-"));
    try {
      await standInBase(join(work, "base"));
      const flags = ["-N", "pushed", "-n", "pushing", "--create-namespace", "--no-wait", "--base", join(work, "base")];
      const outcome = await run("df", "deploy", wordcount, ...flags, "--registry", `${served.host}/team`);
      expect(outcome.error).toBeUndefined();
      const df = await read("pushed", "pushing");
      expect(df.spec.image).toMatch(new RegExp(`^${served.host}/team/pushed@sha256:[0-9a-f]{64}$`));
      expect(df.spec.module).toBe("/app/wordcount.js");
      // The registry serves what the Dataflow names.
      const [repository, digest] = (df.spec.image as string).slice(served.host.length + 1).split("@");
      const pulled = await new RegistryClient(served.host).pull({
        host: served.host,
        repository: repository as string,
        digest,
      });
      expect(pulled.digest).toBe(digest);
    } finally {
      await run("df", "delete", "pushed", "-n", "pushing", "--yes");
      await served.stop();
    }
  });

  test.each([
    [
      ["--registry", "127.0.0.1:5000/team", "--kind", "k"],
      "--kind and --registry are two places for the image; pass one",
    ],
    [
      ["--registry", "ghcr.io/acme/orders:v1"],
      "--registry ghcr.io/acme/orders:v1 names an image; pass HOST or HOST/PREFIX, and the image goes to HOST/PREFIX/NAME",
    ],
    [
      ["--registry", "ghcr.io/acme", "--image", image("a")],
      "--registry only applies when deploy builds the image; leave out --image",
    ],
    [
      ["--registry", "acme/team"],
      '--registry acme/team is not a registry: "acme" is not a registry host (a host has a dot or a port, or is localhost) (e.g. ghcr.io/acme)',
    ],
  ])("deploy %j is refused before anything is applied", async (flags, message) => {
    const outcome = await run("df", "deploy", wordcount, "-N", "bad", "--no-wait", ...flags);
    expect(oneLine(outcome)).toBe(`error: ${message}`);
    await expect(read("bad")).rejects.toThrow();
  });

  test("without --image outside kind, deploy says what it needs before doing anything", async () => {
    const outcome = await run("df", "deploy", wordcount, "-N", "unbuilt", "--no-wait");
    expect(oneLine(outcome)).toMatch(
      /^error: this cluster is not a kind cluster, so the image must go through a registry: pass --registry HOST\/PREFIX/,
    );
    expect(outcome.error?.oclif?.exit).toBe(2);
    await expect(read("unbuilt")).rejects.toThrow();
  });

  test("list shows the columns; -A and --json", async () => {
    await run(
      "df",
      "deploy",
      wordcount,
      "-N",
      "other",
      "-n",
      "team-b",
      "--create-namespace",
      "--image",
      image("d"),
      "--no-wait",
    );
    const here = await run("df", "list");
    const [head, ...rows] = here.stdout.trimEnd().split("\n");
    expect(head?.split(/\s+/)).toEqual(["NAME", "NAMESPACE", "ENTRY", "IMAGE", "READY", "STATE", "AGE"]);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.split(/\s+/).slice(0, 6)).toEqual([
      "wc",
      "default",
      "/app/wordcount.js",
      "registry.example/wordcount@sha256:cccccccccccc",
      "0/2",
      "Pending",
    ]);
    const all = await run("df", "list", "-A");
    expect(
      all.stdout
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((r) => r.split(/\s+/).slice(0, 2)),
    ).toEqual([
      ["wc", "default"],
      ["other", "team-b"],
    ]);
    const json = JSON.parse((await run("df", "list", "-A", "--json")).stdout) as Dataflow[];
    expect(json.map((d) => d.metadata?.name)).toEqual(["wc", "other"]);
    expect((await run("df", "list", "-n", "empty")).stdout.trim()).toBe("no dataflows in namespace empty");
  });

  test("describe shows the spec and says when no operator reports", async () => {
    const { stdout, error } = await run("df", "describe", "wc");
    expect(error).toBeUndefined();
    expect(stdout).toMatch(/^Name: +wc$/m);
    expect(stdout).toMatch(/^Image: +registry\.example\/wordcount@sha256:c{64}$/m);
    expect(stdout).toMatch(/^Processes: +2 × 3 worker\(s\)$/m);
    expect(stdout).toContain("none reported yet: is the waxflow operator running?");
    const json = JSON.parse((await run("df", "describe", "wc", "--json")).stdout) as {
      dataflow: Dataflow;
      pods: unknown[];
      events: unknown[];
    };
    expect(json.dataflow.metadata?.name).toBe("wc");
    expect(json.pods).toEqual([]);
  });

  test("suspend and resume set spec.state, and say when there is nothing to do", async () => {
    expect((await run("df", "suspend", "wc")).stdout).toContain("dataflow wc in namespace default suspended");
    expect((await read("wc")).spec.state).toBe("suspended");
    expect((await run("df", "suspend", "wc")).stdout).toContain("is already suspended");
    expect((await run("df", "resume", "wc")).stdout).toContain("dataflow wc in namespace default resumed");
    expect((await read("wc")).spec.state).toBe("running");
  });

  test("scale sets spec.processes through the scale subresource", async () => {
    const { stdout, error } = await run("df", "scale", "wc", "--processes", "4");
    expect(error).toBeUndefined();
    expect(stdout).toContain("scaled to 4 process(es)");
    const df = await read("wc");
    expect(df.spec.processes).toBe(4);
    expect(df.metadata?.managedFields).toContainEqual(
      expect.objectContaining({ manager: "waxctl", subresource: "scale" }),
    );
  });

  test("scale --wait waits for the operator like deploy, and says when none acts", async () => {
    const outcome = await run("df", "scale", "wc", "--processes", "3", "--wait");
    expect(outcome.stdout).toContain("scaled to 3 process(es)");
    expect(outcome.stdout).toMatch(/^✗ pods ready: no operator acts on it/m);
    expect(oneLine(outcome)).toMatch(/^error: dataflow wc: nothing has acted on it for \d+\.\ds: no waxflow operator/);
    expect((await read("wc")).spec.processes).toBe(3);
    await run("df", "scale", "wc", "--processes", "4");
  });

  test("restart bumps spec.restartNonce each time", async () => {
    await run("df", "restart", "wc");
    expect((await read("wc")).spec.restartNonce).toBe(1);
    expect((await run("df", "restart", "wc")).stdout).toContain("restarting (restartNonce 2)");
    expect((await read("wc")).spec.restartNonce).toBe(2);
  });

  test("a deploy keeps what suspend and restart set: suspended stays suspended, the nonce stays", async () => {
    await run("df", "suspend", "wc");
    const { stdout, error } = await run(
      "df",
      "deploy",
      wordcount,
      "-N",
      "wc",
      "-p",
      "4",
      "-w",
      "3",
      "--image",
      image("c"),
    );
    expect(error).toBeUndefined();
    expect(stdout).toMatch(/^✓ apply: unchanged/m);
    expect(stdout).toMatch(/^- pods ready: the dataflow is suspended/m);
    const df = await read("wc");
    expect(df.spec.state).toBe("suspended");
    expect(df.spec.restartNonce).toBe(2);
    await run("df", "resume", "wc");
  });

  test("scale to the spec's own count restarts the processes when the pods do not match it", async () => {
    const core = cluster.kubeConfig().makeApiClient(CoreV1Api);
    const processes = (await read("wc")).spec.processes ?? 1;
    expect((await run("df", "scale", "wc", "-p", String(processes))).stdout).toContain(
      `dataflow wc in namespace default already runs ${processes} process(es)`,
    );
    // One pod more than the spec asks for, as a StatefulSet scaled by hand leaves them.
    const pods = Array.from({ length: processes + 1 }, (_, i) => `wc-${i}`);
    for (const pod of pods) {
      await core.createNamespacedPod({
        namespace: "default",
        body: {
          metadata: { name: pod, labels: { "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": "wc" } },
          spec: { containers: [{ name: "waxflow", image: image("a") }] },
        },
      });
    }
    const nonce = (await read("wc")).spec.restartNonce ?? 0;
    const { stdout, error } = await run("df", "scale", "wc", "-p", String(processes));
    expect(error).toBeUndefined();
    expect(stdout).toContain(
      `dataflow wc in namespace default asks for ${processes} process(es) but ${processes + 1} pod(s) run: restarting every process together as ${processes}`,
    );
    const df = await read("wc");
    expect(df.spec).toMatchObject({ processes, restartNonce: nonce + 1 });
    for (const pod of pods) await core.deleteNamespacedPod({ namespace: "default", name: pod, gracePeriodSeconds: 0 });
  });

  test("--wait with no operator fails after --timeout, saying no pods appeared, exit 1", async () => {
    const started = Date.now();
    const outcome = await run("df", "deploy", wordcount, "-N", "waiting", "--image", image("a"), "--timeout", "2s");
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(outcome.stdout).toMatch(/^✓ apply: created/m);
    expect(outcome.stdout).toMatch(/^✗ pods ready: timed out after 2\.0s/m);
    expect(oneLine(outcome)).toBe(
      "error: dataflow waiting: no pods after 2.0s; is the waxflow operator running? `waxctl install` installs it, `waxctl df describe waiting -n default` shows more",
    );
    expect(outcome.error?.oclif?.exit).toBe(1);
  });

  test("--wait with no operator installed says so within seconds, exit 1", async () => {
    const started = Date.now();
    const outcome = await run("df", "deploy", wordcount, "-N", "orphan", "--image", image("a"));
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(outcome.stdout).toMatch(/^✗ pods ready: no operator acts on it/m);
    expect(oneLine(outcome)).toMatch(
      /^error: dataflow orphan: nothing has acted on it for \d+\.\ds: no waxflow operator is installed \(no Deployment labelled app\.kubernetes\.io\/name=waxflow-operator\); `waxctl install` installs it$/,
    );
    expect(outcome.error?.oclif?.exit).toBe(1);
  });

  test("--wait with the operator's Deployment not ready names it within seconds", async () => {
    // No controller-manager runs here: the Deployment never gets a ready replica, as when its image cannot be pulled.
    const apps = cluster.kubeConfig().makeApiClient(AppsV1Api);
    const labels = { "app.kubernetes.io/name": "waxflow-operator", "app.kubernetes.io/component": "controller" };
    await cluster
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespace({ body: { metadata: { name: "waxflow-system" } } });
    await apps.createNamespacedDeployment({
      namespace: "waxflow-system",
      body: {
        metadata: { name: "waxflow-controller", labels },
        spec: {
          selector: { matchLabels: labels },
          template: { metadata: { labels }, spec: { containers: [{ name: "controller", image: "x" }] } },
        },
      },
    });
    try {
      const outcome = await run("df", "deploy", wordcount, "-N", "unattended", "--image", image("a"));
      expect(oneLine(outcome)).toMatch(
        /^error: dataflow unattended: nothing has acted on it for \d+\.\ds: the waxflow operator \(deployment waxflow-system\/waxflow-controller\) has no ready replica; `kubectl -n waxflow-system describe deployment waxflow-controller` shows why$/,
      );
    } finally {
      await apps.deleteNamespacedDeployment({ namespace: "waxflow-system", name: "waxflow-controller" });
    }
  });

  test("--wait stops at the operator's Failed with the crash loop's error line, exit 1", async () => {
    const line = "error: step running-count: EROFS: read-only file system, mkdir 'out/running-count'";
    const deploying = run("df", "deploy", wordcount, "-N", "looping", "--image", image("a"));
    // The operator's part: it saw a process fail twice the same way.
    const df = await waitFor("the Dataflow", async () => read("looping").catch(() => undefined));
    await custom.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: "default",
        name: "looping",
        body: {
          status: {
            observedGeneration: df.metadata?.generation,
            phase: "Failed",
            conditions: [
              { type: "Ready", status: "False", reason: "CrashLoop", message: "0/1 processes ready" },
              {
                type: "Degraded",
                status: "True",
                reason: "CrashLoop",
                message: `process looping-0 failed 2 times in a row with exit code 1: ${line}`,
              },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const outcome = await deploying;
    expect(outcome.stdout).toMatch(/^✗ pods ready: the operator marked the dataflow Failed/m);
    expect(oneLine(outcome)).toBe(
      `error: dataflow looping failed: process looping-0 failed 2 times in a row with exit code 1: ${line}; fix the cause and deploy again; \`waxctl df logs looping -n default\` shows the processes' output`,
    );
    expect(outcome.error?.oclif?.exit).toBe(1);
  });

  test("logs of a dataflow without pods says why", async () => {
    const outcome = await run("df", "logs", "waiting");
    expect(oneLine(outcome)).toBe(
      "error: dataflow waiting in namespace default has no pods: none has been created yet; `waxctl df describe waiting -n default` shows why",
    );
  });

  test("delete without --yes lists what would go and deletes nothing; --yes deletes", async () => {
    const dry = await run("df", "delete", "waiting");
    expect(dry.error).toBeUndefined();
    expect(dry.stdout).toContain(
      "dry run: deleting dataflow waiting in namespace default would delete:\n  dataflow/waiting\n",
    );
    expect(dry.stdout).toContain("nothing was deleted; add --yes to delete");
    expect((await read("waiting")).metadata?.name).toBe("waiting");
    const gone = await run("df", "delete", "waiting", "--yes", "--wait");
    expect(gone.stdout).toContain("dataflow waiting in namespace default deleted");
    await expect(read("waiting")).rejects.toThrow();
  });

  test.each([
    [["describe", "nope"]],
    [["delete", "nope", "--yes"]],
    [["suspend", "nope"]],
    [["scale", "nope", "-p", "2"]],
    [["restart", "nope"]],
    [["logs", "nope"]],
  ])("df %j of a missing dataflow points at df list -A", async (args) => {
    const outcome = await run("df", ...args);
    expect(oneLine(outcome)).toBe("error: dataflow nope not found in namespace default; see `waxctl df list -A`");
    expect(outcome.error?.oclif?.exit).toBe(1);
  });

  test.each([
    [["scale", "Bad_Name", "-p", "2"], 'error: NAME "Bad_Name" is not a DNS-1123 label'],
    [["scale", "wc", "-p", "-1"], 'error: --processes must be a whole number from 1 to 1000, got "-1"'],
    [["scale", "wc", "-p", "0"], 'error: --processes must be a whole number from 1 to 1000, got "0"'],
    [["logs", "wc", "--tail", "-5"], 'error: --tail must be a whole number from 0 to 1000000, got "-5"'],
    [
      ["deploy", wordcount, "-N", "wc", "--image", image("a"), "--timeout", "soon"],
      "error: --timeout must be a duration",
    ],
    [["describe", "-n", "Bad_NS", "wc"], 'error: -n/--namespace "Bad_NS" is not a namespace name'],
  ])("df %j is a usage error naming what was wrong, exit 2", async (args, message) => {
    const outcome = await run("df", ...args);
    expect(oneLine(outcome).startsWith(message)).toBe(true);
    expect(outcome.error?.oclif?.exit).toBe(2);
  });

  test("a missing namespace is named, and nothing is created there", async () => {
    const outcome = await run(
      "df",
      "deploy",
      wordcount,
      "-N",
      "wc",
      "-n",
      "absent",
      "--image",
      image("a"),
      "--no-wait",
    );
    expect(oneLine(outcome)).toBe(
      "error: namespace absent does not exist; add --create-namespace, or choose another with -n/--namespace",
    );
  });

  test("--env-from-secret and --secret-file: a missing Secret or key is named before anything is applied", async () => {
    const core = cluster.kubeConfig().makeApiClient(CoreV1Api);
    const flags = ["df", "deploy", wordcount, "-N", "kafkaauth", "--image", image("e"), "--no-wait"] as const;
    const missing = await run(
      ...flags,
      "--env-from-secret",
      "kafka-env",
      "--secret-file",
      "kafka-creds:password=/etc/kafka/password",
    );
    expect(oneLine(missing)).toBe(
      "error: Secret kafka-env does not exist in namespace default (--env-from-secret kafka-env); create it first, e.g. kubectl create secret generic kafka-env -n default --from-file=...",
    );
    expect(missing.error?.oclif?.exit).toBe(1);
    await core.createNamespacedSecret({
      namespace: "default",
      body: { metadata: { name: "kafka-env" }, stringData: { KAFKA_SASL_USERNAME: "dataflow" } },
    });
    await core.createNamespacedSecret({
      namespace: "default",
      body: { metadata: { name: "kafka-creds" }, stringData: { password: "s3cret-Kafka" } },
    });
    const noKey = await run(...flags, "--secret-file", "kafka-creds:passwd=/etc/kafka/password");
    expect(oneLine(noKey)).toBe(
      "error: Secret kafka-creds in namespace default has no key passwd (--secret-file kafka-creds:passwd=...); it has password",
    );
    await expect(read("kafkaauth")).rejects.toThrow();

    const ok = await run(
      ...flags,
      "--env-from-secret",
      "kafka-env",
      "--secret-file",
      "kafka-creds:password=/etc/kafka/password",
      "-e",
      "KAFKA_SASL_PASSWORD_FILE=/etc/kafka/password",
    );
    expect(ok.error).toBeUndefined();
    expect(ok.stdout).not.toContain("s3cret-Kafka");
    const df = await read("kafkaauth");
    expect(df.spec.env).toEqual([{ name: "KAFKA_SASL_PASSWORD_FILE", value: "/etc/kafka/password" }]);
    expect(df.spec.envFrom).toEqual([{ secretRef: { name: "kafka-env" } }]);
    expect(df.spec.podTemplate?.spec?.volumes).toEqual([
      {
        name: "waxctl-secret-file-0",
        secret: { secretName: "kafka-creds", items: [{ key: "password", path: "password" }] },
      },
    ]);
    expect(df.spec.podTemplate?.spec?.containers).toEqual([
      {
        name: "waxflow",
        volumeMounts: [
          { name: "waxctl-secret-file-0", mountPath: "/etc/kafka/password", subPath: "password", readOnly: true },
        ],
      },
    ]);
    const dry = await run(
      ...flags,
      "--secret-file",
      "kafka-creds:password=/etc/kafka/password",
      "--dry-run",
      "-o",
      "yaml",
    );
    expect(dry.stdout).toContain("secretName: kafka-creds");
    expect(dry.stdout).not.toContain("s3cret-Kafka");
    expect((await run("df", "delete", "kafkaauth", "--yes")).error).toBeUndefined();
  });
});

describe("without a reachable cluster", () => {
  test("an unreachable server is one line naming it, with the next step", async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), "waxctl-kc-"));
    const kubeconfig = join(dir, "config");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: `https://127.0.0.1:${port}`, "insecure-skip-tls-verify": true } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "gone", context: { cluster: "c", user: "u" } }],
        "current-context": "gone",
      }),
    );
    const outcome = await waxctl(["df", "list", "--kubeconfig", kubeconfig]);
    expect(oneLine(outcome)).toBe(
      `error: cannot reach the cluster at https://127.0.0.1:${port} (context gone): connection refused (ECONNREFUSED); check that it is running, or choose another with --context or --kubeconfig`,
    );
    expect(outcome.error?.oclif?.exit).toBe(1);
  });

  test("no kubeconfig at all is one line with the next step", async () => {
    const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
    process.env.HOME = mkdtempSync(join(tmpdir(), "waxctl-home-"));
    delete process.env.KUBECONFIG;
    try {
      const outcome = await waxctl(["df", "list"]);
      expect(oneLine(outcome)).toMatch(/^error: no kubeconfig found .*; point --kubeconfig at your cluster's/);
      expect(outcome.error?.oclif?.exit).toBe(1);
    } finally {
      Object.assign(process.env, saved);
      if (saved.KUBECONFIG === undefined) delete process.env.KUBECONFIG;
    }
  });
});
