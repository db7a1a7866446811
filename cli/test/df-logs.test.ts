// `waxctl df logs`: which pods -f follows, and what it says for a pod with nothing to show.
import type { V1Pod } from "@kubernetes/client-node";
import { expect, test } from "vitest";
import { containerRun, emptyLogNotice, toFollow } from "../src/commands/df/logs.ts";

function pod(name: string, uid: string, state: "waiting" | "running" | "terminated" | "none", restarts = 0): V1Pod {
  const container =
    state === "none"
      ? []
      : [
          {
            name: "waxflow",
            image: "x",
            imageID: "",
            ready: state === "running",
            restartCount: restarts,
            state:
              state === "waiting"
                ? { waiting: { reason: "ContainerCreating" } }
                : state === "running"
                  ? { running: {} }
                  : { terminated: { exitCode: 1, reason: "Error" } },
          },
        ];
  return {
    metadata: { name, uid },
    status: { phase: state === "none" ? "Pending" : "Running", containerStatuses: container },
  };
}

test("a pod with nothing to show is named, with its state unless it runs", () => {
  expect(emptyLogNotice(pod("counts-1", "u1", "running"))).toBe("pod counts-1: no log lines yet");
  expect(emptyLogNotice(pod("counts-1", "u1", "waiting"))).toBe("pod counts-1: no log lines yet (ContainerCreating)");
  expect(emptyLogNotice(pod("counts-2", "u2", "none"))).toBe("pod counts-2: no log lines yet (Pending)");
});

test("each run of a container is followed once: a replaced pod or a restarted container again", () => {
  expect(containerRun(pod("counts-0", "u0", "none"))).toBeUndefined();
  expect(containerRun(pod("counts-0", "u0", "waiting"))).toBeUndefined();
  expect(containerRun(pod("counts-0", "u0", "running", 2))).toBe("u0/2");
  expect(containerRun(pod("counts-0", "u0", "terminated", 2))).toBe("u0/2");

  const followed = new Set(["u0/0", "u1/0"]);
  const names = (pods: V1Pod[]) => toFollow(pods, followed).map((p) => p.metadata?.name);
  // Still the same runs, a pod not started yet, a stopped container already followed: nothing new.
  expect(
    names([pod("counts-0", "u0", "running"), pod("counts-1", "u1", "terminated"), pod("counts-2", "u2", "waiting")]),
  ).toEqual([]);
  // A new pod (scaled up), a pod replaced under the same name (new uid), a restarted container.
  expect(
    names([pod("counts-0", "u0", "running", 1), pod("counts-1", "u9", "running"), pod("counts-2", "u2", "running")]),
  ).toEqual(["counts-0", "counts-1", "counts-2"]);
});
