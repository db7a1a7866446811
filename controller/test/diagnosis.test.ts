// What the Ready and Progressing messages say each process is doing, from pod status alone.
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
import { CONTAINER } from "@waxflow/crds";
import { expect, test } from "vitest";
import { activityOf, progressMessage } from "../src/reconcile/diagnosis.ts";
import { crashLooping, dataflow, IMAGE, podOf } from "./fixtures.ts";

const df = dataflow({ processes: 3 });
const waitingIn = (reason: string, message?: string): V1ContainerStatus => ({
  name: CONTAINER,
  image: IMAGE,
  imageID: "",
  ready: false,
  restartCount: 0,
  state: { waiting: { reason, ...(message === undefined ? {} : { message }) } },
});
const creating = (i: number, sandboxReady: boolean): V1Pod => ({
  ...podOf(df, i, false),
  status: {
    phase: "Pending",
    conditions: [
      { type: "PodScheduled", status: "True" },
      { type: "PodReadyToStartContainers", status: sandboxReady ? "True" : "False" },
    ],
    containerStatuses: [waitingIn("ContainerCreating")],
  },
});
const terminating = (i: number): V1Pod => {
  const pod = podOf(df, i, true);
  return { ...pod, metadata: { ...pod.metadata, deletionTimestamp: new Date("2026-11-23T12:00:00Z") } };
};

test("terminating pods are never counted ready: every pod terminating says it is stopping them", () => {
  const pods = [terminating(0), terminating(1)];
  expect(activityOf(pods[0] as V1Pod, CONTAINER)).toEqual({ kind: "stopping" });
  expect(progressMessage(pods, 2, CONTAINER)).toBe(
    "0/2 processes ready: stopping 2 process(es) (wc-0, wc-1); 2 not created yet",
  );
});

test("a container in CrashLoopBackOff is waiting for back-off", () => {
  const looping = podOf(df, 1, false, {
    containerStatuses: [crashLooping(3, "back-off 40s restarting failed container", { exitCode: 1 })],
  });
  expect(activityOf(looping, CONTAINER)).toEqual({ kind: "backOff", reason: "CrashLoopBackOff" });
  expect(progressMessage([podOf(df, 0, true), looping, podOf(df, 2, false)], 3, CONTAINER)).toBe(
    "1/3 processes ready: 1 waiting for back-off after a failed run (CrashLoopBackOff: wc-1); " +
      "1 running, waiting for every peer to connect (wc-2)",
  );
});

test("ContainerCreating once the sandbox is ready is pulling the image; before, setting up", () => {
  expect(activityOf(creating(0, true), CONTAINER)).toEqual({ kind: "pulling", image: IMAGE });
  expect(activityOf(creating(0, false), CONTAINER)).toEqual({ kind: "settingUp" });
  expect(progressMessage([creating(0, true), creating(1, true), creating(2, false)], 3, CONTAINER)).toBe(
    `0/3 processes ready: 1 mounting volumes and setting up networking (wc-2); 2 pulling image ${IMAGE} (wc-0, wc-1)`,
  );
});

test("ErrImagePull and ImagePullBackOff carry the pull error", () => {
  const error = 'failed to pull and unpack image "registry.local/flow:nope": not found';
  for (const reason of ["ErrImagePull", "ImagePullBackOff"]) {
    const pod: V1Pod = {
      ...creating(0, true),
      status: { phase: "Pending", containerStatuses: [waitingIn(reason, error)] },
    };
    expect(activityOf(pod, CONTAINER)).toEqual({ kind: "pullFailed", image: IMAGE, error });
    expect(progressMessage([pod], 1, CONTAINER)).toBe(
      `0/1 processes ready: 1 cannot pull image ${IMAGE}: ${error} (wc-0)`,
    );
  }
});

test("another waiting reason is named with its message", () => {
  const pod: V1Pod = {
    ...creating(0, true),
    status: { phase: "Pending", containerStatuses: [waitingIn("CreateContainerConfigError", 'secret "s" not found')] },
  };
  expect(progressMessage([pod], 1, CONTAINER)).toBe(
    '0/1 processes ready: 1 waiting: CreateContainerConfigError: secret "s" not found (wc-0)',
  );
});

test("unscheduled and not yet scheduled pods, and pods not created at all", () => {
  const unschedulable: V1Pod = {
    ...podOf(df, 0, false),
    status: {
      phase: "Pending",
      conditions: [
        { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes: Insufficient cpu" },
      ],
    },
  };
  const fresh: V1Pod = { ...podOf(df, 1, false), status: { phase: "Pending" } };
  expect(progressMessage([unschedulable, fresh], 3, CONTAINER)).toBe(
    "0/3 processes ready: 1 cannot be scheduled: 0/1 nodes: Insufficient cpu (wc-0); 1 being scheduled (wc-1); 1 not created yet",
  );
});

test("every process ready: nothing else to say", () => {
  expect(progressMessage([podOf(df, 0, true), podOf(df, 1, true)], 2, CONTAINER)).toBe("2/2 processes ready");
});
