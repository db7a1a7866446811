// Images on disk: OCI image layouts (a directory) and archives (one tar). An archive holds an
// OCI layout and Docker's manifest.json beside it, so one file serves `docker load` (which
// reads manifest.json) and containerd's `ctr import` / `kind load image-archive` (which read
// index.json and keep the manifest, hence the digest, as it is).
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { extract, pack } from "tar-stream";
import { OciError } from "./errors.ts";
import {
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  INDEX_MEDIA_TYPE,
  MANIFEST_MEDIA_TYPE,
  type NewImage,
} from "./image.ts";
import { EPOCH } from "./layer.ts";

/** An image and where its blobs are: bytes in memory, or the path of a file holding them. */
export interface OciImage {
  /** `sha256:` of the manifest. */
  readonly digest: string;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
  readonly blobs: ReadonlyMap<string, Buffer | string>;
}

/** Names an image gets where it is written: `reference` in OCI and containerd, `tag` in Docker. */
export interface ImageNames {
  readonly reference: string;
  readonly tag: string;
}

const REF_NAME = "org.opencontainers.image.ref.name";
// containerd names the imported image after this annotation exactly, digest references included.
const CONTAINERD_NAME = "io.containerd.image.name";
const LAYOUT = JSON.stringify({ imageLayoutVersion: "1.0.0" });

/** `$WAXFLOW_CACHE`, else `$XDG_CACHE_HOME/waxflow`, else `~/.cache/waxflow` (as e2e/toolchain). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WAXFLOW_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "waxflow");
}

/** The image whose manifest, config and layer blobs these are. */
export function ociImage(made: NewImage, layers: ReadonlyMap<string, Buffer | string>): OciImage {
  const blobs = new Map(layers);
  blobs.set(made.manifest.descriptor.digest, made.manifest.bytes);
  blobs.set(made.config.descriptor.digest, made.config.bytes);
  return {
    digest: made.digest,
    manifest: JSON.parse(made.manifest.bytes.toString()) as ImageManifest,
    config: JSON.parse(made.config.bytes.toString()) as ImageConfig,
    blobs,
  };
}

function manifestDescriptor(image: OciImage): Descriptor {
  const bytes = image.blobs.get(image.digest);
  if (!Buffer.isBuffer(bytes)) throw new Error(`manifest ${image.digest} is not in memory`);
  return { mediaType: MANIFEST_MEDIA_TYPE, digest: image.digest, size: bytes.length };
}

/** Manifest, config and layers, each once, in that order. */
function descriptors(image: OciImage): Descriptor[] {
  const all = [manifestDescriptor(image), image.manifest.config, ...image.manifest.layers];
  return all.filter((d, i) => all.findIndex((o) => o.digest === d.digest) === i);
}

/** Bytes of manifest, config and layers together. */
export function imageSize(image: OciImage): number {
  return descriptors(image).reduce((sum, d) => sum + d.size, 0);
}

const blobPath = (digest: string): string => `blobs/${digest.replace(":", "/")}`;

function source(image: OciImage, digest: string): Buffer | string {
  const found = image.blobs.get(digest);
  if (found === undefined) throw new Error(`blob ${digest} of image ${image.digest} is missing`);
  return found;
}

/**
 * The index entries naming the image: one per distinct name. Kubernetes needs both in
 * containerd: the digest reference to find the image, and the tag because the CRI plugin
 * (containerd 1.6) creates containers from the image's first name, tags ranked first, and
 * the `import-<date>@sha256:` name `kind load` adds otherwise comes first and fails.
 */
function named(image: OciImage, names: ImageNames): Descriptor[] {
  return [...new Set([names.reference, names.tag])].map((name) => ({
    ...manifestDescriptor(image),
    annotations: { [REF_NAME]: name, [CONTAINERD_NAME]: name },
  }));
}

function index(manifests: readonly Descriptor[]): string {
  return JSON.stringify({ schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests });
}

/**
 * Adds the image to the OCI layout at `dir` (created if absent) under `names.reference`,
 * replacing an image of that name. Blobs on disk are hard-linked when they can be.
 */
export async function writeLayout(image: OciImage, dir: string, names: ImageNames): Promise<void> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  for (const d of descriptors(image)) {
    const to = join(dir, blobPath(d.digest));
    if ((await stat(to).catch(() => undefined))?.size === d.size) continue;
    const from = source(image, d.digest);
    const tmp = `${to}.${process.pid}.tmp`;
    if (Buffer.isBuffer(from)) await writeFile(tmp, from);
    else await link(from, tmp).catch(() => copyFile(from, tmp));
    await rename(tmp, to);
  }
  const indexFile = join(dir, "index.json");
  const existing = await readFile(indexFile, "utf8").then(
    (text) => (JSON.parse(text) as { manifests?: Descriptor[] }).manifests ?? [],
    () => [],
  );
  const ours = named(image, names);
  const taken = new Set(ours.map((d) => d.annotations?.[REF_NAME]));
  const others = existing.filter((d) => !taken.has(d.annotations?.[REF_NAME]));
  await writeFile(join(dir, "oci-layout"), LAYOUT);
  await writeFile(`${indexFile}.${process.pid}.tmp`, index([...others, ...ours]));
  await rename(`${indexFile}.${process.pid}.tmp`, indexFile);
}

