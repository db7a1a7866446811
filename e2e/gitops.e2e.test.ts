// The paths without waxctl deploy: the operator installed, upgraded and uninstalled with
// the Helm chart, and Dataflows applied with kubectl from examples/k8s and from
// `waxctl df render`. Each step runs a shell block of README.md verbatim, so the README
// cannot drift from what works; the assertions check what the block should have done.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  CLUSTER,
  eventually,
  isReady,
  KUBECONFIG,
  kubectl,
  kubectlJson,
  pods,
  ROOT,
  tryKubectl,
  waxctl,
} from "./lib/cluster.ts";

const run = promisify(execFile);
const OPERATOR_NS = "waxflow-system";
const NS = "waxflow-examples";

/** The ```sh blocks under a README heading, in order. */
function readmeBlocks(heading: string): string[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no section "${heading}"`);
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
}

const helmSection = readmeBlocks("Install the operator with Helm");
const kubectlSection = readmeBlocks("Deploy with kubectl or GitOps");

let path = process.env.PATH ?? "";

/** Runs a README block as a user's shell would, on this suite's cluster; fails with its output. */
async function shell(block: string, timeoutMs = 600_000): Promise<string> {
  try {
    const { stdout, stderr } = await run("bash", ["-euo", "pipefail", "-c", block], {
      cwd: ROOT,
      env: { ...process.env, PATH: path, KUBECONFIG, CI: "true" },
      timeout: timeoutMs,
      maxBuffer: 64 << 20,
    });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`README block failed:\n${block}\n${e.stdout ?? ""}${e.stderr ?? e.message}`);
  }
}

interface Df {
  metadata: { name: string };
  spec: { processes: number; image: string };
  status?: {
    phase?: string;
    readyProcesses?: number;
    conditions?: { type: string; status: string; message?: string }[];
  };
}

beforeAll(async () => {
  const { stdout } = await run("bash", [join(ROOT, "charts", "tools.sh")], { cwd: ROOT });
  const helm = /^helm=(.+)$/m.exec(stdout)?.[1];
  if (helm === undefined) throw new Error(`bash charts/tools.sh printed no helm path: ${stdout}`);
  path = [dirname(helm), path].join(delimiter);
  // kubectl on this machine reads the suite's cluster, as the README assumes the user's does.
  expect((await kubectl("config", "current-context")).trim()).toBe(`kind-${CLUSTER}`);
  // The other suites install the operator with waxctl; Helm refuses to adopt those objects.
  // The CRD and Dataflows stay, as they would for a user moving from waxctl to Helm.
  const uninstall = await waxctl(["uninstall", "--yes"]);
  expect(uninstall.code, uninstall.stderr).toBe(0);
}, 600_000);

afterAll(async () => {
  if (process.env.E2E_KEEP === "true") return;
  // A failed run must not leave the chart or its CRD for the next suite.
  await tryKubectl("delete", "namespace", NS, "--wait=false");
  await run("bash", ["-c", `helm uninstall waxflow -n ${OPERATOR_NS} --no-hooks --wait || true`], {
    env: { ...process.env, PATH: path, KUBECONFIG },
  });
});

describe("kubectl, Helm and GitOps", () => {
  test("helm install (README): the chart's controller runs the images npm run images built, pinned by digest", async () => {
    const out = await shell(helmSection[0] as string);
    expect(out).toContain(`The waxflow operator runs in ${OPERATOR_NS}`);
    const deployment = await kubectlJson<{
      spec: { template: { spec: { containers: { image: string }[] } } };
      status: { availableReplicas?: number };
    }>("get", "deployment", "-n", OPERATOR_NS, "waxflow-controller");
    expect(deployment.status.availableReplicas).toBe(1);
    expect(deployment.spec.template.spec.containers[0]?.image).toMatch(
      /^waxflow\.local\/waxflow-controller@sha256:[0-9a-f]{64}$/,
    );
    const explained = await kubectl("explain", "dataflow.spec.recovery.storage.size");
    expect(explained).toContain("Size of each process's recovery volume");
  });

  test("kubectl apply of examples/k8s (README): every Dataflow Ready; kubectl scale moves one to 3 processes", async () => {
    const out = await shell(kubectlSection[0] as string);
    expect(out).toMatch(/dataflow\.waxflow\.io\/counts-shared scaled/);
    const list = await kubectlJson<{ items: Df[] }>("get", "dataflows", "-n", NS);
    expect(list.items.map((df) => df.metadata.name).sort()).toEqual(["counts", "counts-recovery", "counts-shared"]);
    for (const df of list.items) expect(df.spec.image).toMatch(/^waxflow\.local\/running-count@sha256:(?!0{64})/);
    const scaled = list.items.find((df) => df.metadata.name === "counts-shared");
    expect(scaled?.spec.processes).toBe(3);
    expect(scaled?.status?.readyProcesses).toBe(3);
    expect((await pods(NS, "counts-shared")).filter(isReady)).toHaveLength(3);
    // The resources of examples/k8s/running-count.yaml reach the pods.
    const counts = await kubectlJson<{ spec: { containers: { name: string; resources: unknown }[] } }>(
      "get",
      "pod",
      "-n",
      NS,
      "counts-0",
    );
    expect(counts.spec.containers.find((c) => c.name === "waxflow")?.resources).toEqual({
      requests: { cpu: "50m", memory: "128Mi" },
      limits: { memory: "512Mi" },
    });
  });

  test("waxctl df render | kubectl apply (README): built, loaded and applied in one line, Ready", async () => {
    await shell(kubectlSection[1] as string);
    const df = await kubectlJson<Df>("get", "dataflow", "-n", NS, "counts-rendered");
    expect(df.spec.image).toMatch(/^waxflow\.local\/counts-rendered@sha256:[0-9a-f]{64}$/);
    expect(df.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
  });

  test("a typo in podTemplate is refused with the field's path instead of being dropped", async () => {
    const bad = {
      apiVersion: "waxflow.io/v1alpha1",
      kind: "Dataflow",
      metadata: { name: "typo", namespace: NS },
      spec: {
        image: `waxflow.local/running-count@sha256:${"1".repeat(64)}`,
        module: "/app/running-count.js",
        podTemplate: { spec: { nodeSelectr: { disk: "ssd" } } },
      },
    };
    await run("bash", ["-c", `echo '${JSON.stringify(bad)}' | kubectl apply -f -`], {
      env: { ...process.env, KUBECONFIG },
    });
    const failed = await eventually("typo Failed", async () => {
      const df = await kubectlJson<Df>("get", "dataflow", "-n", NS, "typo");
      return df.status?.phase === "Failed" ? df : undefined;
    });
    expect(failed.status?.conditions?.find((c) => c.type === "Degraded")?.message).toMatch(
      /\.spec\.template\.spec\.nodeSelectr: field not declared in schema/,
    );
    await kubectl("delete", "dataflow", "-n", NS, "typo", "--wait");
  });

  test("helm upgrade (README) to two replicas: the standby logs that it waits for the lease and who holds it", async () => {
    await shell(helmSection[1] as string);
    const holder = await eventually("the Lease", async () => {
      const lease = await kubectlJson<{ spec: { holderIdentity?: string } }>(
        "get",
        "lease",
        "-n",
        OPERATOR_NS,
        "waxflow-controller",
      );
      return lease.spec.holderIdentity;
    });
    const logs = await eventually("a standby's log line", async () => {
      const out = await kubectl("logs", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/component=controller", "--tail=-1");
      return out.includes("standing by: waiting for the lease") ? out : undefined;
    });
    const standby = logs.split("\n").find((l) => l.includes("standing by"));
    expect(JSON.parse(standby ?? "{}")).toMatchObject({ lease: `${OPERATOR_NS}/waxflow-controller` });
    expect(typeof JSON.parse(standby ?? "{}").holder).toBe("string");
    expect(holder).not.toBe("");
    // The Dataflows ran on through the upgrade.
    const list = await kubectlJson<{ items: Df[] }>("get", "dataflows", "-n", NS);
    expect(list.items.every((df) => df.status?.phase === "Running")).toBe(true);
  });

  test("helm uninstall is refused while Dataflows exist, naming them", async () => {
    const refused = await run("helm", ["uninstall", "waxflow", "-n", OPERATOR_NS, "--wait"], {
      env: { ...process.env, PATH: path, KUBECONFIG },
    }).then(
      () => undefined,
      (err: { stderr?: string }) => err.stderr ?? "",
    );
    expect(refused).toMatch(/pre-delete|waxflow-uninstall-check|BackoffLimitExceeded/);
    const log = await kubectl("logs", "-n", OPERATOR_NS, "job/waxflow-uninstall-check");
    expect(log).toMatch(/uninstall refused: 4 Dataflow\(s\) still exist \(waxflow-examples\/counts, /);
    expect((await kubectlJson<Df>("get", "deployment", "-n", OPERATOR_NS, "waxflow-controller")).metadata.name).toBe(
      "waxflow-controller",
    );
  });

  test("uninstall (README): Dataflows deleted while the controller runs, then the chart and the CRD, nothing hangs", async () => {
    const t0 = Date.now();
    await shell(helmSection[2] as string, 300_000);
    expect(Date.now() - t0).toBeLessThan(240_000);
    expect((await tryKubectl("get", "crd", "dataflows.waxflow.io")).code).not.toBe(0);
    expect((await tryKubectl("get", "deployment", "-n", OPERATOR_NS, "waxflow-controller")).code).not.toBe(0);
    // The StatefulSets and pods go by background garbage collection after their Dataflow: a
    // pod may still be in its termination grace period when the commands return.
    await eventually(
      "the Dataflows' StatefulSets and pods to be gone",
      async () =>
        (await kubectl("get", "statefulsets,pods", "-n", NS, "-o", "name")).trim() === "" ? true : undefined,
      { timeoutMs: 60_000 },
    );
    // whenDeleted: Delete took counts-shared's volumes along; Retain kept counts-recovery's.
    const claims = (await kubectl("get", "pvc", "-n", NS, "-o", "name")).trim().split("\n").sort();
    expect(claims.some((c) => c.startsWith("persistentvolumeclaim/recovery-counts-shared-"))).toBe(false);
    expect(claims.filter((c) => c.startsWith("persistentvolumeclaim/recovery-counts-recovery-"))).toHaveLength(2);
  });
});
