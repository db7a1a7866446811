/**
 * `npm run images:seaweedfs [-- --json]`: the S3-compatible object store the kind suite
 * backs dataflows up to, built as the other images are, with no daemon: the runtime's OS
 * layer (users, CA certificates) and SeaweedFS's static `weed` binary, which
 * e2e/toolchain/seaweedfs.sh builds from the Go module proxy (cached by version; the unit
 * tests' object store is the same binary). No shell: the entrypoint is `weed`, the pod's
 * arguments pick `mini` and its flags. Written under
 * `$WAXFLOW_CACHE/images/seaweedfs/<key>`; it does not move `images/current`.
 */
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { cacheDir, tarLayer } from "@waxflow/oci";
import { type BaseImage, cachedImage, writeImage } from "./build.ts";
import { fetchDebs, osLayer, readLock } from "./debian.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
const BUILDER_SOURCES = [
  "images/seaweedfs.ts",
  "images/build.ts",
  "images/debian.ts",
  "oci/src/layer.ts",
  "e2e/toolchain/seaweedfs.sh",
];
export const WEED = "/usr/bin/weed";
/** Where the pod mounts the store's data (an emptyDir or a claim); also the working directory. */
export const SEAWEEDFS_DATA = "/data";

export interface SeaweedfsImage extends BaseImage {
  readonly key: string;
  readonly version: string;
  readonly cached: boolean;
  readonly ms: number;
}

const hash = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

/** The `weed` binary of the toolchain's version: built by seaweedfs.sh when missing (minutes, once per machine). */
export async function weedBinary(log: (line: string) => void): Promise<{ path: string; version: string }> {
  const { stdout: version } = await run("bash", ["-c", 'source e2e/toolchain/lib.sh && echo "$SEAWEEDFS_VERSION"'], {
    cwd: ROOT,
  });
  log(`weed ${version.trim()}: bash e2e/toolchain/seaweedfs.sh (cached by version)`);
  // Its progress (a cold build takes minutes) goes to our stderr; stdout is the binary's folder.
  const dir = await new Promise<string>((resolve, reject) => {
    const child = spawn("bash", [join(ROOT, "e2e/toolchain/seaweedfs.sh")], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0
        ? resolve(out.trim().split("\n").at(-1) ?? "")
        : reject(
            new Error(`bash e2e/toolchain/seaweedfs.sh exited ${code}: building weed failed (its output is above)`),
          ),
    );
  });
  return { path: join(dir, "weed"), version: version.trim() };
}

/** The image's runtime configuration: `weed`; the pod's arguments pick the command. */
export function seaweedfsImageConfig(): Record<string, unknown> {
  return {
    Entrypoint: [WEED],
    Cmd: ["mini", `-dir=${SEAWEEDFS_DATA}`],
    WorkingDir: SEAWEEDFS_DATA,
    ExposedPorts: { "8333/tcp": {} },
  };
}

/** Builds the SeaweedFS image unless a build of the same inputs is in `cache` (default $WAXFLOW_CACHE/images). */
export async function buildSeaweedfsImage(
  options: { log?: (line: string) => void; cache?: string } = {},
): Promise<SeaweedfsImage> {
  const log = options.log ?? (() => {});
  const t0 = performance.now();
  const cache = options.cache ?? join(cacheDir(), "images");
  const base = await readLock();
  const weed = await weedBinary(log);
  const binary = await readFile(weed.path);
  const builder = await Promise.all(BUILDER_SOURCES.map(async (f) => `${f}:${hash(await readFile(join(ROOT, f)))}`));
  const key = hash(JSON.stringify({ builder, base, version: weed.version, weed: hash(binary) })).slice(0, 32);
  const { image, cached } = await cachedImage(cache, "seaweedfs", key, async (tmp) => {
    log("fetching Debian packages");
    const debs = await fetchDebs(base, join(cache, "debs"), log);
    log("writing layers");
    // The runtime's OS layer, byte for byte: a node that holds one image holds it for both.
    const os = await osLayer(base, debs);
    const store = {
      layer: await tarLayer([
        { path: WEED.slice(1), type: "file", contents: binary, mode: 0o755 },
        // Mount points: the root filesystem is read-only.
        { path: SEAWEEDFS_DATA.slice(1), type: "directory", mode: 0o755 },
      ]),
      createdBy: `seaweedfs weed ${weed.version}: e2e/toolchain/seaweedfs.sh from the Go module proxy`,
    };
    // The tag is the module's pseudo-version's date and commit: a tag allows no "+" and at most 128 characters.
    const tag = weed.version.replace(/^v0\.0\.0-/, "").replace(/[^\w.-]/g, "_");
    const written = await writeImage(tmp, "waxflow-seaweedfs", tag, [os, store], seaweedfsImageConfig());
    return { ...written, version: weed.version };
  });
  return { ...image, key, cached, ms: performance.now() - t0 };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { json: { type: "boolean" } } });
  const log = (line: string) => process.stderr.write(`[images:seaweedfs] ${line}\n`);
  const image = await buildSeaweedfsImage({ log });
  if (values.json) console.log(JSON.stringify(image, null, 2));
  else
    console.log(
      `${image.tag}  ${image.digest}  ${(image.size / 1e6).toFixed(1)} MB\n  ${image.layout}\n  ${image.archive}\n${image.cached ? "cached" : "built"} in ${(image.ms / 1000).toFixed(1)} s`,
    );
}
