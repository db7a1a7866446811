// A dataflow's image, built without a Docker daemon: the bundle as one layer on top of the
// waxflow-runtime image, named by digest, then delivered where the user wants it.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  APP_DIR,
  appLayer,
  cacheDir,
  dataflowImage,
  formatRef,
  type ImageNames,
  imageSize,
  OciError,
  type OciImage,
  ociImage,
  parseRegistryRef,
  RegistryClient,
  type RegistryRef,
  readImage,
  writeArchive,
  writeLayout,
} from "@waxflow/oci";
import { type BundleOptions, bundleDataflow } from "../bundle.ts";
import { UsageError, UserError } from "../errors.ts";

/** The registry host of every dataflow image name: never pulled; images are loaded into the nodes and run by digest. */
export const REPOSITORY_HOST = "waxflow.local";

export type ImageStage = "bundle" | "base" | "layer" | "write" | "load" | "push";

export interface ImageProgress {
  readonly stage: ImageStage;
  readonly status: "start" | "progress" | "done";
  /** For `write`: bytes written so far, of `total`. */
  readonly bytes?: number;
  readonly total?: number;
  /** What the stage works on: a path, a digest, a target. */
  readonly detail?: string;
}

export interface BuildOptions {
  /** The dataflow's entry module (.ts or .js). */
  readonly entry: string;
  /** Image name under waxflow.local/: lowercase letters, digits, '.', '_' and '-'. */
  readonly name: string;
  /**
   * The waxflow-runtime image: an OCI layout directory or archive, or `registry:REF` to
   * pull it; default: the one images/ built.
   */
  readonly base?: string;
  /** Directory `entry` and `base` are relative to (default: the process's). */
  readonly cwd?: string;
  /** How the entry is checked to export a Dataflow: which export, with which variables. */
  readonly check?: BundleOptions;
  readonly onProgress?: (progress: ImageProgress) => void;
}

export interface BuiltImage {
  readonly image: OciImage;
  /** `sha256:` of the manifest. */
  readonly digest: string;
  /** `waxflow.local/<name>@sha256:...`: what a Dataflow's spec.image names. */
  readonly reference: string;
  /** `waxflow.local/<name>:<12 hex of the digest>`: Docker has no names by digest for loaded images. */
  readonly tag: string;
  /** The bundle inside the image, e.g. `/app/wordcount.js`. */
  readonly module: string;
  readonly appLayerDigest: string;
  /** Bytes of manifest, config and every layer. */
  readonly size: number;
  readonly timings: { readonly bundleMs: number; readonly baseMs: number; readonly layerMs: number };
}

/** The runtime image images/ built last (`npm run images`). */
export function defaultBase(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), "images", "current", "waxflow-runtime");
}

const NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

