// The pure parts of the df topic: text formatting, the deploy plan, readiness, stages.
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import { changedSpecFields, type Dataflow } from "@waxflow/crds";
import { renderToString } from "ink";
import { createElement } from "react";
import { expect, test } from "vitest";
import { kindClusterOf } from "../src/deploy/build.ts";
import { planDeploy } from "../src/deploy/diff.ts";
import { podStatus, readiness } from "../src/deploy/status.ts";
import { podReport } from "../src/deploy/wait.ts";
import { failureLine } from "../src/kube.ts";
import { describeText, listRow } from "../src/ui/describe.ts";
import { age, bar, bytes, prefixedLines, shortImage, table } from "../src/ui/format.ts";
import { Board, outputMode, plainRenderer, type StageView } from "../src/ui/progress.ts";
import { Stages } from "../src/ui/stages.ts";

const IMAGE = `registry.example/orders@sha256:${"ab".repeat(32)}`;
const now = new Date("2026-01-10T12:00:00Z");
const ago = (s: number) => new Date(now.getTime() - s * 1000);

function dataflow(spec: Partial<Dataflow["spec"]> = {}, status?: Dataflow["status"]): Dataflow {
  return {
    apiVersion: "waxflow.io/v1alpha1",
    kind: "Dataflow",
    metadata: { name: "orders", namespace: "streams", creationTimestamp: ago(300), generation: 2, labels: { a: "1" } },
    spec: { image: IMAGE, module: "/app/orders.js", processes: 3, workersPerProcess: 2, state: "running", ...spec },
    status,
  };
}

function pod(name: string, ready: boolean, image = IMAGE, waiting?: string): V1Pod {
  return {
    metadata: { name, creationTimestamp: ago(60) },
    spec: { containers: [{ name: "waxflow", image }] },
    status: {
      phase: ready ? "Running" : "Pending",
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
      containerStatuses: [
        {
          name: "waxflow",
          image,
          imageID: "",
          ready,
          restartCount: 2,
          state: waiting === undefined ? { running: {} } : { waiting: { reason: waiting } },
        },
      ],
    },
  };
}

test.each([
  [0, "0s"],
  [119, "119s"],
  [150, "2m30s"],
  [600, "10m"],
  [3 * 3600 + 120, "3h2m"],
  [20 * 3600, "20h"],
  [3 * 86400 + 4 * 3600, "3d4h"],
  [400 * 86400, "400d"],
  [(2 * 365 + 30) * 86400, "2y30d"],
  [-5, "0s"],
])("age of %i seconds is %s, as kubectl prints it", (seconds, text) => {
  expect(age(ago(seconds), now)).toBe(text);
});

test("a table pads columns to the widest cell and upper-cases headers", () => {
  expect(
    table(
      ["name", "ready"],
      [
        ["orders", "1/3"],
        ["a", "10/10"],
      ],
    ),
  ).toBe("NAME     READY\norders   1/3\na        10/10");
});

test("short forms: image digest, bytes, bars, prefixed log lines", () => {
  expect(shortImage(IMAGE)).toBe("registry.example/orders@sha256:abababababab");
  expect(shortImage("plain:tag")).toBe("plain:tag");
  expect(bytes(999)).toBe("999 B");
  expect(bytes(12_345_678)).toBe("12.3 MB");
  expect(bar(5, 10, 10)).toBe("[#####-----]");
  expect(bar(0, 0, 4)).toBe("[####]");
  expect(prefixedLines("orders-1", "a\nb\n")).toEqual(["[orders-1] a", "[orders-1] b"]);
});

test("a list row: name, namespace, entry, short image, ready/desired, state, age", () => {
  expect(listRow(dataflow(), now)).toEqual([
    "orders",
    "streams",
    "/app/orders.js",
    "registry.example/orders@sha256:abababababab",
    "0/3",
    "Pending",
    "5m",
  ]);
  expect(listRow(dataflow({ state: "suspended" }), now)[5]).toBe("Suspended");
  expect(listRow(dataflow({}, { phase: "Running", readyProcesses: 3 }), now).slice(4, 6)).toEqual(["3/3", "Running"]);
});

