/**
 * `npm run images [-- --json] [-- --update-lock]`: builds the waxflow-runtime and
 * waxflow-controller images with no Docker daemon and no registry: Debian packages for the
 * OS (debian.ts), Node 24 from the npm registry (the `node` devDependency), and our JS. Each
 * is written as an OCI layout and an archive (also `docker load`-able) under
 * `$WAXFLOW_CACHE/images/<key>`, the key hashing every input, so an unchanged tree builds
 * nothing; `images/current` points at the last build (waxctl's default base).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { parseArgs } from "node:util";
import {
  baseImage,
  cacheDir,
  GID,
  imageSize,
  type Layer,
  ociImage,
  type TarEntry,
  tarLayer,
  UID,
  USER,
  writeArchive,
  writeLayout,
} from "@waxflow/oci";
import { build } from "esbuild";
import { NODE_FLAGS } from "../controller/src/node-flags.ts";
import { type DebianLock, fetchDebs, LOCK_FILE, osLayer, readLock, resolveLock } from "./debian.ts";

const ROOT = join(import.meta.dirname, "..");
const NODE_BIN = join(ROOT, "node_modules", "node", "bin", "node");
/** Where the runtime package goes: `import "waxflow"` resolves from any module in the image. */
const RUNTIME_DIR = "node_modules/waxflow";
const CONTROLLER_FILE = "app/waxflow-controller.mjs";
const RECOVERY_DIR = "var/lib/waxflow/recovery";
const PATH_ENV = "PATH=/usr/local/bin:/usr/bin:/bin";
const BUILDER_SOURCES = [
  "images/build.ts",
  "images/debian.ts",
  "oci/src/layer.ts",
  "oci/src/image.ts",
  "oci/src/oci.ts",
];

export interface BaseImage {
  /** `waxflow.local/<name>@sha256:...` */
  readonly reference: string;
  /** `waxflow.local/<name>:<package version>` */
  readonly tag: string;
  readonly digest: string;
  /** OCI layout directory. */
  readonly layout: string;
  /** OCI archive that `docker load` also reads. */
  readonly archive: string;
  readonly size: number;
}

export interface Images {
  readonly key: string;
  readonly dir: string;
  /** True when nothing had to be built. */
  readonly cached: boolean;
  readonly ms: number;
  readonly runtime: BaseImage;
  readonly controller: BaseImage;
}

interface ImageFile {
  /** Path in the image. */
  readonly path: string;
  readonly contents: Buffer;
  readonly mode: number;
}

const hash = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

async function filesUnder(dir: string, keep: (rel: string) => boolean): Promise<string[]> {
  const all = await readdir(dir, { recursive: true, withFileTypes: true });
  return all
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .filter(keep)
    .sort();
}

// Every file is read-only data for `node`, which runs them: a mode copied from the build
// tree (an execute bit a tool or a person set) would make the digest depend on the machine.
async function imageFile(path: string, file: string): Promise<ImageFile> {
  return { path, contents: await readFile(file), mode: 0o644 };
}

/** Where `name` resolves from `from`, as Node looks it up: the nearest node_modules upwards. */
function locate(name: string, from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === ROOT || dir === dirname(dir))
      throw new Error(`${name} (needed by ${from}) is not installed; run npm install`);
  }
}

