// The real images, checked with real tools: skopeo reads the layouts and archives and
// copies blobs (verifying every digest); Docker runs a dataflow image built on the runtime.
// npm test's global setup installs both (images/install-tools.sh); a test whose tool is
// missing fails, naming that command.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readImage, writeArchive } from "@waxflow/oci";
import { afterAll, beforeAll, expect, test } from "vitest";
import { buildDataflowImage, deliverImage } from "../../cli/src/image/build.ts";
import { tool } from "../../e2e/toolchain/test-tools.ts";
import { WORD_COUNTS } from "../../examples/data/wordcount.expected.ts";
import { buildImages, type Images } from "../build.ts";

const ROOT = join(import.meta.dirname, "..", "..");

const work = mkdtempSync(join(tmpdir(), "waxflow-images-"));
let images: Images;
beforeAll(async () => {
  tool("dpkg-deb"); // unpacks the Debian packages; a spawn error would not say how to install it
  images = await buildImages();
}, 600_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

// The skopeo and Docker tests check the same dataflow image: built once, by whichever runs first.
let wordcount: ReturnType<typeof buildDataflowImage> | undefined;
const wordcountImage = () =>
  (wordcount ??= buildDataflowImage({
    entry: "examples/wordcount.ts",
    name: "wordcount",
    base: images.runtime.layout,
    cwd: ROOT,
  }));
const skopeo = (...args: string[]): string => execFileSync(tool("skopeo"), args, { encoding: "utf8" });
const sha = (text: string): string => `sha256:${createHash("sha256").update(text).digest("hex")}`;

test("unchanged inputs build nothing and name the same images", async () => {
  const again = await buildImages();
  expect(again.cached).toBe(true);
  expect(again.runtime.digest).toBe(images.runtime.digest);
  expect(again.controller.digest).toBe(images.controller.digest);
  expect(again.ms).toBeLessThan(3000);
});

test("a build from nothing, in another cache, gives the same digests", async () => {
  const fresh = await buildImages({ cache: join(work, "cache") });
  expect(fresh.cached).toBe(false);
  expect([fresh.runtime.digest, fresh.controller.digest]).toEqual([images.runtime.digest, images.controller.digest]);
  expect(readFileSync(fresh.runtime.archive).equals(readFileSync(images.runtime.archive))).toBe(true);
}, 300_000);

test("runtime and controller share the OS and Node layers, run as 65532, and start node", async () => {
  const runtime = await readImage(images.runtime.layout);
  const controller = await readImage(images.controller.layout);
  expect(runtime.digest).toBe(images.runtime.digest);
  expect(runtime.manifest.layers).toHaveLength(3);
  expect(controller.manifest.layers.slice(0, 2)).toEqual(runtime.manifest.layers.slice(0, 2));
  expect(runtime.config.config).toMatchObject({
    User: "65532:65532",
    Entrypoint: ["/usr/local/bin/node", "/node_modules/waxflow/dist/cli.js", "run"],
  });
  expect(controller.config.config).toMatchObject({
    User: "65532:65532",
    Entrypoint: ["/usr/local/bin/node", "--max-semi-space-size=8", "/app/waxflow-controller.mjs"],
  });
});

test("skopeo reads the runtime image's layout and its archive, both ways", () => {
  const { layout, archive, tag, digest } = images.runtime;
  expect(sha(skopeo("inspect", "--raw", `oci:${layout}:${tag}`))).toBe(digest);
  expect(sha(skopeo("inspect", "--raw", `oci-archive:${archive}:${images.runtime.reference}`))).toBe(digest);
  const config = JSON.parse(skopeo("inspect", "--config", `oci-archive:${archive}:${tag}`)) as {
    architecture: string;
    config: { User: string };
  };
  expect(config.architecture).toBe("amd64");
  expect(config.config.User).toBe("65532:65532");
  // As Docker sees the same file: its manifest.json, the same layers.
  const docker = JSON.parse(skopeo("inspect", `docker-archive:${archive}`)) as { RepoTags: string[]; Layers: string[] };
  const manifest = JSON.parse(skopeo("inspect", "--raw", `oci:${layout}:${tag}`)) as { layers: { digest: string }[] };
  expect(docker.Layers).toEqual(manifest.layers.map((l) => l.digest));
});

test("skopeo copies a dataflow image out of its archive, checking every blob, and keeps its digest", async () => {
  const built = await wordcountImage();
  const archive = join(work, "wordcount.tar");
  await writeArchive(built.image, archive, built);
  // dir: keeps blobs and manifest as they are; skopeo checks each blob against its digest on the way.
  const copy = join(work, "copy");
  skopeo("copy", "--quiet", `oci-archive:${archive}:${built.reference}`, `dir:${copy}`);
  expect(sha(readFileSync(join(copy, "manifest.json"), "utf8"))).toBe(built.digest);
  const config = JSON.parse(skopeo("inspect", "--config", `dir:${copy}`)) as { config: { Cmd: string[] } };
  expect(config.config.Cmd).toEqual(["/app/wordcount.js"]);
}, 120_000);

test("a dataflow image on the runtime image runs `waxflow run` on the wordcount example in Docker", async () => {
  const docker = tool("docker");
  const built = await wordcountImage();
  const loaded = await deliverImage(built, { kind: "docker" });
  expect(loaded.reference).toBe(built.tag);
  try {
    // Read-only root filesystem, no network, as the image's own non-root user; the example reads /app/data.
    const data = `${join(ROOT, "examples", "data")}:/app/data:ro`;
    const run = spawnSync(docker, ["run", "--rm", "--read-only", "--network", "none", "-v", data, built.tag], {
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    // The runtime's own lines, its version read from the image's package.json, and no failure.
    expect(run.stderr).toMatch(/^\S+ process 0: waxflow \d+\.\d+\.\d+ starting dataflow "wordcount"/);
    expect(run.stderr).not.toMatch(/^error:/m);
    expect(run.stdout.trim().split("\n").sort()).toEqual(WORD_COUNTS);
    const whoami = spawnSync(
      docker,
      [
        "run",
        "--rm",
        "--entrypoint",
        "/usr/local/bin/node",
        built.tag,
        "-p",
        "[process.getuid(), process.version].join(' ')",
      ],
      { encoding: "utf8" },
    );
    expect(whoami.stdout.trim()).toMatch(/^65532 v24\./);
    // Distroless: there is no shell to exec into.
    expect(spawnSync(docker, ["run", "--rm", "--entrypoint", "/bin/sh", built.tag, "-c", "true"]).status).not.toBe(0);
  } finally {
    spawnSync(docker, ["rmi", built.tag]);
  }
}, 120_000);
