import { createHash } from "node:crypto";
import { expect, test } from "vitest";
import { dataflowImage, type ImageConfig, type ImageManifest } from "../src/image.ts";
import { appLayer } from "../src/layer.ts";

const sha = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;
const baseLayer = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha("base"), size: 1234 };
const base: { manifest: ImageManifest; config: ImageConfig } = {
  manifest: {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha("cfg"), size: 10 },
    layers: [baseLayer],
  },
  config: {
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/bin"], Entrypoint: ["waxflow", "run"] },
    rootfs: { type: "layers", diff_ids: [sha("base-diff")] },
  },
};
const code = (text: string) => new TextEncoder().encode(text);

test("the same base and bundle give the same image digest; other code gives another", async () => {
  const a = dataflowImage(base, await appLayer([{ path: "flow.js", contents: code("a") }]), "flow.js");
  const again = dataflowImage(base, await appLayer([{ path: "flow.js", contents: code("a") }]), "flow.js");
  const other = dataflowImage(base, await appLayer([{ path: "flow.js", contents: code("b") }]), "flow.js");
  expect(again.digest).toBe(a.digest);
  expect(other.digest).not.toBe(a.digest);
  expect(a.digest).toBe(sha(a.manifest.bytes.toString()));
});

test("the image is the base plus the app layer; the base's entrypoint runs /app/<entry> as non-root", async () => {
  const layer = await appLayer([{ path: "flow.js", contents: code("a") }]);
  const image = dataflowImage(base, layer, "flow.js");
  const manifest = JSON.parse(image.manifest.bytes.toString()) as ImageManifest;
  expect(manifest.layers).toEqual([
    baseLayer,
    { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer.digest, size: layer.tar.length },
  ]);
  expect(manifest.config).toEqual(image.config.descriptor);
  const config = JSON.parse(image.config.bytes.toString()) as ImageConfig;
  expect(config.rootfs.diff_ids).toEqual([sha("base-diff"), layer.digest]);
  expect(config.config).toEqual({
    Env: ["PATH=/usr/bin"],
    Entrypoint: ["waxflow", "run"],
    Cmd: ["/app/flow.js"],
    User: "65532:65532",
    WorkingDir: "/app",
  });
  expect(config.created).toBe("1970-01-01T00:00:00.000Z");
});