/** The waxflow package (package.json and dist/*.js) and its production dependencies, as installed. */
async function runtimeFiles(): Promise<ImageFile[]> {
  const runtime = join(ROOT, "runtime");
  const dist = join(runtime, "dist");
  if (!existsSync(join(dist, "cli.js"))) throw new Error("runtime/dist is missing; run `npm run build` first");
  const files = [await imageFile(`${RUNTIME_DIR}/package.json`, join(runtime, "package.json"))];
  for (const rel of await filesUnder(dist, (f) => f.endsWith(".js")))
    files.push(await imageFile(`${RUNTIME_DIR}/dist/${rel}`, join(dist, rel)));
  const inImage = (dir: string): string => {
    const rel = relative(ROOT, dir);
    if (rel.startsWith("node_modules/")) return rel;
    if (rel.startsWith("runtime/")) return `${RUNTIME_DIR}/${rel.slice("runtime/".length)}`;
    throw new Error(`${dir} is outside the project's node_modules`);
  };
  const seen = new Set<string>();
  const visit = async (from: string): Promise<void> => {
    const pkg = JSON.parse(await readFile(join(from, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const optional = new Set(Object.keys(pkg.optionalDependencies ?? {}));
    for (const name of [...Object.keys(pkg.dependencies ?? {}), ...optional]) {
      let dir: string;
      try {
        dir = locate(name, from);
      } catch (err) {
        if (optional.has(name)) continue;
        throw err;
      }
      if (seen.has(dir)) continue;
      seen.add(dir);
      for (const rel of await filesUnder(dir, (f) => !f.split("/").includes("node_modules")))
        files.push(await imageFile(`${inImage(dir)}/${rel}`, join(dir, rel)));
      await visit(dir);
    }
  };
  await visit(runtime);
  return files;
}

/** What the controller bundle is made from: its sources, the schema's, and the locked dependencies. */
async function controllerInputs(): Promise<string[]> {
  const inputs: string[] = [];
  for (const dir of ["controller/src", "crds/src"])
    for (const rel of await filesUnder(join(ROOT, dir), () => true))
      inputs.push(`${dir}/${rel}:${hash(await readFile(join(ROOT, dir, rel)))}`);
  inputs.push(`package-lock.json:${hash(await readFile(join(ROOT, "package-lock.json")))}`);
  return inputs;
}

async function controllerBundle(): Promise<Uint8Array> {
  const result = await build({
    entryPoints: [join(ROOT, "controller/src/main.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    write: false,
    outfile: CONTROLLER_FILE,
    logLevel: "silent",
    absWorkingDir: ROOT,
    // CommonJS dependencies call require(); an ES module has none unless it makes one.
    banner: { js: 'import { createRequire } from "node:module"; const require = createRequire(import.meta.url);' },
  });
  const [file] = result.outputFiles;
  if (file === undefined) throw new Error("esbuild produced no controller bundle");
  return file.contents;
}

const toEntries = (files: readonly ImageFile[]): TarEntry[] =>
  files.map((f) => ({ path: f.path, type: "file", contents: f.contents, mode: f.mode }));

export async function version(pkg: string): Promise<string> {
  return (JSON.parse(await readFile(join(ROOT, pkg, "package.json"), "utf8")) as { version: string }).version;
}

export async function writeImage(
  dir: string,
  name: string,
  version: string,
  layers: readonly { layer: Layer; createdBy: string }[],
  config: Record<string, unknown>,
): Promise<BaseImage> {
  const made = baseImage(layers, {
    User: USER,
    Env: [PATH_ENV],
    WorkingDir: "/",
    Labels: { "org.opencontainers.image.title": name, "org.opencontainers.image.version": version },
    ...config,
  });
  const image = ociImage(made, new Map(layers.map((l) => [l.layer.digest, l.layer.tar])));
  const names = { reference: `waxflow.local/${name}@${image.digest}`, tag: `waxflow.local/${name}:${version}` };
  const layout = join(dir, name);
  const archive = join(dir, `${name}.tar`);
  await writeLayout(image, layout, names);
  await writeArchive(image, archive, names);
  return { ...names, digest: image.digest, layout, archive, size: imageSize(image) };
}

/** Builds both images unless a build of the same inputs is in `cache` (default $WAXFLOW_CACHE/images). */
/**
 * One image of `kind` built into `<cache>/<kind>/<key>` unless a build of that key is there:
 * `build(tmp)` writes it into a private temporary directory, which becomes the build's
 * directory by one rename (a concurrent build of the same inputs gives the same result), with
 * its summary in image.json; older builds are pruned. Returns the summary and whether it was cached.
 */
export async function cachedImage<T extends BaseImage>(
  cache: string,
  kind: string,
  key: string,
  build: (tmp: string) => Promise<T>,
): Promise<{ readonly image: T; readonly cached: boolean }> {
  const dir = join(cache, kind, key);
  const summary = join(dir, "image.json");
  let cached = existsSync(summary);
  if (!cached) {
    const tmp = `${dir}.${process.pid}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const image = await build(tmp);
    await writeFile(join(tmp, "image.json"), JSON.stringify(image, null, 2).replaceAll(tmp, dir));
    await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Another build of the same inputs finished first: its result is the same.
      if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
      await rm(tmp, { recursive: true, force: true });
      cached = true;
    });
  }
  await pruneBuilds(join(cache, kind), key);
  return { image: JSON.parse(await readFile(summary, "utf8")) as T, cached };
}

/** Each build in `dir` holds its image twice (layout and archive): older ones beyond the newest two go. */
export async function pruneBuilds(dir: string, key: string): Promise<void> {
  const builds = await readdir(dir, { withFileTypes: true });
  const dated = await Promise.all(
    builds
      .filter((d) => d.isDirectory() && /^[0-9a-f]{32}$/.test(d.name) && d.name !== key)
      .map(async (d) => ({ name: d.name, mtime: (await stat(join(dir, d.name))).mtimeMs })),
  );
  for (const old of dated.sort((a, b) => b.mtime - a.mtime).slice(1))
    await rm(join(dir, old.name), { recursive: true, force: true });
}

export async function buildImages(options: { log?: (line: string) => void; cache?: string } = {}): Promise<Images> {
  const log = options.log ?? (() => {});
  const t0 = performance.now();
  const cache = options.cache ?? join(cacheDir(), "images");
  const lock: DebianLock = await readLock();
  const node = await readFile(NODE_BIN).catch(() => {
    throw new Error(`${NODE_BIN} is missing; run npm install (Node 24 comes from the \`node\` package)`);
  });
  const runtime = await runtimeFiles();
  const builder = await Promise.all(BUILDER_SOURCES.map(async (f) => `${f}:${hash(await readFile(join(ROOT, f)))}`));
  const key = hash(
    JSON.stringify({
      builder,
      lock,
      node: hash(node),
      runtime: runtime.map((f) => `${f.path}:${f.mode.toString(8)}:${hash(f.contents)}`),
      controller: await controllerInputs(),
    }),
  ).slice(0, 32);
  const dir = join(cache, key);
  const summary = join(dir, "images.json");
  let cached = existsSync(summary);
  if (!cached) {
    const tmp = `${dir}.${process.pid}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    log("fetching Debian packages");
    const debs = await fetchDebs(lock, join(cache, "debs"), log);
    log("writing layers");
    const os = await osLayer(lock, debs);
    const nodeLayer = {
      layer: await tarLayer([{ path: "usr/local/bin/node", type: "file", contents: node, mode: 0o755 }]),
      createdBy: `node ${await version("node_modules/node")} from the npm registry`,
    };
    const runtimeLayer = {
      layer: await tarLayer([...toEntries(runtime), { path: RECOVERY_DIR, type: "directory", uid: UID, gid: GID }]),
      createdBy: "waxflow runtime (runtime/dist) and its production dependencies",
    };
    const controllerLayer = {
      layer: await tarLayer([{ path: CONTROLLER_FILE, type: "file", contents: await controllerBundle() }]),
      createdBy: "waxflow controller (esbuild bundle of controller/src/main.ts)",
    };
    const images = {
      runtime: await writeImage(tmp, "waxflow-runtime", await version("runtime"), [os, nodeLayer, runtimeLayer], {
        Entrypoint: ["/usr/local/bin/node", `/${RUNTIME_DIR}/dist/cli.js`, "run"],
        ExposedPorts: { "2101/tcp": {}, "3030/tcp": {} },
      }),
      controller: await writeImage(
        tmp,
        "waxflow-controller",
        await version("controller"),
        [os, nodeLayer, controllerLayer],
        {
          Entrypoint: ["/usr/local/bin/node", ...NODE_FLAGS, `/${CONTROLLER_FILE}`],
          ExposedPorts: { "8080/tcp": {} },
        },
      ),
    };
    // Paths name the final folder; the temporary one is renamed into place whole.
    const final = JSON.stringify(images, null, 2).replaceAll(tmp, dir);
    await writeFile(join(tmp, "images.json"), final);
    await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Another build of the same inputs finished first: its result is the same.
      if (err.code !== "ENOTEMPTY" && err.code !== "EEXIST") throw err;
      await rm(tmp, { recursive: true, force: true });
      cached = true;
    });
  }
  await pointCurrent(cache, key);
  const images = JSON.parse(await readFile(summary, "utf8")) as Pick<Images, "runtime" | "controller">;
  return { key, dir, cached, ms: performance.now() - t0, ...images };
}

/** `current` names the last build; older builds beyond the newest few are removed. */
async function pointCurrent(cache: string, key: string): Promise<void> {
  const link = join(cache, `current.${process.pid}.tmp`);
  await rm(link, { force: true });
  await symlink(key, link);
  await rename(link, join(cache, "current"));
  const builds = await readdir(cache, { withFileTypes: true });
  const dated = await Promise.all(
    builds
      .filter((d) => d.isDirectory() && /^[0-9a-f]{32}$/.test(d.name) && d.name !== key)
      .map(async (d) => ({ name: d.name, mtime: (await stat(join(cache, d.name))).mtimeMs })),
  );
  for (const old of dated.sort((a, b) => b.mtime - a.mtime).slice(KEEP_BUILDS - 1))
    await rm(join(cache, old.name), { recursive: true, force: true });
}
const KEEP_BUILDS = 3;

if (import.meta.main) {
  const { values } = parseArgs({ options: { json: { type: "boolean" }, "update-lock": { type: "boolean" } } });
  const log = (line: string) => process.stderr.write(`[images] ${line}\n`);
  if (values["update-lock"]) {
    const lock = await resolveLock();
    await writeFile(LOCK_FILE, `${JSON.stringify(lock, null, 2)}\n`);
    log(`locked ${lock.packages.map((p) => p.file).join(" ")}`);
  }
  const images = await buildImages({ log });
  if (values.json) console.log(JSON.stringify(images, null, 2));
  else {
    for (const image of [images.runtime, images.controller])
      console.log(
        `${image.tag}  ${image.digest}  ${(image.size / 1e6).toFixed(1)} MB\n  ${image.layout}\n  ${image.archive}`,
      );
    console.log(`${images.cached ? "cached" : "built"} in ${(images.ms / 1000).toFixed(1)} s`);
  }
}
