// When `waxctl df scale` warns that file output stays on each pod: recovery on, and no
// volume the pods could share.
import type { Dataflow } from "@waxflow/crds";
import { expect, test } from "vitest";
import { fileOutputNote } from "../src/commands/df/scale.ts";

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
