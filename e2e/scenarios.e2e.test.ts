// The whole chain on a real kind cluster: the operator installed by waxctl, dataflows
// built and deployed by waxctl, pods running the runtime image, recovery on the pods'
// own volumes. Scenarios run in order and share the operator; each deploys its own
// dataflow, so one failure does not hide the others' results.
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { SELECTOR as OPERATOR_SELECTOR } from "../cli/src/install/manifests.ts";
import { startRegistry } from "../cli/test/registry-server.ts";
import { registryBinary } from "../cli/test/tools.ts";
import { expectedCounts, type ReadingsSettings, settingsEnv } from "../examples/running-count.ts";
import {
  envFlags,
  eventually,
  isReady,
  killPods,
  kubectl,
  kubectlJson,
  labelSelector,
  NODE,
  nodeLineCount,
  podGet,
  podNamed,
  pods,
  replaced,
  restarts,
  restrictedNamespace,
  tryKubectl,
  volumeDir,
  volumeLines,
  waxctl,
} from "./lib/cluster.ts";
import { checkCounts, runningCountDeploy } from "./lib/counts.ts";

const NS = "waxflow-e2e";
const OPERATOR_NS = "waxflow-system";
const OUTPUT = "output";
const controllerImage = process.env.WAXFLOW_CONTROLLER_IMAGE;

/** Readings paced so a run lasts about a minute: long enough to kill, suspend or rescale mid-stream. */
function readings(perPartition: number): ReadingsSettings {
  return { partitions: 4, perPartition, batch: 5, intervalMs: 100, sensors: 12, follow: true };
}

function deployFlags(name: string, settings: ReadingsSettings, ...more: string[]): string[] {
  return [
    ...runningCountDeploy(name, NS),
    "-e",
    `OUTPUT_DIR=${SHARED_OUTPUT.has(name) ? SHARED_MOUNT : `/var/lib/waxflow/recovery/${OUTPUT}`}`,
    ...envFlags(settingsEnv(settings)),
    "--json",
    ...more,
  ];
}

// A rescaled dataflow's sink partitions move between processes, and a file cannot follow
// them from one pod's volume to another's: its output goes to one claim every pod mounts
// (ReadWriteOnce is per node, and kind has one), as a user on one node would do.
const SHARED_OUTPUT = new Set(["e2e-scale", "e2e-again", "e2e-ops"]);
const SHARED_MOUNT = "/var/lib/waxflow/output";
const sharedClaim = (name: string) => `${name}-output`;

async function sharedOutput(name: string): Promise<string[]> {
  const claim = {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: sharedClaim(name), namespace: NS },
    spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "100Mi" } } },
  };
  const overlay = {
    spec: {
      volumes: [{ name: "output", persistentVolumeClaim: { claimName: sharedClaim(name) } }],
      containers: [{ name: "waxflow", volumeMounts: [{ name: "output", mountPath: SHARED_MOUNT }] }],
    },
  };
  const file = join(tmpdir(), `waxflow-e2e-${name}-pod-template.json`);
  writeFileSync(file, JSON.stringify(overlay));
  const claimFile = join(tmpdir(), `waxflow-e2e-${name}-claim.json`);
  writeFileSync(claimFile, JSON.stringify(claim));
  await kubectl("apply", "-f", claimFile);
  return ["--pod-template", file];
}

/** Output lines of a dataflow: from its shared claim, or from every recovery volume it ever had. */
async function output(name: string): Promise<string[]> {
  if (SHARED_OUTPUT.has(name)) return volumeLines(NS, sharedClaim(name), "");
  const claims = await kubectlJson<{ items: { metadata: { name: string } }[] }>(
    "get",
    "pvc",
    "-n",
    NS,
    "-l",
    `waxflow.io/dataflow=${name}`,
  );
  const lines = await Promise.all(claims.items.map((c) => volumeLines(NS, c.metadata.name, OUTPUT)));
  return lines.flat();
}

async function counts(name: string, settings: ReadingsSettings) {
  return checkCounts(await output(name), expectedCounts(settings));
}

async function untilCounted(name: string, settings: ReadingsSettings, atLeast: number) {
  return eventually(`${name} to count ${atLeast} readings`, async () => {
    const report = await counts(name, settings);
    return report.counted >= atLeast ? report : undefined;
  });
}

