// A dataflow image delivered with `kind load image-archive` starts in a pod by its digest
// reference, with nothing pulled: the image module alone, without waxctl or the operator.
// Runs in the kind suite (e2e/run.sh brings the cluster up and puts kind on PATH).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { buildDataflowImage, deliverImage } from "../cli/src/image/build.ts";
import { buildImages } from "../images/build.ts";
import { CLUSTER, kubectl, tryKubectl } from "./lib/cluster.ts";

const FLOW = `import { Dataflow } from "waxflow";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";
export const flow = new Dataflow("kind_image");
op.output("out", op.map("fmt", op.input("inp", flow, new TestingSource([1, 2, 3])), (n) => \`n=\${n * ${process.pid}}\`), new StdOutSink());
`;

test("a dataflow image loaded with kind starts in a pod by its digest reference", async () => {
  const images = await buildImages();
  const dir = mkdtempSync(join(tmpdir(), "waxflow-kind-image-"));
  const namespace = `waxflow-image-test-${process.pid}`;
  try {
    // The pid in the code makes a new image, so this load is the one that names it.
    writeFileSync(join(dir, "flow.ts"), FLOW);
    const built = await buildDataflowImage({
      entry: join(dir, "flow.ts"),
      name: "kind-image-test",
      base: images.runtime.layout,
    });
    const delivered = await deliverImage(built, { kind: "kind", cluster: CLUSTER });
    expect(delivered.reference).toBe(built.reference);
    await kubectl("create", "namespace", namespace);
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "flow", namespace },
      spec: {
        restartPolicy: "Never",
        containers: [
          {
            name: "flow",
            image: built.reference,
            imagePullPolicy: "IfNotPresent",
            // Quiet: the log is then the dataflow's output alone, without the runtime's lines.
            env: [{ name: "WAXFLOW_QUIET", value: "true" }],
            securityContext: { readOnlyRootFilesystem: true, runAsNonRoot: true, allowPrivilegeEscalation: false },
          },
        ],
      },
    };
    writeFileSync(join(dir, "pod.json"), JSON.stringify(pod));
    await kubectl("apply", "-f", join(dir, "pod.json"));
    const done = await tryKubectl(
      "wait",
      "-n",
      namespace,
      "pod/flow",
      "--for=jsonpath={.status.phase}=Succeeded",
      "--timeout=90s",
    );
    const events = await kubectl(
      "get",
      "events",
      "-n",
      namespace,
      "-o",
      "custom-columns=REASON:.reason,MESSAGE:.message",
    );
    expect({ waited: done.code, events }).toMatchObject({ waited: 0 });
    expect(events).toContain("already present on machine");
    expect(await kubectl("logs", "-n", namespace, "flow")).toBe(
      [1, 2, 3].map((n) => `n=${n * process.pid}\n`).join(""),
    );
  } finally {
    await tryKubectl("delete", "namespace", namespace, "--wait=false");
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
