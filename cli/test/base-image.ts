// What tests that build dataflow images start from: a small stand-in for the
// waxflow-runtime image (one layer, the runtime's entrypoint) and two dataflow files.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { baseImage, type OciImage, ociImage, tarLayer, writeLayout } from "@waxflow/oci";

export async function standInBase(dir: string): Promise<OciImage> {
  const layer = await tarLayer([
    { path: "usr/local/bin/node", type: "file", contents: Buffer.from("node"), mode: 0o755 },
  ]);
  const made = baseImage([{ layer, createdBy: "test" }], { Entrypoint: ["/usr/local/bin/node", "cli.js", "run"] });
  const image = ociImage(made, new Map([[layer.digest, layer.tar]]));
  await writeLayout(image, dir, { reference: `waxflow.local/base@${image.digest}`, tag: "waxflow.local/base:1" });
  return image;
}

const FLOW = `import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";
export const flow = new Dataflow("f");
op.inspect("see", op.input("inp", flow, new TestingSource([1, 2])));
`;

/** A temporary folder with `flow` and `other` (the same dataflow with other code) written, and where `base` goes. */
export function imageWork(prefix: string): { work: string; base: string; flow: string; other: string } {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const files = { work, base: join(work, "base"), flow: join(work, "flow.ts"), other: join(work, "other.ts") };
  writeFileSync(files.flow, FLOW);
  writeFileSync(files.other, FLOW.replace("[1, 2]", "[1, 2, 3]"));
  return files;
}
