/**
 * Time to build a dataflow's image (items = 1 build; shown in seconds per run), on the
 * runtime image `npm run images` makes (runtime/dist and the image built first), beside the
 * bundle alone.
 * Each build writes the archive kind and docker load (~150 MB).
 * `image-build`: warm, in this process (esbuild running, base blobs in the page cache);
 * target <= 3 s. `image-build-cold`: a new `waxctl image build` process per run (Node,
 * oclif and esbuild start), beside a new process that only bundles; target <= 5 s. Its
 * CPU column counts this process only, not the child's.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleDataflow } from "../../cli/src/bundle.ts";
import { buildDataflowImage, deliverImage } from "../../cli/src/image/build.ts";
import { buildImages } from "../../images/build.ts";
import type { BenchCase, Runners } from "../harness.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const ENTRY = "examples/wordcount.ts";
const dir = mkdtempSync(join(tmpdir(), "waxflow-bench-image-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

// The runtime image holds runtime/dist: build it as `npm run images` does, so a fresh clone
// (no dist yet) and edited sources (a stale dist) both measure the current runtime.
async function runtimeBase(): Promise<string> {
  const tsc = spawnSync("npm", ["run", "--silent", "build"], { cwd: ROOT, encoding: "utf8" });
  if (tsc.status !== 0) throw new Error(`npm run build failed: ${tsc.stdout}${tsc.stderr}`);
  return (await buildImages()).runtime.layout;
}

function node(args: readonly string[]): number {
  const run = spawnSync(process.execPath, ["--conditions=waxflow-source", ...args], { cwd: ROOT, encoding: "utf8" });
  if (run.status !== 0) throw new Error(`node ${args.join(" ")} failed: ${run.stderr}`);
  return 1;
}

export const imageBuildWarm: BenchCase = {
  title: "dataflow image (wordcount) built and written as an archive, warm; loop: bundle alone",
  targets: { maxSeconds: 3 },
  async prepare(): Promise<Runners> {
    const base = await runtimeBase();
    return {
      async engine() {
        const built = await buildDataflowImage({ entry: ENTRY, name: "wordcount", base, cwd: ROOT });
        await deliverImage(built, { kind: "oci-archive", path: join(dir, "image.tar") });
        return 1;
      },
      async loop() {
        await bundleDataflow(ENTRY, ROOT);
        return 1;
      },
    };
  },
};

export const imageBuildCold: BenchCase = {
  title: "`waxctl image build` in a new process (archive); loop: a new process that only bundles",
  targets: { maxSeconds: 5 },
  async prepare(): Promise<Runners> {
    const base = await runtimeBase();
    const out = `oci-archive:${join(dir, "image.tar")}`;
    const bundleOnly = `import("./cli/src/bundle.ts").then((m) => m.bundleDataflow(${JSON.stringify(ENTRY)}, process.cwd()))`;
    return {
      engine: async () => node(["cli/bin/run.js", "image", "build", ENTRY, "--base", base, "-o", out, "--json"]),
      loop: async () => node(["-e", bundleOnly]),
    };
  },
};
