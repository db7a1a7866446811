// A dataflow image delivered with `kind load image-archive` starts in a pod by its digest
// reference, with nothing pulled: the image module alone, without waxctl or the operator.
// Runs in the kind suite (e2e/run.sh brings the cluster up first).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { buildDataflowImage, deliverImage } from "../cli/src/image/build.ts";
import { buildImages } from "../images/build.ts";

const ROOT = join(import.meta.dirname, "..");
const [kind, kubeconfig, cluster] = execFileSync(
  "bash",
  [
    "-c",
    'source e2e/toolchain/lib.sh && echo "$WAXFLOW_CACHE/kind/$KIND_VERSION/bin/kind" "$WAXFLOW_CACHE/kind/$KIND_CLUSTER_NAME.kubeconfig" "$KIND_CLUSTER_NAME"',
  ],
  { cwd: ROOT, encoding: "utf8" },
)
  .trim()
  .split(" ") as [string, string, string];
const kubectl = (...args: string[]) =>
  spawnSync("kubectl", ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8" });
const missing = !existsSync(kind)
  ? `kind is not built at ${kind}`
  : !existsSync(kubeconfig) || kubectl("get", "--raw", "/readyz").status !== 0
    ? `the kind cluster ${cluster} is not up`
    : undefined;

const FLOW = `import { Dataflow } from "waxflow";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";
export const flow = new Dataflow("kind_image");
op.output("out", op.map("fmt", op.input("inp", flow, new TestingSource([1, 2, 3])), (n) => \`n=\${n * ${process.pid}}\`), new StdOutSink());
`;

test("a dataflow image loaded with kind starts in a pod by its digest reference", async () => {
  expect(missing, "run the kind suite with npm run e2e (bash e2e/toolchain/cluster.sh up)").toBeUndefined();
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
    const delivered = await deliverImage(built, { kind: "kind", cluster }, { env: { ...process.env, KIND: kind } });
    expect(delivered.reference).toBe(built.reference);
    expect(kubectl("create", "namespace", namespace).status).toBe(0);
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
            securityContext: { readOnlyRootFilesystem: true, runAsNonRoot: true, allowPrivilegeEscalation: false },
          },
        ],
      },
    };
    const apply = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "apply", "-f", "-"], {
      input: JSON.stringify(pod),
    });
    expect(apply.status).toBe(0);
    const done = kubectl(
      "wait",
      "-n",
      namespace,
      "pod/flow",
      "--for=jsonpath={.status.phase}=Succeeded",
      "--timeout=90s",
    );
    const events = kubectl("get", "events", "-n", namespace, "-o", "custom-columns=REASON:.reason,MESSAGE:.message");
    expect({ waited: done.status, events: events.stdout }).toMatchObject({ waited: 0 });
    expect(events.stdout).toContain("already present on machine");
    expect(kubectl("logs", "-n", namespace, "flow").stdout).toBe(
      [1, 2, 3].map((n) => `n=${n * process.pid}\n`).join(""),
    );
  } finally {
    kubectl("delete", "namespace", namespace, "--wait=false");
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