/** An image name from a file name: `My Flow.ts` gives `my-flow`. */
export function nameFromPath(path: string): string {
  const file = path.split(/[\\/]/).pop() ?? "";
  return file
    .replace(/\.[^.]*$/, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

async function timed<T>(
  stage: ImageStage,
  detail: string,
  progress: BuildOptions["onProgress"],
  work: () => Promise<T>,
): Promise<[T, number]> {
  progress?.({ stage, status: "start", detail });
  const t0 = performance.now();
  const value = await work();
  const ms = performance.now() - t0;
  progress?.({ stage, status: "done", detail });
  return [value, ms];
}

export async function buildDataflowImage(options: BuildOptions): Promise<BuiltImage> {
  const { name, onProgress } = options;
  if (!NAME.test(name) || name.length > 128)
    throw new UsageError(`image name "${name}" is not valid; use lowercase letters, digits, '.', '_' and '-'`);
  const cwd = options.cwd ?? process.cwd();
  const pulled = options.base?.startsWith(REGISTRY_PREFIX)
    ? parseRegistryRef(options.base.slice(REGISTRY_PREFIX.length), `--base ${options.base}`)
    : undefined;
  const basePath = options.base === undefined ? defaultBase() : resolve(cwd, options.base);
  const [bundle, bundleMs] = await timed("bundle", options.entry, onProgress, () =>
    bundleDataflow(options.entry, cwd, options.check),
  );
  const [base, baseMs] = await timed("base", pulled === undefined ? basePath : formatRef(pulled), onProgress, () => {
    if (pulled !== undefined) return new RegistryClient(pulled.host).pull(pulled);
    return readImage(basePath).catch((err: unknown) => {
      if (options.base !== undefined || !(err instanceof OciError)) throw err;
      throw new UserError(`no waxflow-runtime image at ${basePath}; build it with \`npm run images\` or pass --base`);
    });
  });
  const [made, layerMs] = await timed("layer", bundle.entry, onProgress, async () => {
    const layer = await appLayer([{ path: bundle.entry, contents: bundle.code }]);
    const made = dataflowImage(base, layer, bundle.entry);
    const blobs = new Map(base.blobs);
    blobs.set(layer.digest, layer.tar);
    return { image: ociImage(made, blobs), layer };
  });
  const { image, layer } = made;
  const repository = `${REPOSITORY_HOST}/${name}`;
  return {
    image,
    digest: image.digest,
    reference: `${repository}@${image.digest}`,
    tag: `${repository}:${image.digest.slice("sha256:".length, "sha256:".length + 12)}`,
    module: `/${APP_DIR}/${bundle.entry}`,
    appLayerDigest: layer.digest,
    size: imageSize(image),
    timings: { bundleMs, baseMs, layerMs },
  };
}

export type Target =
  | { readonly kind: "oci" | "oci-archive" | "docker-archive"; readonly path: string }
  | { readonly kind: "kind"; readonly cluster: string }
  | { readonly kind: "registry"; readonly ref: RegistryRef }
  | { readonly kind: "docker" };

export const TARGET_FORMS =
  "oci:DIR, oci-archive:FILE, docker-archive:FILE, kind:CLUSTER, registry:HOST/REPO[:TAG] or docker";
const REGISTRY_PREFIX = "registry:";

export function parseTarget(text: string): Target {
  if (text === "docker") return { kind: "docker" };
  const at = text.indexOf(":");
  const kind = text.slice(0, at);
  const rest = text.slice(at + 1);
  if (at > 0 && rest !== "") {
    if (kind === "oci" || kind === "oci-archive" || kind === "docker-archive") return { kind, path: rest };
    if (kind === "kind") return { kind, cluster: rest };
    if (kind === "registry") {
      const ref = parseRegistryRef(rest, `--output ${text}`);
      if (ref.digest !== undefined)
        throw new UsageError(`--output ${text}: leave the digest out; the image's own digest is pushed`);
      return { kind, ref };
    }
  }
  throw new UsageError(`--output ${text} is not a target; use ${TARGET_FORMS}`);
}

export interface Delivered {
  /** How to run the image there: by digest, except in Docker, which gets a tag. */
  readonly reference: string;
  readonly target: string;
  readonly ms: number;
  /** For a registry: blobs uploaded and blobs it already had. */
  readonly blobs?: { readonly uploaded: number; readonly skipped: number };
}

/** Writes or loads the image; kind and docker get an archive in a temporary folder. */
export async function deliverImage(
  built: BuiltImage,
  target: Target,
  options: {
    readonly cwd?: string;
    readonly onProgress?: (progress: ImageProgress) => void;
    readonly env?: NodeJS.ProcessEnv;
  } = {},
): Promise<Delivered> {
  const t0 = performance.now();
  const cwd = options.cwd ?? process.cwd();
  const progress = options.onProgress;
  const names: ImageNames = { reference: built.reference, tag: built.tag };
  const archive = async (file: string) => {
    progress?.({ stage: "write", status: "start", detail: file, bytes: 0, total: built.size });
    await writing(file, () =>
      writeArchive(built.image, file, names, (bytes, total) =>
        progress?.({ stage: "write", status: "progress", bytes, total }),
      ),
    );
    progress?.({ stage: "write", status: "done", detail: file, bytes: built.size, total: built.size });
  };
  const done = (reference: string, shown: string): Delivered => ({
    reference,
    target: shown,
    ms: performance.now() - t0,
  });

  if (target.kind === "oci") {
    const dir = resolve(cwd, target.path);
    progress?.({ stage: "write", status: "start", detail: dir });
    await writing(dir, () => writeLayout(built.image, dir, names));
    progress?.({ stage: "write", status: "done", detail: dir });
    return done(built.reference, `oci:${dir}`);
  }
  if (target.kind === "registry") {
    const where = formatRef(target.ref);
    progress?.({ stage: "push", status: "start", detail: where, bytes: 0, total: built.size });
    const pushed = await new RegistryClient(target.ref.host, options.env).push(built.image, target.ref, {
      onBytes: (bytes, total) => progress?.({ stage: "push", status: "progress", detail: where, bytes, total }),
    });
    progress?.({ stage: "push", status: "done", detail: where });
    return {
      ...done(pushed.reference, `registry:${where}`),
      blobs: { uploaded: pushed.uploaded, skipped: pushed.skipped },
    };
  }
  if (target.kind === "oci-archive" || target.kind === "docker-archive") {
    const file = resolve(cwd, target.path);
    await archive(file);
    return done(target.kind === "oci-archive" ? built.reference : built.tag, `${target.kind}:${file}`);
  }
  const tmp = await mkdtemp(join(tmpdir(), "waxctl-image-"));
  try {
    const file = join(tmp, "image.tar");
    await archive(file);
    const env = options.env ?? process.env;
    if (target.kind === "kind") {
      progress?.({ stage: "load", status: "start", detail: `kind cluster ${target.cluster}` });
      await run(
        env.KIND ?? "kind",
        ["load", "image-archive", file, "--name", target.cluster],
        "set KIND=/path/to/kind or put kind on PATH",
      );
      progress?.({ stage: "load", status: "done", detail: `kind cluster ${target.cluster}` });
      return done(built.reference, `kind:${target.cluster}`);
    }
    progress?.({ stage: "load", status: "start", detail: "docker" });
    await run(env.DOCKER ?? "docker", ["load", "-i", file], "install Docker or put docker on PATH");
    progress?.({ stage: "load", status: "done", detail: "docker" });
    return done(built.tag, "docker");
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A file system failure while writing, as one line that names where. */
async function writing(where: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (err) {
    if (typeof (err as NodeJS.ErrnoException).code !== "string") throw err;
    throw new UserError(`cannot write ${where}: ${(err as Error).message}`);
  }
}

/** Runs a tool to its end; a failure is one line with the tool's last words and a next step. */
function run(command: string, args: readonly string[], missing: string): Promise<void> {
  return new Promise((ok, fail) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    child.on("error", (err: NodeJS.ErrnoException) =>
      fail(new UserError(err.code === "ENOENT" ? `${command}: not found; ${missing}` : `${command}: ${err.message}`)),
    );
    child.on("close", (code) => {
      if (code === 0) ok();
      else {
        const last = stderr.trim().split("\n").pop() ?? "";
        fail(new UserError(`${command} ${args.slice(0, 2).join(" ")} failed (exit ${code}): ${last}`));
      }
    });
  });
}