test("the plan: create, unchanged, a label-only update, and a change that replaces a running dataflow", () => {
  const live = dataflow();
  expect(planDeploy(undefined, live).action).toBe("create");
  expect(planDeploy(live, dataflow())).toEqual({ action: "unchanged", fields: [], replacesRunning: false });
  const relabeled = { ...dataflow(), metadata: { ...live.metadata, labels: { a: "2" } } };
  expect(planDeploy(live, relabeled)).toEqual({ action: "update", fields: [], replacesRunning: false });
  expect(planDeploy(live, dataflow({ image: "x@sha256:1", processes: 4 }))).toEqual({
    action: "update",
    fields: ["image", "processes"],
    replacesRunning: true,
  });
  expect(
    planDeploy(dataflow({ state: "suspended" }), dataflow({ state: "suspended", processes: 4 })).replacesRunning,
  ).toBe(false);
  const retained = dataflow({ recovery: { retention: { whenDeleted: "Delete" } } });
  expect(changedSpecFields(live.spec, retained.spec)).toEqual(["recovery.retention"]);
  expect(planDeploy(live, retained).replacesRunning).toBe(false);
});

test("readiness counts ready pods of the spec's image; formed needs the controller's Ready for this generation", () => {
  const pods = [pod("orders-0", true), pod("orders-1", true), pod("orders-2", true, "old@sha256:0")];
  expect(readiness(dataflow(), pods, 2)).toEqual({ desired: 3, pods: 2, podsReady: 2, formed: false });
  const ready = {
    observedGeneration: 2,
    readyProcesses: 3,
    conditions: [{ type: "Ready" as const, status: "True" as const }],
  };
  expect(readiness(dataflow({}, ready), pods, 2).formed).toBe(true);
  expect(readiness(dataflow({}, { ...ready, observedGeneration: 1 }), pods, 2).formed).toBe(false);
});

test("a pod that is not ready reports its status, events and last log lines", () => {
  const events: CoreV1Event[] = [
    {
      metadata: {},
      involvedObject: {},
      type: "Warning",
      reason: "BackOff",
      message: "restarting failed container",
      count: 4,
    },
  ];
  expect(podStatus(pod("orders-0", false, IMAGE, "CrashLoopBackOff"))).toBe("CrashLoopBackOff");
  expect(podReport(pod("orders-0", false, IMAGE, "CrashLoopBackOff"), events, "boom\nerror: step x failed\n")).toEqual([
    "pod orders-0: CrashLoopBackOff",
    " events:",
    "   Warning BackOff: restarting failed container (x4)",
    " last log lines:",
    "    boom",
    "    error: step x failed",
  ]);
  expect(podReport(pod("orders-1", false), [], undefined)).toEqual(["pod orders-1: Pending", " no log lines yet"]);
});

test("describe lists fields, conditions, pods and events", () => {
  const text = describeText(
    dataflow(
      { restartNonce: 2, env: [{ name: "LOG_LEVEL", value: "debug" }] },
      {
        phase: "Deploying",
        readyProcesses: 1,
        conditions: [
          {
            type: "Ready",
            status: "False",
            reason: "ProcessesNotReady",
            message: "1/3 processes ready",
            lastTransitionTime: ago(30).toISOString(),
          },
        ],
      },
    ),
    [pod("orders-0", true)],
    [
      {
        metadata: {},
        involvedObject: {},
        type: "Normal",
        reason: "Deploying",
        message: "starting",
        lastTimestamp: ago(40),
      },
    ],
    now,
  );
  expect(text).toContain("Name:          orders\n");
  expect(text).toContain("State:         running (Deploying, 1/3 ready)\n");
  expect(text).toContain("Restart nonce: 2\n");
  expect(text).toContain("Env:           LOG_LEVEL=debug\n");
  expect(text).toContain("Recovery:      off");
  expect(text).toMatch(
    /Conditions:\n {2}TYPE +STATUS +REASON +AGE +MESSAGE\n {2}Ready +False +ProcessesNotReady +30s +1\/3 processes ready/,
  );
  expect(text).toMatch(/Pods:\n {2}NAME +READY +STATUS +RESTARTS +AGE\n {2}orders-0 +1\/1 +Running +2 +60s/);
  expect(text).toMatch(/Events:\n {2}AGE +TYPE +REASON +MESSAGE\n {2}40s +Normal +Deploying +starting/);
});

