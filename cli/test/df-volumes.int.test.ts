// `df logs`, `df delete`, `df scale` and the deploy's notice about kept volumes against a
// real kube-apiserver. No controller and no kubelet run: pods and volume claims are made
// through the API and never start, so what is tested here is a pod with no log yet and
// the volumes' fate; reading the lines of running pods is tested in the e2e suite.
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { Kube } from "../../controller/src/kube/client.ts";
import { installCrd } from "../../controller/src/kube/crd.ts";
import { createDataflow, startCluster, type TestCluster } from "../../controller/test/harness/apiserver.ts";
import { type Outcome, waxctl } from "./waxctl.ts";

vi.setConfig({ testTimeout: 60_000 });

const wordcount = join(import.meta.dirname, "..", "..", "examples", "wordcount.ts");
const IMAGE = `registry.example/wordcount@sha256:${"c".repeat(64)}`;
const SPEC = { image: IMAGE, module: "/app/wordcount.js", processes: 2 };
let cluster: TestCluster;
let core: CoreV1Api;

beforeAll(async () => {
  cluster = await startCluster();
  core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  await installCrd(new Kube(cluster.kubeConfig()));
}, 3_600_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

const run = (...args: string[]): Promise<Outcome> => waxctl([...args, "--kubeconfig", cluster.kubeconfigPath]);
const labels = (name: string) => ({ "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": name });

async function pods(name: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: { name: `${name}-${i}`, labels: labels(name) },
        spec: { containers: [{ name: "waxflow", image: IMAGE }] },
      },
    });
  }
}

async function claims(name: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await core.createNamespacedPersistentVolumeClaim({
      namespace: "default",
      body: {
        metadata: { name: `recovery-${name}-${i}`, labels: labels(name) },
        spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
      },
    });
  }
}

/** Claims of the dataflow that are not being deleted. */
async function liveClaims(name: string): Promise<string[]> {
  const list = await core.listNamespacedPersistentVolumeClaim({
    namespace: "default",
    labelSelector: `waxflow.io/dataflow=${name}`,
  });
  return list.items.filter((c) => c.metadata?.deletionTimestamp === undefined).map((c) => c.metadata?.name ?? "");
}

describe("df logs", () => {
  beforeAll(async () => {
    await createDataflow(cluster.kubeConfig(), "default", "quiet", SPEC);
    await pods("quiet", 2);
  });

  test("--tail: a pod with no log yet is named, with its state, and the command succeeds", async () => {
    const outcome = await run("df", "logs", "quiet", "--tail", "5");
    expect(outcome.error, outcome.stderr).toBeUndefined();
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toBe("pod quiet-0: no log lines yet (Pending)\npod quiet-1: no log lines yet (Pending)\n");
  });

  test("-f waits for pods to start and ends when the dataflow is deleted", async () => {
    const following = run("df", "logs", "quiet", "-f");
    await new Promise((r) => setTimeout(r, 1000));
    await run("df", "delete", "quiet", "--yes");
    const outcome = await following;
    expect(outcome.error).toBeUndefined();
    expect(outcome.stderr).toBe(
      "pod quiet-0: no log lines yet (Pending)\npod quiet-1: no log lines yet (Pending)\n" +
        "dataflow quiet in namespace default was deleted; no more logs to follow\n",
    );
  });
});

describe("recovery volumes", () => {
  beforeAll(async () => {
    await createDataflow(cluster.kubeConfig(), "default", "kept", { ...SPEC, recovery: { enabled: true } });
    await claims("kept", 2);
  });

  test("delete tells that the volumes are kept and how to drop them; --purge drops them after the Dataflow is gone", async () => {
    const dry = await run("df", "delete", "kept");
    expect(dry.stdout).toContain(
      "and keep its recovery volumes (spec.recovery.retention.whenDeleted is Retain):\n" +
        "  persistentvolumeclaim/recovery-kept-0\n  persistentvolumeclaim/recovery-kept-1\n" +
        "nothing was deleted; add --yes to delete (and --purge to drop the volumes)\n",
    );
    const gone = await run("df", "delete", "kept", "--yes", "--wait");
    expect(gone.error).toBeUndefined();
    expect(gone.stdout).toBe(
      "dataflow kept in namespace default deleted; its 2 recovery volumes are kept, so a new deploy named kept " +
        "resumes from them; `waxctl df delete kept -n default --purge --yes` deletes them\n",
    );
    expect(await liveClaims("kept")).toEqual(["recovery-kept-0", "recovery-kept-1"]);

    const again = await run("df", "delete", "kept");
    expect(again.stderr).toBe(
      "error: dataflow kept not found in namespace default, but its 2 recovery volume(s) are kept; " +
        "`waxctl df delete kept -n default --purge --yes` deletes them\n",
    );
    expect(again.error?.oclif?.exit).toBe(1);
  });

  test("a deploy under the name of a deleted dataflow says it resumes from the volumes that one kept", async () => {
    const deploy = await run("df", "deploy", wordcount, "-N", "kept", "--image", IMAGE, "--recovery", "--no-wait");
    expect(deploy.error).toBeUndefined();
    expect(deploy.stdout).toMatch(
      /^✓ recovery volumes: resuming from the 2 kept by an earlier dataflow kept \(persistentvolumeclaim\/recovery-kept-0, persistentvolumeclaim\/recovery-kept-1\); `waxctl df delete kept -n default --purge --yes` first to start from nothing/m,
    );
  });

  test("scale notes that file output stays on each pod unless the pods share a volume", async () => {
    const scaled = await run("df", "scale", "kept", "-p", "3");
    expect(scaled.error).toBeUndefined();
    expect(scaled.stdout).toBe(
      "dataflow kept in namespace default scaled to 3 process(es); every process is replaced together\n",
    );
    expect(scaled.stderr).toMatch(
      /^note: FileSink and DirSink files stay on the pod that wrote them, and these pods mount no shared volume: .* file output across a rescale needs a shared volume .*`waxctl df scale kept -n default -p 1` goes back\./,
    );
  });

  test("delete --purge deletes the Dataflow and its volumes", async () => {
    const dry = await run("df", "delete", "kept", "--purge");
    expect(dry.stdout).toContain("and delete its recovery volumes (--purge):\n");
    const purged = await run("df", "delete", "kept", "--purge", "--yes");
    expect(purged.error).toBeUndefined();
    expect(purged.stdout).toBe(
      "dataflow kept in namespace default is being deleted; its 2 recovery volumes are deleted too\n",
    );
    expect(await liveClaims("kept")).toEqual([]);
    // Without a controller manager their protection finalizer stays: they are deleted, not gone.
    const again = await run("df", "delete", "kept", "--purge", "--yes");
    expect(again.stdout).toBe("the 2 recovery volume(s) of dataflow kept in namespace default are being deleted\n");
  });
});
