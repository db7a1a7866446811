// The SeaweedFS image (the kind suite's object store: e2e/backup.e2e.test.ts). It shares
// the runtime's OS layer, holds the toolchain's own `weed` binary byte for byte, runs as
// 65532 with `weed` as its entrypoint and no shell; a build in an empty cache (the .debs
// linked, not fetched again) gives the same digest.
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDir, readImage } from "@waxflow/oci";
import { afterAll, beforeAll, expect, test } from "vitest";
import { tool } from "../../e2e/toolchain/test-tools.ts";
import { buildImages } from "../build.ts";
import { buildSeaweedfsImage, type SeaweedfsImage, WEED } from "../seaweedfs.ts";

const work = mkdtempSync(join(tmpdir(), "waxflow-seaweedfs-image-"));
let image: SeaweedfsImage;
beforeAll(async () => {
  image = await buildSeaweedfsImage();
}, 600_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("two layers, the first the runtime's, the second the toolchain's weed; weed as 65532, mini on /data by default", async () => {
  const store = await readImage(image.layout);
  const runtime = await readImage((await buildImages()).runtime.layout);
  expect(store.digest).toBe(image.digest);
  expect(store.manifest.layers).toHaveLength(2);
  expect(store.manifest.layers[0]).toEqual(runtime.manifest.layers[0]);
  // The binary's bytes are in the second layer (an uncompressed tar): the toolchain's build, not another.
  const weed = readFileSync(tool("seaweedfs"));
  const digest = store.manifest.layers[1]?.digest.replace("sha256:", "") ?? "";
  const layer = readFileSync(join(image.layout, "blobs", "sha256", digest));
  const at = layer.indexOf(weed.subarray(0, 4096));
  expect(at).toBeGreaterThanOrEqual(0);
  expect(layer.subarray(at, at + weed.length).equals(weed)).toBe(true);
  expect(store.config.config).toMatchObject({
    User: "65532:65532",
    Entrypoint: [WEED],
    Cmd: ["mini", "-dir=/data"],
    WorkingDir: "/data",
  });
  expect(image.tag).toMatch(/^waxflow\.local\/waxflow-seaweedfs:\d{14}-[0-9a-f]{12}$/);
});

test("a build in an empty cache gives the same digest", async () => {
  const cache = join(work, "cache");
  await mkdir(cache);
  symlinkSync(join(cacheDir(), "images", "debs"), join(cache, "debs"));
  const fresh = await buildSeaweedfsImage({ cache });
  expect(fresh.cached).toBe(false);
  expect(fresh.digest).toBe(image.digest);
}, 300_000);
