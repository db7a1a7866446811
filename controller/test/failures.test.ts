// Crash-loop diagnosis: the pure part, fed pod status as the kubelet writes it through a
// process's runs (fail, back off, run again, fail again).
import type { V1ContainerStateTerminated, V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import type { DataflowProcessFailure } from "@waxflow/crds";
import { CONTAINER } from "@waxflow/crds";
import { expect, test } from "vitest";
import { diagnoseFailures, lastLine, trackFailures } from "../src/reconcile/failures.ts";
import { type Observed, reconcile } from "../src/reconcile/reconcile.ts";
import { dataflow, IMAGE, now, podOf, statefulSetOf } from "./fixtures.ts";

const EROFS = "error: step running-count: EROFS: read-only file system, mkdir 'out/running-count'";

/** Run `n` of a container, ended with `exitCode`; the log's tail is its termination message. */
function ended(n: number, exitCode: number, line = EROFS): V1ContainerStateTerminated {
  return {
    containerID: `containerd://run-${n}`,
    exitCode,
    reason: exitCode === 0 ? "Completed" : "Error",
    message: `waxflow 0.1.0: 1 process x 2 workers\n${line}\n`,
    finishedAt: new Date(now.getTime() + n * 1000),
  };
}

type State = "waiting" | "running" | "terminated";

/** The container's status when its latest run is `n`, in `state`; run n-1 failed with `previous`. */
function container(
  n: number,
  state: State,
  current?: V1ContainerStateTerminated,
  previous?: V1ContainerStateTerminated,
) {
  const status: V1ContainerStatus = {
    name: CONTAINER,
    image: IMAGE,
    imageID: "",
    ready: false,
    restartCount: n,
    state:
      state === "waiting"
        ? { waiting: { reason: "CrashLoopBackOff", message: "back-off 10s restarting failed container" } }
        : state === "running"
          ? { running: { startedAt: now } }
          : { terminated: current },
    ...(previous === undefined ? {} : { lastState: { terminated: previous } }),
  };
  return status;
}

const df = dataflow({ processes: 2 });
function pod(i: number, status: V1ContainerStatus, uid = `pod-${i}`): V1Pod {
  const p = podOf(df, i, false, { containerStatuses: [status] });
  return { ...p, metadata: { ...p.metadata, uid } };
}

/** Feeds the statuses one after the other, as the watch would, carrying the records along. */
function track(...steps: V1Pod[][]): DataflowProcessFailure[] {
  return steps.reduce<DataflowProcessFailure[]>((records, pods) => trackFailures(records, pods, CONTAINER), []);
}

test("the last line of a termination message, cut when long", () => {
  expect(lastLine("a\nerror: b \n\n")).toBe("error: b");
  expect(lastLine(undefined)).toBe("");
  expect(lastLine("x".repeat(400))).toHaveLength(300);
});

test("one failed run is a restart; the second the same way is a crash loop", () => {
  const first = track([pod(0, container(0, "terminated", ended(0, 1)))]);
  expect(first).toEqual([
    { pod: "wc-0", podUID: "pod-0", run: "containerd://run-0", exitCode: 1, line: EROFS, times: 1 },
  ]);
  expect(diagnoseFailures(first)).toEqual({
    reason: "ProcessFailed",
    message: `process wc-0 exited with code 1 and is restarting: ${EROFS}`,
  });

  // Backing off, then running again: the same run seen again is not counted again.
  const again = track(
    [pod(0, container(0, "terminated", ended(0, 1)))],
    [pod(0, container(1, "waiting", undefined, ended(0, 1)))],
    [pod(0, container(1, "running", undefined, ended(0, 1)))],
  );
  expect(again[0]?.times).toBe(1);

  const loop = track(
    [pod(0, container(0, "terminated", ended(0, 1)))],
    [pod(0, container(1, "waiting", undefined, ended(0, 1)))],
    [pod(0, container(1, "terminated", ended(1, 1), ended(0, 1)))],
  );
  expect(loop[0]).toMatchObject({ run: "containerd://run-1", times: 2 });
  expect(diagnoseFailures(loop)).toEqual({
    reason: "CrashLoop",
    message: `process wc-0 failed 2 times in a row with exit code 1: ${EROFS}`,
  });
});

test("both runs visible at once count as two; a missed status in between still counts", () => {
  expect(track([pod(0, container(1, "terminated", ended(1, 1), ended(0, 1)))])[0]?.times).toBe(2);
  // The controller saw run 0 fail, then only run 2 (run 1's failure came and went unseen).
  const records = track(
    [pod(0, container(0, "terminated", ended(0, 1)))],
    [pod(0, container(2, "waiting", undefined, ended(2, 1)))],
  );
  expect(records[0]).toMatchObject({ run: "containerd://run-2", times: 2 });
});

test("a different failure starts the count over; ready, replaced and exit-0 runs reset it", () => {
  const other = track(
    [pod(0, container(0, "terminated", ended(0, 1)))],
    [pod(0, container(1, "terminated", ended(1, 1, "error: connection to process 1 lost"), ended(0, 1)))],
  );
  expect(other[0]).toMatchObject({ times: 1, line: "error: connection to process 1 lost" });
  expect(
    track(
      [pod(0, container(0, "terminated", ended(0, 1)))],
      [pod(0, container(1, "terminated", ended(1, 137), ended(0, 1)))],
    )[0]?.times,
  ).toBe(1);

  const failedOnce = [pod(0, container(0, "terminated", ended(0, 1)))];
  const ready = pod(0, { ...container(1, "running", undefined, ended(0, 1)), ready: true });
  expect(track(failedOnce, [ready])).toEqual([]);
  // Same name, new pod (a roll replaced it): its first failure is its first.
  expect(track(failedOnce, [pod(0, container(0, "terminated", ended(5, 1)), "pod-0-new")])[0]?.times).toBe(1);
  expect(track(failedOnce, [])).toEqual([]);
  expect(track([pod(0, container(1, "waiting", undefined, ended(0, 0)))])).toEqual([]);
});

test("the first process in a crash loop is named, by ordinal", () => {
  const records = track([
    pod(10, container(1, "terminated", ended(1, 1), ended(0, 1))),
    pod(2, container(1, "terminated", ended(1, 1), ended(0, 1))),
    pod(1, container(0, "terminated", ended(0, 1))),
  ]);
  expect(records.map((r) => r.pod)).toEqual(["wc-1", "wc-2", "wc-10"]);
  expect(diagnoseFailures(records)?.message).toMatch(/^process wc-2 failed 2 times/);
});

function observed(pods: V1Pod[], status = df.status): Observed {
  return { dataflow: { ...df, status }, statefulSet: statefulSetOf(df, 2), pods, claims: [] };
}

test("reconcile: Degraded from the first failed run on, phase Failed with the error line at the second", () => {
  const steps: V1ContainerStatus[] = [
    container(0, "terminated", ended(0, 1)),
    container(1, "waiting", undefined, ended(0, 1)),
    container(1, "running", undefined, ended(0, 1)),
    container(1, "terminated", ended(1, 1), ended(0, 1)),
    container(2, "waiting", undefined, ended(1, 1)),
    container(2, "running", undefined, ended(1, 1)),
  ];
  let status = df.status;
  const seen: { phase?: string; degraded?: string; reason?: string; message?: string }[] = [];
  for (const step of steps) {
    const plan = reconcile(observed([pod(0, step), pod(1, container(0, "running"))], status), now);
    status = plan.status;
    const degraded = plan.status.conditions?.find((c) => c.type === "Degraded");
    seen.push({
      phase: plan.status.phase,
      degraded: degraded?.status,
      reason: degraded?.reason,
      message: degraded?.message,
    });
  }
  // Degraded never reads False between restarts.
  expect(seen.map((s) => s.degraded)).toEqual(["True", "True", "True", "True", "True", "True"]);
  expect(seen.map((s) => s.phase)).toEqual(["Deploying", "Deploying", "Deploying", "Failed", "Failed", "Failed"]);
  expect(seen.map((s) => s.reason)).toEqual([
    "ProcessFailed",
    "ProcessFailed",
    "ProcessFailed",
    "CrashLoop",
    "CrashLoop",
    "CrashLoop",
  ]);
  expect(seen[3]?.message).toBe(`process wc-0 failed 2 times in a row with exit code 1: ${EROFS}`);
  expect(status?.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "False", reason: "CrashLoop" });
  expect(status?.conditions?.find((c) => c.type === "Progressing")).toMatchObject({
    status: "False",
    reason: "CrashLoop",
  });

  // Fixed (both ready): Running, Degraded False with no message, the records gone.
  const healed = reconcile(observed([podOf(df, 0, true), podOf(df, 1, true)], status), now);
  expect(healed.status.phase).toBe("Running");
  expect(healed.status.failures).toBeUndefined();
  expect(healed.status.conditions?.find((c) => c.type === "Degraded")).toMatchObject({
    status: "False",
    message: "",
  });
});

test("reconcile: the failures of a template being replaced do not fail the roll", () => {
  const failing = [0, 1].map((i) => pod(i, container(1, "terminated", ended(1, 1), ended(0, 1))));
  const looping = reconcile(observed(failing), now);
  expect(looping.status.phase).toBe("Failed");
  expect(looping.events).toContainEqual(expect.objectContaining({ type: "Warning", reason: "CrashLoop" }));

  const fixed = dataflow({ processes: 2, image: `r/x@sha256:${"c".repeat(64)}` });
  fixed.metadata = { ...fixed.metadata, generation: 2 };
  const plan = reconcile(
    {
      dataflow: { ...fixed, status: { ...looping.status, lastReconciledSpec: JSON.stringify(df.spec) } },
      statefulSet: statefulSetOf(df, 2),
      pods: failing,
      claims: [],
    },
    now,
  );
  expect(plan.status.rollout?.stage).toBe("Stopping");
  expect(plan.status.phase).toBe("Deploying");
  expect(plan.status.failures).toBeUndefined();
});
