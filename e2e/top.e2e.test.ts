// See inside a running dataflow on kind: `df top --once --json` and `df describe` read
// every pod's /steps through the API server's pod proxy (past the Dataflow's
// NetworkPolicy, as the operator's namespace is), and the numbers agree with the example;
// `df state` reads a sensor's count from the worker that owns it, the count the dataflow printed.
import { describe, expect, test } from "vitest";
import { eventually, restrictedNamespace, waxctl } from "./lib/cluster.ts";

const NS = "waxflow-e2e-top";
const FLOW = "e2e-top";
/** examples/running-count.ts counts this many sensors by default. */
const SENSORS = 12;
const controllerImage = process.env.WAXFLOW_CONTROLLER_IMAGE;

interface TopNumbers {
  readonly steps: readonly { step: string; kind: string; throughput: number; keys: number | null }[];
  readonly pods: readonly {
    pod: string;
    process: number | null;
    epoch: number | null;
    committedEpoch: number | null;
    cpuCores: number | null;
    memoryMiB: number | null;
    resourcesFrom: "metrics.k8s.io" | "process" | null;
  }[];
}

restrictedNamespace(NS);

describe("df top and df describe on kind", { timeout: 600_000 }, () => {
  test("T1. the running count's every step has throughput, its count holds one key per sensor", async () => {
    expect(controllerImage, "run through `npm run e2e`, which builds and loads the images").toBeDefined();
    const install = await waxctl(["install", "--image", controllerImage ?? "", "--wait", "--json"]);
    expect(install.code).toBe(0);
    const deploy = await waxctl([
      "df",
      "deploy",
      "examples/running-count.ts",
      "--name",
      FLOW,
      "-n",
      NS,
      "-p",
      "2",
      "-w",
      "2",
      "--recovery",
      "-e",
      "READINGS_FOLLOW=true",
      "--state-query",
      "--wait",
      "--timeout",
      "5m",
      "--json",
    ]);
    expect(deploy.stderr).toBe("");
    expect(deploy.code).toBe(0);

    const numbers = await eventually("every step of df top --json to show throughput", async () => {
      const top = await waxctl(["df", "top", FLOW, "-n", NS, "--once", "--json"]);
      if (top.code !== 0) throw new Error(top.stderr.trim());
      const parsed = JSON.parse(top.stdout) as TopNumbers;
      const count = parsed.steps.find((s) => s.step === "count.stateful_batch");
      // The first snapshot comes after the default 10 s epoch: then every pod has committed one.
      const committed = parsed.pods.length === 2 && parsed.pods.every((p) => p.committedEpoch !== null);
      const flowing = parsed.steps.length > 0 && parsed.steps.every((s) => s.throughput > 0);
      return flowing && committed && count?.keys === SENSORS ? parsed : undefined;
    });
    expect(numbers.steps.map((s) => s.step)).toEqual([
      "readings",
      "by_sensor.flat_map_batch",
      "count.stateful_batch",
      "format.flat_map_batch",
      "line.flat_map_batch",
      "out",
    ]);
    expect(numbers.pods.map((p) => [p.pod, p.process])).toEqual([
      [`${FLOW}-0`, 0],
      [`${FLOW}-1`, 1],
    ]);
    for (const pod of numbers.pods) {
      expect(pod.epoch).toBeGreaterThan(1);
      expect(pod.committedEpoch).toBeGreaterThanOrEqual(1);
      // From metrics-server when the cluster has one, else the process's own /metrics (read twice, a second apart).
      expect(pod.resourcesFrom).not.toBeNull();
      expect(pod.cpuCores).toBeGreaterThanOrEqual(0);
      expect(pod.memoryMiB).toBeGreaterThan(20);
    }

    const frame = await waxctl(["df", "top", FLOW, "-n", NS, "--once"]);
    expect(frame.code).toBe(0);
    expect(frame.stdout).toMatch(/^ {2}count\.stateful_batch +statefulBatch +[\d.]+k? +12 /m);
    expect(frame.stdout).toMatch(
      new RegExp(`^${FLOW}-0 +0 +yes +\\d+ +\\d+ +[\\d.]+s +\\d+\\.\\d\\d +\\d+Mi +0 *$`, "m"),
    );
    // The README's frame is this one.
    process.stderr.write(`${frame.stdout}\n`);

    const described = await waxctl(["df", "describe", FLOW, "-n", NS]);
    expect(described.code).toBe(0);
    expect(described.stdout).toMatch(/^ {2}count\.stateful_batch +statefulBatch in count \(statefulMap\) +yes +\d/m);

    // A sensor's count as of the last committed epoch, then live: asked of pod 0, answered by
    // the owner; the live count is at least the committed one, and the dataflow printed it.
    const committed = await waxctl([
      "df",
      "state",
      FLOW,
      "count.stateful_batch",
      "sensor-3",
      "-n",
      NS,
      "--committed",
      "--json",
    ]);
    expect(committed.code, committed.stderr).toBe(0);
    const snapshot = JSON.parse(committed.stdout) as { value: number; epoch: number };
    expect(snapshot.epoch).toBeGreaterThanOrEqual(1);
    const live = JSON.parse((await waxctl(["df", "state", FLOW, "count", "sensor-3", "-n", NS, "--json"])).stdout) as {
      value: number;
    };
    expect(live.value).toBeGreaterThanOrEqual(snapshot.value);
    expect(snapshot.value).toBeGreaterThan(0);
    await eventually(`df logs to show the line sensor-3,${live.value}`, async () => {
      const logs = await waxctl(["df", "logs", FLOW, "-n", NS, "--tail", "2000"]);
      return new RegExp(`\\bsensor-3,${live.value}$`, "m").test(logs.stdout) ? true : undefined;
    });
    const keys = await waxctl(["df", "state", FLOW, "count", "--prefix", "sensor-1", "-n", NS]);
    expect(keys.stdout).toBe("sensor-1\nsensor-10\nsensor-11\n");

    const deleted = await waxctl(["df", "delete", FLOW, "-n", NS, "--purge", "--yes", "--wait"]);
    expect(deleted.code).toBe(0);
  });
});
