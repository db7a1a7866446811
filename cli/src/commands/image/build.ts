import { join } from "node:path";
import { Args, Flags } from "@oclif/core";
import { cacheDir } from "@waxflow/oci";
import { WaxctlCommand } from "../../base.ts";
import {
  type BuiltImage,
  buildDataflowImage,
  defaultBase,
  deliverImage,
  type ImageProgress,
  nameFromPath,
  parseTarget,
  TARGET_FORMS,
} from "../../image/build.ts";

export interface ImageBuildResult {
  readonly digest: string;
  readonly reference: string;
  /** The name to run it by where it was delivered (a tag in Docker). */
  readonly delivered: string;
  readonly target: string;
  readonly module: string;
  readonly size: number;
  /** For a registry target: blobs uploaded, and blobs the registry already had. */
  readonly blobs?: { readonly uploaded: number; readonly skipped: number };
  readonly timings: BuiltImage["timings"] & { readonly deliverMs: number; readonly totalMs: number };
}

const STARTING: Record<ImageProgress["stage"], string> = {
  bundle: "bundling",
  base: "reading base image",
  layer: "adding layer",
  write: "writing",
  load: "loading into",
  push: "pushing to",
};
const ms = (n: number): string => (n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(1)} s`);
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

export default class ImageBuild extends WaxctlCommand {
  static override summary = "Build a dataflow's image, without a Docker daemon.";
  static override description =
    `Bundles PATH and its imports with esbuild and adds them as one layer (/app) on top of the waxflow-runtime image, read from an OCI layout or archive, or pulled from a registry (--base registry:REF). The image is named by digest, waxflow.local/NAME@sha256:..., and the same code always gives the same digest.

Targets: ${TARGET_FORMS}. kind:CLUSTER runs \`kind load image-archive\` (set KIND to its path if kind is not on PATH); docker runs \`docker load\` and tags the image NAME:<12 hex of the digest>, as Docker keeps no names by digest for loaded images. registry:HOST/REPO[:TAG] uploads the blobs the registry lacks and the manifest (by digest, and under TAG if given), with your Docker credentials (config.json, credential helpers); loopback registries and those in WAXCTL_INSECURE_REGISTRIES (HOST:PORT,...) are spoken to over plain HTTP.`;

  static override examples = [
    {
      description: "Build into the local cache and print the digest:",
      command: "<%= config.bin %> <%= command.id %> examples/wordcount.ts",
    },
    {
      description: "Load it into a kind cluster:",
      command: "<%= config.bin %> <%= command.id %> examples/wordcount.ts -o kind:waxflow-e2e",
    },
    {
      description: "Write an archive that both `docker load` and `ctr import` read:",
      command: "<%= config.bin %> <%= command.id %> flow.ts -N orders -o oci-archive:orders.tar --json",
    },
    {
      description: "Push to a registry, building on a runtime image pulled from it:",
      command:
        "<%= config.bin %> <%= command.id %> flow.ts -N orders --base registry:ghcr.io/acme/waxflow-runtime:0.1.0 -o registry:ghcr.io/acme/orders:v1",
    },
  ];

  static override enableJsonFlag = true;

  static override args = {
    path: Args.string({ description: "The dataflow's entry module (.ts or .js).", required: true }),
  };

  static override flags = {
    name: Flags.string({
      char: "N",
      description: "Image name under waxflow.local/ (default: the file name, e.g. wordcount).",
      helpValue: "NAME",
    }),
    base: Flags.string({
      description: `OCI layout directory or archive of the waxflow-runtime image, or registry:HOST/REPO[:TAG|@DIGEST] (default: the one \`npm run images\` built, ${defaultBase().replace(cacheDir(), "$WAXFLOW_CACHE")}).`,
      helpValue: "PATH",
    }),
    check: Flags.boolean({
      description:
        "Load the bundle here first and refuse it unless it exports a Dataflow. --no-check skips that, for a module that loads only in its pods.",
      allowNo: true,
      default: true,
    }),
    output: Flags.string({
      char: "o",
      description: `Where the image goes: ${TARGET_FORMS} (default: the OCI layout $WAXFLOW_CACHE/images/dataflows).`,
      helpValue: "TARGET",
    }),
  };

  async run(): Promise<ImageBuildResult> {
    const { args, flags } = await this.parse(ImageBuild);
    const t0 = performance.now();
    const target = parseTarget(flags.output ?? `oci:${join(cacheDir(), "images", "dataflows")}`);
    const onProgress = (p: ImageProgress): void => {
      if (!this.jsonEnabled() && p.status === "start") this.logToStderr(`${STARTING[p.stage]} ${p.detail ?? ""}`);
    };
    const built = await buildDataflowImage({
      entry: args.path,
      name: flags.name ?? nameFromPath(args.path),
      base: flags.base,
      check: { check: flags.check },
      onProgress,
    });
    const delivered = await deliverImage(built, target, { onProgress });
    const totalMs = performance.now() - t0;
    this.log(delivered.reference);
    const blobs =
      delivered.blobs === undefined
        ? ""
        : ` (${delivered.blobs.uploaded} blobs uploaded, ${delivered.blobs.skipped} already there)`;
    this.logToStderr(
      `${mb(built.size)}, ${built.image.manifest.layers.length} layers; bundle ${ms(built.timings.bundleMs)}, image ${ms(built.timings.baseMs + built.timings.layerMs)}, ${delivered.target}${blobs} ${ms(delivered.ms)}; total ${ms(totalMs)}`,
    );
    // What a Dataflow written by hand needs; stdout keeps only the reference, for scripts.
    this.logToStderr(`spec.image:  ${target.kind === "registry" ? delivered.reference : built.reference}`);
    this.logToStderr(`spec.module: ${built.module}`);
    return {
      digest: built.digest,
      reference: built.reference,
      delivered: delivered.reference,
      target: delivered.target,
      module: built.module,
      size: built.size,
      ...(delivered.blobs === undefined ? {} : { blobs: delivered.blobs }),
      timings: {
        bundleMs: Math.round(built.timings.bundleMs),
        baseMs: Math.round(built.timings.baseMs),
        layerMs: Math.round(built.timings.layerMs),
        deliverMs: Math.round(delivered.ms),
        totalMs: Math.round(totalMs),
      },
    };
  }
}