test("an API failure is one line: unreachable, unauthorized, or the server's message", () => {
  const where = { server: "https://10.0.0.1:6443", context: "prod" };
  const refused = Object.assign(new TypeError("fetch failed"), {
    cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }),
  });
  expect(failureLine(refused, "listing dataflows", where)).toBe(
    "cannot reach the cluster at https://10.0.0.1:6443 (context prod): connection refused (ECONNREFUSED); check that it is running, or choose another with --context or --kubeconfig",
  );
  expect(failureLine({ code: 401, body: "" }, "listing dataflows", where)).toMatch(
    /^the cluster at https:\/\/10\.0\.0\.1:6443 rejected the credentials of context prod \(401 Unauthorized\)/,
  );
  const forbidden = {
    code: 403,
    body: JSON.stringify({ message: 'dataflows.waxflow.io is forbidden: User "me" cannot list' }),
  };
  expect(failureLine(forbidden, "listing dataflows", where)).toBe(
    'listing dataflows: dataflows.waxflow.io is forbidden: User "me" cannot list; ask the cluster\'s admin for access, or choose another context with --context',
  );
});

test("plain output: a line when a stage ends or its text changes, none for silent starts", () => {
  const lines: string[] = [];
  let clock = 0;
  const board = new Board(
    plainRenderer((l) => lines.push(l)),
    undefined,
    () => clock,
  );
  const apply = board.stage("apply");
  clock = 250;
  apply.done("created");
  const pods = board.stage("pods ready", "0/2");
  pods.update("0/2");
  pods.update("1/2");
  pods.fail("timed out after 5.0s");
  pods.done("ignored once failed");
  board.skip("cluster formed", "not reached");
  expect(lines).toEqual([
    "✓ apply: created (0.3s)",
    "… pods ready: 0/2",
    "… pods ready: 1/2",
    "✗ pods ready: timed out after 5.0s",
    "- cluster formed: not reached",
  ]);
});

test("ink on a terminal, plain lines in a pipe or CI, nothing for JSON", () => {
  expect(outputMode(false, true, {})).toBe("ink");
  expect(outputMode(false, true, { CI: "true" })).toBe("plain");
  expect(outputMode(false, true, { CI: "false" })).toBe("ink");
  expect(outputMode(false, false, {})).toBe("plain");
  expect(outputMode(true, true, {})).toBe("quiet");
});

test("the ink view marks each stage and shows a transfer as a bar", () => {
  const stages: StageView[] = [
    { title: "bundle", state: "done", detail: "orders.js, 2.0 kB", startedAt: 0, endedAt: 100 },
    { title: "load", state: "running", detail: "writing", transfer: { done: 5e6, total: 1e7 }, startedAt: 0 },
    { title: "pods ready", state: "failed", detail: "timed out", startedAt: 0, endedAt: 1 },
  ];
  const text = renderToString(createElement(Stages, { stages }), { columns: 120 });
  const lines = text.split("\n").map((l) => l.trimEnd());
  expect(lines[0]).toMatch(/^✓ bundle +orders\.js, 2\.0 kB 0\.1s$/);
  expect(lines[1]).toMatch(/ load +writing \[##########----------\] 5\.0 MB\/10\.0 MB$/);
  expect(lines[2]).toMatch(/^✗ pods ready +timed out$/);
});

test("a kind context names its cluster", () => {
  expect(kindClusterOf("kind-waxflow-e2e")).toBe("waxflow-e2e");
  expect(kindClusterOf("kind-")).toBeUndefined();
  expect(kindClusterOf("prod")).toBeUndefined();
});