async function untilComplete(name: string, settings: ReadingsSettings) {
  return eventually(
    `${name} to count every reading`,
    async () => {
      const report = await counts(name, settings);
      if (report.duplicates.length > 0 || report.malformed.length > 0) return report;
      return report.complete === settings.sensors ? report : undefined;
    },
    { timeoutMs: 300_000, everyMs: 3_000 },
  );
}

interface DataflowStatus {
  status?: {
    phase?: string;
    readyProcesses?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

async function untilRunning(name: string, processes: number) {
  return eventually(`${name} to run ${processes} ready processes`, async () => {
    const df = await kubectlJson<DataflowStatus>("get", "dataflow", "-n", NS, name);
    const ready = (await pods(NS, name)).filter(isReady);
    return df.status?.phase === "Running" && ready.length === processes ? df : undefined;
  });
}

/**
 * The pod template overlay that turns the runtime's supervisor off (`-e` refuses WAXFLOW_*
 * variables: they belong to the controller), for measuring fate-sharing for comparison.
 */
function unsupervisedTemplate(name: string): string[] {
  const overlay = { spec: { containers: [{ name: "waxflow", env: [{ name: "WAXFLOW_SUPERVISE", value: "false" }] }] } };
  const file = join(tmpdir(), `waxflow-e2e-${name}-unsupervised.json`);
  writeFileSync(file, JSON.stringify(overlay));
  return ["--pod-template", file];
}

/** A merge patch of the Dataflow's spec, as a user's `kubectl patch` would be. */
function patchSpec(name: string, spec: Record<string, unknown>): Promise<string> {
  return kubectl("patch", "dataflow", name, "-n", NS, "--type=merge", "-p", JSON.stringify({ spec }));
}

const EXACTLY_ONCE = (sensors: number) => ({ complete: sensors, duplicates: [], gaps: [], malformed: [] });

restrictedNamespace(NS);

describe("waxflow on kind", { timeout: 600_000 }, () => {
  test("1. waxctl install puts the operator in the cluster; kubectl get df shows the printer columns", async () => {
    expect(controllerImage, "run through `npm run e2e`, which builds and loads the images").toBeDefined();
    const install = await waxctl(["install", "--image", controllerImage ?? "", "--wait", "--json"]);
    expect(install.stderr).toBe("");
    expect(install.code).toBe(0);
    await eventually("the controller to be available", async () => {
      const deploys = await kubectlJson<{ items: { status?: { availableReplicas?: number } }[] }>(
        "get",
        "deployments",
        "-n",
        OPERATOR_NS,
      );
      return deploys.items.some((d) => (d.status?.availableReplicas ?? 0) > 0) ? true : undefined;
    });
    const crd = await kubectlJson<{ status?: { conditions?: { type: string; status: string }[] } }>(
      "get",
      "crd",
      "dataflows.waxflow.io",
    );
    expect(crd.status?.conditions).toContainEqual(expect.objectContaining({ type: "Established", status: "True" }));
  });

  const main = readings(3000);
  test("2. deploy -p 3 -w 2 --recovery: pods run, the cluster forms, output is produced and correct", async () => {
    const deploy = await waxctl([
      ...deployFlags("e2e", main, "-p", "3", "-w", "2", "--create-namespace"),
      "--wait",
      "--timeout",
      "5m",
    ]);
    expect(deploy.stderr).toBe("");
    expect(deploy.code).toBe(0);
    const result = JSON.parse(deploy.stdout) as { dataflow?: { spec?: { image?: string } } };
    expect(result.dataflow?.spec?.image).toMatch(/@sha256:[0-9a-f]{64}$/);

    await untilRunning("e2e", 3);
    const [header, row] = (await kubectl("get", "df", "-n", NS, "e2e")).split("\n");
    expect(header?.split(/\s+/)).toEqual(["NAME", "READY", "STATE", "PHASE", "IMAGE", "AGE", "RECONCILED", "PROBLEM"]);
    expect(row).toMatch(/^e2e\s+3\/3\s+running\s+Running\s+\S+@sha256:/);
    for (const pod of await pods(NS, "e2e")) {
      const ready = await podGet(NS, pod.metadata.name, 3030, "/readyz");
      expect(ready.code, `${pod.metadata.name} /readyz: ${ready.stderr}`).toBe(0);
    }
    // Each pod's log has the runtime's lines: the start and the cluster formed, prefixed by the pod.
    const logs = await waxctl(["df", "logs", "e2e", "-n", NS, "--tail", "100"]);
    expect(logs.code, logs.stderr).toBe(0);
    for (const i of [0, 1, 2]) {
      expect(logs.stdout).toMatch(
        new RegExp(`^\\[e2e-${i}\\] \\S+ process ${i}: waxflow \\S+ starting dataflow "running-count"`, "m"),
      );
      expect(logs.stdout).toMatch(
        new RegExp(`^\\[e2e-${i}\\] \\S+ process ${i}: cluster formed: all 3 processes`, "m"),
      );
    }
    const partial = await untilCounted("e2e", main, 600);
    expect(partial).toMatchObject({ duplicates: [], gaps: [], malformed: [] });
    expect(partial.complete).toBeLessThan(main.sensors);
  });

  test("3. a pod killed mid-stream: the others re-form the cluster in their pods, resume from the volumes, and write every count exactly once", async () => {
    const before = await counts("e2e", main);
    expect(before.complete, "the kill must land mid-stream").toBeLessThan(main.sensors);
    const kill = await killPods(NS, podNamed("e2e-1"), "--grace-period=0", "--force");
    // The surviving processes stay up: their supervisor re-forms the cluster, the kubelet restarts nothing.
    await eventually("the other processes to re-form the cluster with the new e2e-1", async () => {
      const all = await pods(NS, "e2e");
      const back = all.find((p) => p.metadata.name === "e2e-1");
      return all.length === 3 && all.every(isReady) && back !== undefined && replaced(kill, back) ? all : undefined;
    });
    const logs = await waxctl(["df", "logs", "e2e", "-n", NS, "--tail", "200"]);
    for (const i of [0, 2]) {
      expect(logs.stdout).toMatch(
        new RegExp(`^\\[e2e-${i}\\] \\S+ process ${i}: the cluster failed: .*process 1.*; re-forming it in`, "m"),
      );
    }
    expect(await untilComplete("e2e", main)).toMatchObject(EXACTLY_ONCE(main.sensors));
    // A forced delete may start the new e2e-1 before the old one let go of its volume (the
    // kubelet then restarts it); the survivors' containers never exited.
    for (const pod of await pods(NS, "e2e")) {
      if (pod.metadata.name !== "e2e-1") expect(restarts(pod), pod.metadata.name).toBe(0);
    }
    // Its output is on each pod's recovery volume: a rescale is refused before anything changes.
    const refused = await waxctl(["df", "scale", "e2e", "-n", NS, "-p", "2"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `error: dataflow e2e writes the files of step "running-count.out" to /var/lib/waxflow/recovery/${OUTPUT}, on each pod's own volume "recovery": ` +
        'file output across a rescale needs a shared volume (the README\'s "File output on Kubernetes" shows how to mount one); ' +
        "add --force to scale anyway (the rescaled processes stop at start if a partition's file is not where they run)\n",
    );
    expect(
      (await kubectlJson<{ spec: { processes: number } }>("get", "dataflow", "-n", NS, "e2e")).spec.processes,
    ).toBe(3);
  });

  const small = readings(1200);
  test("4. suspend and resume: volumes stay, state survives", async () => {
    const deploy = await waxctl([...deployFlags("e2e-suspend", small, "-p", "2", "-w", "1"), "--wait"]);
    expect(deploy.code, deploy.stderr).toBe(0);
    await untilCounted("e2e-suspend", small, 300);

    expect((await waxctl(["df", "suspend", "e2e-suspend", "-n", NS, "--json"])).code).toBe(0);
    await eventually("suspended pods to be gone", async () =>
      (await pods(NS, "e2e-suspend")).length === 0 ? true : undefined,
    );
    const df = await kubectlJson<DataflowStatus>("get", "dataflow", "-n", NS, "e2e-suspend");
    expect(df.status?.phase).toBe("Suspended");
    const claims = await kubectl("get", "pvc", "-n", NS, "-l", "waxflow.io/dataflow=e2e-suspend", "-o", "name");
    expect(claims.trim().split("\n")).toHaveLength(2);
    const whileSuspended = await counts("e2e-suspend", small);
    expect(whileSuspended.complete).toBeLessThan(small.sensors);

    expect((await waxctl(["df", "resume", "e2e-suspend", "-n", NS, "--json"])).code).toBe(0);
    await untilRunning("e2e-suspend", 2);
    // Lost state would start the counts again at 1: duplicates.
    expect(await untilComplete("e2e-suspend", small)).toMatchObject(EXACTLY_ONCE(small.sensors));
  });

  test("5. scale 3 -> 2 -> 4 with recovery on: keyed state stays correct", async () => {
    const deploy = await waxctl([
      ...deployFlags("e2e-scale", small, "-p", "3", "-w", "1", ...(await sharedOutput("e2e-scale"))),
      "--wait",
    ]);
    expect(deploy.code, deploy.stderr).toBe(0);
    await untilCounted("e2e-scale", small, 250);

    expect((await waxctl(["df", "scale", "e2e-scale", "-n", NS, "--processes", "2", "--json"])).code).toBe(0);
    await untilRunning("e2e-scale", 2);
    const resumed = await waxctl(["df", "logs", "e2e-scale", "-n", NS, "--tail", "100"]);
    expect(resumed.stdout).toMatch(/^\[e2e-scale-0\] \S+ process 0: resuming from epoch \d+ /m);
    const afterDown = await untilCounted("e2e-scale", small, 700);
    expect(afterDown.complete).toBeLessThan(small.sensors);

    expect((await waxctl(["df", "scale", "e2e-scale", "-n", NS, "--processes", "4", "--json"])).code).toBe(0);
    await untilRunning("e2e-scale", 4);
    expect(await untilComplete("e2e-scale", small)).toMatchObject(EXACTLY_ONCE(small.sensors));
  });

  test("6. an invalid Dataflow is rejected by the API server with its message", async () => {
    const manifest = JSON.stringify({
      apiVersion: "waxflow.io/v1alpha1",
      kind: "Dataflow",
      metadata: { name: "invalid", namespace: NS },
      spec: { image: `waxflow.local/x@sha256:${"0".repeat(64)}`, module: "/app/flow.js", processes: 0 },
    });
    const file = join(tmpdir(), "waxflow-e2e-invalid.json");
    writeFileSync(file, manifest);
    const rejected = await tryKubectl("apply", "-f", file);
    expect(rejected.code).not.toBe(0);
    expect(rejected.stderr).toMatch(/spec\.processes.*(greater than or equal to 1|should be >= 1)/);

    const cli = await waxctl(["df", "deploy", "examples/running-count.ts", "--name", "Bad_Name", "-n", NS]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/Bad_Name/);
  });

  test("7. delete: owned objects go; volumes are kept or removed as the spec says", async () => {
    expect((await waxctl(["df", "delete", "e2e", "-n", NS, "--yes", "--wait", "--json"])).code).toBe(0);
    // Owned objects go through the garbage collector, pods after a graceful stop.
    await eventually("e2e's owned objects to be gone", async () => {
      const left = await kubectl(
        "get",
        "statefulset,service,pod",
        "-n",
        NS,
        "-l",
        "waxflow.io/dataflow=e2e",
        "-o",
        "name",
      );
      return left.trim() === "" ? true : undefined;
    });
    const kept = await kubectl("get", "pvc", "-n", NS, "-l", "waxflow.io/dataflow=e2e", "-o", "name");
    expect(kept.trim().split("\n")).toHaveLength(3);

    await kubectl(
      "patch",
      "dataflow",
      "e2e-suspend",
      "-n",
      NS,
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { recovery: { retention: { whenDeleted: "Delete" } } } }),
    );
    expect((await waxctl(["df", "delete", "e2e-suspend", "-n", NS, "--yes", "--wait"])).code).toBe(0);
    await eventually("e2e-suspend's volumes to be deleted", async () => {
      const left = await kubectl("get", "pvc", "-n", NS, "-l", "waxflow.io/dataflow=e2e-suspend", "-o", "name");
      return left.trim() === "" ? true : undefined;
    });
  });

  test("8. the controller killed during a deploy: the dataflow still converges", async () => {
    const deploy = await waxctl([...deployFlags("e2e-failover", readings(200), "-p", "2", "-w", "1"), "--no-wait"]);
    expect(deploy.code, deploy.stderr).toBe(0);
    // Fails unless it deleted the operator's pod; returns once that pod is gone.
    await killPods(OPERATOR_NS, labelSelector(OPERATOR_SELECTOR));
    await untilRunning("e2e-failover", 2);
  });

  test("9. deploy --registry: the image goes through a registry, and the node pulls it from there", async () => {
    const binary = registryBinary();
    expect(binary, "the registry is built by bash cli/install-tools.sh, which e2e/run.sh runs").toBeDefined();
    // The cluster's containerd sends localhost:<port> to this registry (e2e/toolchain/cluster.sh).
    const port = Number(process.env.E2E_REGISTRY_PORT ?? 5001);
    const registry = await startRegistry(binary as string, { hostPort: port });
    try {
      const at = `localhost:${port}/e2e`;
      const deploy = await waxctl([...deployFlags("e2e-pushed", readings(200), "-p", "1"), "--registry", at]);
      expect(deploy.code, deploy.stderr).toBe(0);
      const df = await kubectlJson<{ spec: { image: string } }>("get", "dataflow", "-n", NS, "e2e-pushed");
      expect(df.spec.image).toMatch(new RegExp(`^${at}/e2e-pushed@sha256:[0-9a-f]{64}$`));
      await untilRunning("e2e-pushed", 1);
      const events = await kubectl(
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        "involvedObject.name=e2e-pushed-0,reason=Pulled",
        "-o",
        "jsonpath={.items[*].message}",
      );
      expect(events).toContain(`Successfully pulled image "${df.spec.image}"`);
    } finally {
      await registry.stop();
    }
  });

  test("10. a dataflow that crashes at start: df deploy stops with its error line within seconds", async () => {
    const started = Date.now();
    // READINGS_BATCH=0 makes the module throw as it loads, in every process, every time.
    // Without --json: the error line is what the user reads.
    const flags = deployFlags("e2e-crash", { ...readings(200), batch: 0 }, "-p", "2", "-w", "1", "--create-namespace");
    // --no-check: deploy's own load of the module here would refuse it before anything is
    // applied (the CLI tests prove that); this scenario is about the cluster telling it.
    const deploy = await waxctl([...flags.filter((f) => f !== "--json"), "--no-check", "--wait", "--timeout", "5m"]);
    const took = Date.now() - started;
    const line = 'RangeError: READINGS_BATCH must be a whole number >= 1, got "0"';
    expect(deploy.code).toBe(1);
    const errors = deploy.stderr.trimEnd().split("\n");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^error: dataflow e2e-crash failed: process e2e-crash-[01] failed 2 times in a row with exit code 1: error: cannot load dataflow module/,
    );
    expect(errors[0]).toContain(line);
    // Two runs and the kubelet's first back-off (10 s), not the 5-minute timeout.
    expect(took).toBeLessThan(120_000);
    console.log(`df deploy reported the crash loop after ${(took / 1000).toFixed(1)}s`);

    const row = (await kubectl("get", "df", "-n", NS, "e2e-crash")).split("\n")[1];
    // NAME READY STATE PHASE IMAGE AGE RECONCILED PROBLEM
    expect(row).toMatch(
      /^e2e-crash\s+0\/2\s+running\s+Failed\s+\S+\s+\S+\s+\S+\s+process e2e-crash-[01] failed 2 times/,
    );
    expect(row).toContain(line);
    const df = await kubectlJson<DataflowStatus>("get", "dataflow", "-n", NS, "e2e-crash");
    expect(df.status?.conditions).toContainEqual(
      expect.objectContaining({ type: "Degraded", status: "True", reason: "CrashLoop" }),
    );
    expect((await waxctl(["df", "delete", "e2e-crash", "-n", NS, "--yes", "--wait"])).code).toBe(0);
  });
  test("11. five pod deletions in about three minutes: each recovered within 15 s, the last no slower than the first + 5 s, counts exactly once", async () => {
    const name = "e2e-faults";
    // Ten readings a second per feed for five minutes: the deletions all land mid-stream.
    const settings: ReadingsSettings = {
      partitions: 4,
      perPartition: 3000,
      batch: 1,
      intervalMs: 100,
      sensors: 12,
      follow: true,
    };
    // E2E_FAULTS_UNSUPERVISED=true measures the behaviour before the supervisor (fate-sharing
    // and the kubelet's back-off) for comparison: it records the downtimes without the bounds.
    const unsupervised = process.env.E2E_FAULTS_UNSUPERVISED === "true";
    const flags = deployFlags(
      name,
      settings,
      "-p",
      "3",
      "-w",
      "1",
      ...(unsupervised ? unsupervisedTemplate(name) : []),
    );
    const deploy = await waxctl([...flags, "--wait"]);
    expect(deploy.code, deploy.stderr).toBe(0);
    await untilRunning(name, 3);
    await untilCounted(name, settings, 200);
    const dirs = await Promise.all([0, 1, 2].map((i) => volumeDir(NS, `recovery-${name}-${i}`, OUTPUT)));
    expect(
      dirs.every((d) => d !== undefined),
      `volumes of ${name}: ${dirs.join(", ")}`,
    ).toBe(true);
    const lineCount = () => nodeLineCount(dirs as string[]);

    const downtimes: number[] = [];
    const SPACING_MS = 36_000;
    for (let n = 0; n < 5; n++) {
      const victim = `${name}-${n % 3}`;
      const kill = await killPods(NS, podNamed(victim));
      // Recovered: every process Ready (the victim's replacement among them, so the cluster
      // re-formed around it) and the output growing between two such looks.
      let readyLines: number | undefined;
      const recoveredAt = await eventually(
        `${name} to recover from deletion ${n + 1} (${victim})`,
        async () => {
          const all = await pods(NS, name);
          const back = all.find((p) => p.metadata.name === victim);
          if (all.length !== 3 || !all.every(isReady) || back === undefined || !replaced(kill, back)) {
            readyLines = undefined;
            return undefined;
          }
          const lines = await lineCount();
          const moved = readyLines !== undefined && lines > readyLines;
          readyLines = lines;
          return moved ? Date.now() : undefined;
        },
        { timeoutMs: 300_000, everyMs: 250 },
      );
      downtimes.push((recoveredAt - kill.at) / 1000);
      console.log(
        `deletion ${n + 1} (${victim}): every process ready and output moving after ${downtimes.at(-1)?.toFixed(1)} s` +
          (unsupervised ? " (unsupervised)" : ""),
      );
      const next = kill.at + SPACING_MS;
      if (n < 4 && next > Date.now()) await new Promise((r) => setTimeout(r, next - Date.now()));
    }
    console.log(
      `downtime per deletion (s)${unsupervised ? ", unsupervised" : ""}: ${downtimes.map((d) => d.toFixed(1)).join(", ")}`,
    );
    if (!unsupervised) {
      for (const d of downtimes) expect(d).toBeLessThanOrEqual(15);
      expect(downtimes[4]).toBeLessThanOrEqual((downtimes[0] ?? 0) + 5);
      for (const pod of await pods(NS, name)) expect(restarts(pod), pod.metadata.name).toBe(0);
    }
    const done = await eventually(
      `${name} to count every reading`,
      async () => {
        const report = await counts(name, settings);
        if (report.duplicates.length > 0 || report.malformed.length > 0) return report;
        return report.complete === settings.sensors ? report : undefined;
      },
      { timeoutMs: 420_000, everyMs: 3_000 },
    );
    expect(done).toMatchObject(EXACTLY_ONCE(settings.sensors));
    expect((await waxctl(["df", "delete", name, "-n", NS, "--yes", "--wait"])).code).toBe(0);
  });
  const owned = readings(1500);
  test("12. the operator owns what it made: replicas and template edits are set back, an unpullable image stops nothing; counts exactly once", async () => {
    const name = "e2e-own";
    const deploy = await waxctl([...deployFlags(name, owned, "-p", "2", "-w", "1"), "--wait"]);
    expect(deploy.code, deploy.stderr).toBe(0);
    await untilCounted(name, owned, 200);
    const events = async () =>
      (
        await kubectlJson<{ items: { reason?: string; message?: string }[] }>(
          "get",
          "events",
          "-n",
          NS,
          "--field-selector",
          `involvedObject.name=${name},reason=DriftReverted`,
        )
      ).items.map((e) => e.message ?? "");
    interface Sts {
      spec: { replicas: number; template: { spec: { containers: { env?: { name: string }[] }[] } } };
    }

    // Scaled up and down by hand, then given a variable by hand: each set back within seconds.
    for (const replicas of [3, 1]) {
      await kubectl("scale", "sts", name, "-n", NS, `--replicas=${replicas}`);
      await eventually(`replicas set back to 2 after a scale to ${replicas}`, async () =>
        (await kubectlJson<Sts>("get", "sts", name, "-n", NS)).spec.replicas === 2 ? true : undefined,
      );
    }
    await kubectl("set", "env", `sts/${name}`, "-n", NS, "FOO=1");
    await eventually("FOO set back", async () => {
      const sts = await kubectlJson<Sts>("get", "sts", name, "-n", NS);
      return sts.spec.template.spec.containers[0]?.env?.some((e) => e.name === "FOO") ? undefined : true;
    });
    const reverted = await events();
    expect(reverted.some((m) => m.includes("scaled to 3 replica(s) outside the operator"))).toBe(true);
    expect(reverted.some((m) => m.includes("scaled to 1 replica(s) outside the operator"))).toBe(true);
    expect(reverted.some((m) => m.includes("containers[waxflow].env[FOO] added"))).toBe(true);
    await untilRunning(name, 2);
    const uids = (await pods(NS, name)).map((p) => p.metadata.uid).sort();

    // An image no node can pull: the pre-flight pod says why, the processes run on untouched.
    const spec = await kubectlJson<{ spec: { image: string } }>("get", "dataflow", name, "-n", NS);
    const missing = `localhost:1/e2e-missing@sha256:${"0".repeat(64)}`;
    await patchSpec(name, { image: missing });
    const degraded = await eventually("Degraded for the image", async () => {
      const df = await kubectlJson<DataflowStatus>("get", "dataflow", name, "-n", NS);
      const c = df.status?.conditions?.find((c) => c.type === "Degraded" && c.status === "True");
      return c?.reason === "ErrImagePull" || c?.reason === "ImagePullBackOff" ? c : undefined;
    });
    expect(degraded).toMatchObject({ message: expect.stringContaining(`upgrade to image ${missing} held back`) });
    const running = await pods(NS, name);
    expect(running.map((p) => p.metadata.uid).sort()).toEqual(uids);
    expect(running.every(isReady)).toBe(true);
    // Back to the image that runs: the pre-flight pod goes, nothing restarts.
    await patchSpec(name, { image: spec.spec.image });
    await untilRunning(name, 2);
    await eventually("the pre-flight pod gone", async () =>
      (await tryKubectl("get", "pod", `${name}-preflight`, "-n", NS)).code !== 0 ? true : undefined,
    );
    expect((await pods(NS, name)).map((p) => p.metadata.uid).sort()).toEqual(uids);
    expect(await untilComplete(name, owned)).toMatchObject(EXACTLY_ONCE(owned.sensors));
    expect((await waxctl(["df", "delete", name, "-n", NS, "--yes", "--wait", "--purge"])).code).toBe(0);
  });

  test("13. deployed again smaller under the same name: the kept volumes' state is handed over, counts exactly once", async () => {
    const name = "e2e-again";
    const overlay = await sharedOutput(name);
    const first = await waxctl([...deployFlags(name, owned, "-p", "3", "-w", "1", ...overlay), "--wait"]);
    expect(first.code, first.stderr).toBe(0);
    await untilCounted(name, owned, 250);
    expect((await waxctl(["df", "delete", name, "-n", NS, "--yes", "--wait"])).code).toBe(0);
    const kept = await kubectl("get", "pvc", "-n", NS, "-l", `waxflow.io/dataflow=${name}`, "-o", "name");
    expect(kept.trim().split("\n")).toHaveLength(3);

    const again = await waxctl([...deployFlags(name, owned, "-p", "2", "-w", "1", ...overlay), "--wait"]);
    expect(again.code, again.stderr).toBe(0);
    await untilRunning(name, 2);
    const reasons = (
      await kubectlJson<{ items: { reason?: string }[] }>(
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        `involvedObject.name=${name}`,
      )
    ).items.map((e) => e.reason);
    expect(reasons).toContain("RecoveryHandedOff");
    for (const pod of await pods(NS, name)) expect(restarts(pod), pod.metadata.name).toBe(0);
    expect(await untilComplete(name, owned)).toMatchObject(EXACTLY_ONCE(owned.sensors));
    expect((await waxctl(["df", "delete", name, "-n", NS, "--yes", "--wait", "--purge"])).code).toBe(0);
  });
  test("14. the operator killed mid-scale, a refused edit and its revert, a drain held by the budget: counts exactly once", async () => {
    const name = "e2e-ops";
    // Two minutes of readings: every fault below lands mid-stream.
    const settings = readings(6000);
    const overlay = await sharedOutput(name);
    const deploy = await waxctl([...deployFlags(name, settings, "-p", "3", "-w", "1", ...overlay), "--wait"]);
    expect(deploy.code, deploy.stderr).toBe(0);
    await untilCounted(name, settings, 200);
    interface Status {
      metadata: { generation: number };
      spec: { resources?: unknown };
      status?: DataflowStatus["status"] & { rollout?: { kind: string; stage: string } };
    }
    const dataflow = () => kubectlJson<Status>("get", "dataflow", name, "-n", NS);
    const condition = (df: Status, type: string) => df.status?.conditions?.find((c) => c.type === type);

    // The operator killed once the scale's write-ahead record is written: its successor
    // finishes the roll from the record, and no process is left beyond the 2.
    const scale = await waxctl(["df", "scale", name, "-n", NS, "--processes", "2"]);
    expect(scale.code, scale.stderr).toBe(0);
    const record = await eventually(
      "the scale's write-ahead record",
      async () => {
        const rollout = (await dataflow()).status?.rollout;
        return rollout?.kind === "scale" ? rollout : undefined;
      },
      { everyMs: 100 },
    );
    await killPods(OPERATOR_NS, labelSelector(OPERATOR_SELECTOR));
    console.log(`operator killed at the scale's stage ${record.stage}`);
    await untilRunning(name, 2);
    await eventually("the roll finished: 2 pods, no record", async () => {
      const [df, all] = await Promise.all([dataflow(), pods(NS, name)]);
      return df.status?.rollout === undefined && all.length === 2 ? true : undefined;
    });
    const uids = (await pods(NS, name)).map((p) => p.metadata.uid).sort();

    // An edit the API server refuses (a memory request above its limit): said in one
    // condition, no roll recorded, the running processes untouched; its revert restarts nothing.
    const resources = (await dataflow()).spec.resources ?? null;
    const refusedEdit = { resources: { requests: { memory: "2Gi" }, limits: { memory: "1Gi" } } };
    await patchSpec(name, refusedEdit);
    const refused = await eventually("the refused edit in status", async () => {
      const df = await dataflow();
      const degraded = condition(df, "Degraded");
      return degraded?.status === "True" && degraded.reason === "RejectedByApiServer" ? df : undefined;
    });
    expect(condition(refused, "Degraded")?.message).toContain("must be less than or equal to memory limit");
    expect(condition(refused, "Ready")?.message).toContain("2 process(es) keep running the previous spec, untouched");
    expect(refused.status?.rollout).toBeUndefined();
    // A JSON patch: a merge patch would keep the refused edit's keys beside the old ones.
    const revert =
      resources === null
        ? [{ op: "remove", path: "/spec/resources" }]
        : [{ op: "replace", path: "/spec/resources", value: resources }];
    await kubectl("patch", "dataflow", name, "-n", NS, "--type=json", "-p", JSON.stringify(revert));
    await eventually("Running again after the revert", async () => {
      const df = await dataflow();
      return df.status?.phase === "Running" && condition(df, "Degraded")?.status !== "True" ? true : undefined;
    });
    const afterRevert = await pods(NS, name);
    expect(afterRevert.map((p) => p.metadata.uid).sort()).toEqual(uids);
    for (const pod of afterRevert) expect(restarts(pod), pod.metadata.name).toBe(0);

    // A drain of the node: the budget lets one process go, then refuses the other while
    // the cluster is not whole again (here never: the cordoned node cannot take the
    // replacement), so the drain gives up and the other process was never evicted.
    const budget = await kubectlJson<{ spec: { maxUnavailable: number } }>("get", "pdb", name, "-n", NS);
    expect(budget.spec.maxUnavailable).toBe(1);
    const before = await pods(NS, name);
    let drain: Awaited<ReturnType<typeof tryKubectl>>;
    try {
      drain = await tryKubectl(
        "drain",
        NODE,
        "--pod-selector",
        `waxflow.io/dataflow=${name}`,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=30s",
      );
    } finally {
      await kubectl("uncordon", NODE);
    }
    expect(drain.code, drain.stdout).not.toBe(0);
    expect(`${drain.stdout}${drain.stderr}`).toContain("would violate the pod's disruption budget");
    const after = await pods(NS, name);
    const evicted = before.filter((p) => !after.some((q) => q.metadata.uid === p.metadata.uid));
    expect(
      evicted.map((p) => p.metadata.name),
      "exactly one process evicted",
    ).toHaveLength(1);
    await untilRunning(name, 2);
    expect(await untilComplete(name, settings)).toMatchObject(EXACTLY_ONCE(settings.sensors));
    expect((await waxctl(["df", "delete", name, "-n", NS, "--yes", "--wait", "--purge"])).code).toBe(0);
  });
});