/**
 * Writes the image as one tar: an OCI layout plus Docker's manifest.json. `onBytes` hears
 * how many bytes of the total are written so far.
 */
export async function writeArchive(
  image: OciImage,
  file: string,
  names: ImageNames,
  onBytes?: (done: number, total: number) => void,
): Promise<void> {
  const all = descriptors(image);
  const docker = [
    {
      Config: blobPath(image.manifest.config.digest),
      RepoTags: [names.tag],
      Layers: image.manifest.layers.map((l) => blobPath(l.digest)),
    },
  ];
  const total = all.reduce((sum, d) => sum + d.size, 0);
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const tar = pack();
  const header = { mtime: EPOCH, uid: 0, gid: 0, uname: "", gname: "" };
  const entries = async (): Promise<void> => {
    const small = (name: string, text: string) => tar.entry({ ...header, name, mode: 0o644 }, text);
    small("oci-layout", LAYOUT);
    small("index.json", index(named(image, names)));
    small("manifest.json", JSON.stringify(docker));
    tar.entry({ ...header, name: "blobs/", type: "directory", mode: 0o755 });
    tar.entry({ ...header, name: "blobs/sha256/", type: "directory", mode: 0o755 });
    let done = 0;
    for (const d of all) {
      const from = source(image, d.digest);
      const entry = { ...header, name: blobPath(d.digest), mode: 0o644, size: d.size };
      if (Buffer.isBuffer(from)) tar.entry(entry, from);
      else await pipeline(createReadStream(from), tar.entry(entry));
      done += d.size;
      onBytes?.(done, total);
    }
    tar.finalize();
  };
  try {
    await Promise.all([entries(), pipeline(tar, createWriteStream(tmp))]);
    await rename(tmp, file);
  } catch (err) {
    tar.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
}

/** An OCI layout's index.json, or why `dir` is not a layout. */
async function readIndex(dir: string): Promise<Descriptor[]> {
  const text = await readFile(join(dir, "index.json"), "utf8").catch(() => undefined);
  if (text === undefined) throw new OciError(`${dir} is not an OCI image layout (no index.json)`);
  return (JSON.parse(text) as { manifests?: Descriptor[] }).manifests ?? [];
}

/**
 * Reads an image from an OCI layout directory or an OCI archive (unpacked once into the
 * cache, keyed by the file's path, size and time). `name` picks one of several images.
 */
export async function readImage(path: string, name?: string): Promise<OciImage> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new OciError(`${path}: no such image layout or archive`);
  const dir = info.isDirectory() ? path : await unpackArchive(resolve(path), info.size, info.mtimeMs);
  const manifests = await readIndex(dir);
  const names = (d: Descriptor) => [d.annotations?.[REF_NAME], d.annotations?.[CONTAINERD_NAME]];
  const matching = name === undefined ? manifests : manifests.filter((d) => names(d).includes(name));
  // An image listed under several names is still one image.
  const chosen = matching.filter((d, i) => matching.findIndex((o) => o.digest === d.digest) === i);
  const [descriptor] = chosen;
  if (descriptor === undefined || chosen.length > 1) {
    const all = manifests.map((d) => names(d)[0] ?? d.digest).join(", ");
    throw new OciError(
      `${path} holds ${chosen.length === 0 ? "no image" : "several images"}${name === undefined ? "" : ` named ${name}`}; images: ${all || "none"}`,
    );
  }
  if (descriptor.mediaType !== MANIFEST_MEDIA_TYPE)
    throw new OciError(`${path}: ${descriptor.mediaType} is not supported; use a single-platform image`);
  const file = (digest: string) => join(dir, blobPath(digest));
  const manifestBytes = await readFile(file(descriptor.digest));
  const manifest = JSON.parse(manifestBytes.toString()) as ImageManifest;
  const configBytes = await readFile(file(manifest.config.digest));
  const blobs = new Map<string, Buffer | string>([
    [descriptor.digest, manifestBytes],
    [manifest.config.digest, configBytes],
  ]);
  for (const layer of manifest.layers) blobs.set(layer.digest, file(layer.digest));
  return { digest: descriptor.digest, manifest, config: JSON.parse(configBytes.toString()) as ImageConfig, blobs };
}

async function unpackArchive(file: string, size: number, mtimeMs: number): Promise<string> {
  const key = createHash("sha256").update(`${file}\0${size}\0${mtimeMs}`).digest("hex").slice(0, 32);
  const dir = join(cacheDir(), "images", "unpacked", key);
  if ((await stat(join(dir, "index.json")).catch(() => undefined)) !== undefined) return dir;
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  const ex = extract();
  const unpack = async (): Promise<void> => {
    for await (const entry of ex) {
      const target = resolve(tmp, entry.header.name);
      if (entry.header.type !== "file" || !target.startsWith(`${tmp}/`)) {
        entry.resume();
        continue;
      }
      await mkdir(dirname(target), { recursive: true });
      await pipeline(entry, createWriteStream(target));
    }
  };
  await Promise.all([unpack(), pipeline(createReadStream(file), ex)]).catch(async (err: unknown) => {
    await rm(tmp, { recursive: true, force: true });
    throw new OciError(`${file} is not an image archive: ${err instanceof Error ? err.message : String(err)}`);
  });
  await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
    // Another process unpacked the same archive first.
    if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
    await rm(tmp, { recursive: true, force: true });
  });
  return dir;
}
