// When `waxctl df scale` refuses or warns because file output stays on each pod: the
// directories a process reports against its pod's volumes, and the note when none answers.
import type { V1Pod, V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import type { Dataflow } from "@waxflow/crds";
import { expect, test } from "vitest";
import { fileOutputNote, perPodOutputs, refusal } from "../src/commands/df/scale.ts";

function dataflow(spec: Partial<Dataflow["spec"]>): Dataflow {
  return {
    apiVersion: "waxflow.io/v1alpha1",
    kind: "Dataflow",
    metadata: { name: "counts", namespace: "streams" },
    spec: { image: "x@sha256:0", module: "/app/counts.js", processes: 2, ...spec },
  };
}

test("recovery on and only per-pod volumes: the note, with the way back", () => {
  const perPod = { spec: { containers: [], volumes: [{ name: "scratch", emptyDir: {} }] } };
  for (const podTemplate of [undefined, perPod]) {
    expect(fileOutputNote(dataflow({ recovery: { enabled: true }, podTemplate }), 3)).toBe(
      "note: FileSink and DirSink files stay on the pod that wrote them, and these pods mount no shared volume: " +
        "if this dataflow writes files on each pod's own volume, the rescaled processes stop at start saying that " +
        "file output across a rescale needs a shared volume (`waxctl df logs counts -n streams`); " +
        '`waxctl df scale counts -n streams -p 3` goes back. The README\'s "File output on Kubernetes" shows how to mount one',
    );
  }
});

test("no note without recovery (files start over), or with a volume the pods can share", () => {
  expect(fileOutputNote(dataflow({}), 3)).toBeUndefined();
  const shared = {
    spec: { containers: [], volumes: [{ name: "output", persistentVolumeClaim: { claimName: "counts-output" } }] },
  };
  expect(fileOutputNote(dataflow({ recovery: { enabled: true }, podTemplate: shared }), 3)).toBeUndefined();
});

/** A pod as the StatefulSet makes it: the recovery claim of its own, and what the pod template adds. */
function pod(extra: { volumes?: V1Volume[]; mounts?: V1VolumeMount[] } = {}): V1Pod {
  return {
    metadata: { name: "counts-0" },
    spec: {
      containers: [
        {
          name: "waxflow",
          volumeMounts: [{ name: "recovery", mountPath: "/var/lib/waxflow/recovery" }, ...(extra.mounts ?? [])],
        },
      ],
      volumes: [
        { name: "recovery", persistentVolumeClaim: { claimName: "recovery-counts-0" } },
        ...(extra.volumes ?? []),
      ],
    },
  };
}

const outputs = (directory: string) => [{ step: "running-count.out", directories: [directory] }];

test("file output on the recovery volume, an emptyDir or no volume at all stays on its pod", () => {
  expect(perPodOutputs(outputs("/var/lib/waxflow/recovery/output"), pod())).toEqual([
    { step: "running-count.out", directory: "/var/lib/waxflow/recovery/output", volume: "recovery" },
  ]);
  const scratch = pod({
    volumes: [{ name: "scratch", emptyDir: {} }],
    mounts: [{ name: "scratch", mountPath: "/out" }],
  });
  expect(perPodOutputs(outputs("/out"), scratch)).toEqual([
    { step: "running-count.out", directory: "/out", volume: "scratch" },
  ]);
  // "/var/lib/waxflow/recovery-output" is not under the recovery mount: the container's own file system.
  expect(perPodOutputs(outputs("/var/lib/waxflow/recovery-output"), pod())).toEqual([
    { step: "running-count.out", directory: "/var/lib/waxflow/recovery-output", volume: undefined },
  ]);
  expect(
    refusal("counts", { step: "running-count.out", directory: "/var/lib/waxflow/recovery/output", volume: "recovery" }),
  ).toBe(
    'dataflow counts writes the files of step "running-count.out" to /var/lib/waxflow/recovery/output, on each pod\'s own volume "recovery": ' +
      'file output across a rescale needs a shared volume (the README\'s "File output on Kubernetes" shows how to mount one); ' +
      "add --force to scale anyway (the rescaled processes stop at start if a partition's file is not where they run)",
  );
});

test("file output on a claim every pod mounts (the deepest mount decides) is shared", () => {
  const shared = pod({
    volumes: [{ name: "output", persistentVolumeClaim: { claimName: "counts-output" } }],
    mounts: [{ name: "output", mountPath: "/var/lib/waxflow/recovery/shared/" }],
  });
  expect(perPodOutputs(outputs("/var/lib/waxflow/recovery/shared/counts"), shared)).toEqual([]);
  expect(perPodOutputs(outputs("/var/lib/waxflow/recovery/counts"), shared)).toHaveLength(1);
});
