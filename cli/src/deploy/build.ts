// Deploy's build step: the image module builds the dataflow's image and delivers it to the
// cluster's nodes (kind) or to a registry they pull from; this maps its progress onto
// deploy's stages (bundle, build, load or push).

import { formatRef, type RegistryPrefix, repositoryUnder } from "@waxflow/oci";
import { buildDataflowImage, deliverImage, type ImageProgress, type ImageStage, type Target } from "../image/build.ts";
import { bytes } from "../ui/format.ts";
import type { Progress, Stage } from "../ui/progress.ts";
import type { BuildImage } from "./deploy.ts";

const TITLE: Readonly<Record<ImageStage, string>> = {
  bundle: "bundle",
  base: "build",
  layer: "build",
  write: "load",
  load: "load",
  push: "push",
};

const DOING: Readonly<Record<ImageStage, (detail: string) => string>> = {
  bundle: (d) => d,
  base: () => "reading the waxflow-runtime image",
  layer: () => "adding the dataflow layer",
  write: () => "writing the image archive",
  load: (d) => `loading into ${d}`,
  push: (d) => `pushing to ${d}`,
};

/** Deploy's stages for the image module's progress reports; `finish` ends one with a summary. */
class ImageStages {
  readonly #progress: Progress;
  readonly #open = new Map<string, Stage>();

  constructor(progress: Progress) {
    this.#progress = progress;
  }

  report = (p: ImageProgress): void => {
    const title = TITLE[p.stage];
    let stage = this.#open.get(title);
    if (stage === undefined) {
      stage = this.#progress.stage(title);
      this.#open.set(title, stage);
    }
    const transfer = p.bytes !== undefined && p.total !== undefined ? { done: p.bytes, total: p.total } : undefined;
    if (p.status !== "done" || p.stage !== "bundle") stage.update(DOING[p.stage](p.detail ?? ""), transfer);
    else this.finish("bundle", p.detail ?? "");
  };

  finish(title: string, summary: string): void {
    this.#open.get(title)?.done(summary);
    this.#open.delete(title);
  }

  failAll(): void {
    for (const stage of this.#open.values()) stage.fail("failed");
    this.#open.clear();
  }
}

/** Where deploy sends the image: into a kind cluster's nodes, or to `HOST/PREFIX/<name>` in a registry. */
export type Destination = { readonly kindCluster: string } | { readonly registry: RegistryPrefix };

/** Builds on `base` (default: the runtime image `npm run images` made) and delivers to `destination`. */
export function buildAndDeliver(destination: Destination, base: string | undefined, cwd: string): BuildImage {
  return async ({ path, name, progress, check }) => {
    const stages = new ImageStages(progress);
    try {
      const built = await buildDataflowImage({ entry: path, name, base, cwd, check, onProgress: stages.report });
      stages.finish("build", `${built.digest.slice(0, "sha256:".length + 12)}, ${bytes(built.size)}`);
      if ("kindCluster" in destination) {
        const target: Target = { kind: "kind", cluster: destination.kindCluster };
        await deliverImage(built, target, { cwd, onProgress: stages.report });
        stages.finish("load", `kind cluster ${destination.kindCluster}`);
        return { reference: built.reference, module: built.module };
      }
      const ref = repositoryUnder(destination.registry, name);
      const pushed = await deliverImage(built, { kind: "registry", ref }, { cwd, onProgress: stages.report });
      const { uploaded = 0, skipped = 0 } = pushed.blobs ?? {};
      stages.finish("push", `${formatRef(ref)}: ${uploaded} blobs uploaded, ${skipped} already there`);
      return { reference: pushed.reference, module: built.module };
    } catch (err) {
      stages.failAll();
      throw err;
    }
  };
}

/** kind names its kubeconfig contexts `kind-<cluster>`. */
export function kindClusterOf(context: string): string | undefined {
  return context.startsWith("kind-") && context.length > "kind-".length ? context.slice("kind-".length) : undefined;
}
