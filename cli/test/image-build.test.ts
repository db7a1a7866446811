import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ImageManifest, readImage, writeArchive } from "@waxflow/oci";
import { extract } from "tar-stream";
import { afterAll, beforeAll, expect, test } from "vitest";
import { buildDataflowImage, deliverImage, nameFromPath, parseTarget } from "../src/image/build.ts";
import { imageWork, standInBase } from "./base-image.ts";
import { waxctl } from "./waxctl.ts";

const { work, base, flow, other } = imageWork("waxctl-image-");

beforeAll(async () => {
  await standInBase(base);
});
const cacheBefore = process.env.WAXFLOW_CACHE;
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  if (cacheBefore === undefined) delete process.env.WAXFLOW_CACHE;
  else process.env.WAXFLOW_CACHE = cacheBefore;
});

async function archiveEntries(file: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      files.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  ex.end(readFileSync(file));
  await done;
  return files;
}

test("building the same dataflow twice gives the same digest; a change of code gives another", async () => {
  const a = await buildDataflowImage({ entry: flow, name: "flow", base });
  const b = await buildDataflowImage({ entry: flow, name: "flow", base });
  expect(b.digest).toBe(a.digest);
  expect(a.reference).toBe(`waxflow.local/flow@${a.digest}`);
  expect(a.tag).toBe(`waxflow.local/flow:${a.digest.slice(7, 19)}`);
  expect(a.module).toBe("/app/flow.js");
  const c = await buildDataflowImage({ entry: other, name: "flow", base });
  expect(c.digest).not.toBe(a.digest);
});

test("the image is the base's layers plus the app layer, with the base's entrypoint and /app/<entry> as command", async () => {
  const baseImg = await readImage(base);
  const built = await buildDataflowImage({ entry: flow, name: "flow", base });
  expect(built.image.manifest.layers.slice(0, -1)).toEqual(baseImg.manifest.layers);
  expect(built.image.manifest.layers.at(-1)?.digest).toBe(built.appLayerDigest);
  expect(built.image.config.config).toMatchObject({
    Entrypoint: ["/usr/local/bin/node", "cli.js", "run"],
    Cmd: ["/app/flow.js"],
    User: "65532:65532",
  });
  const sum = [built.image.manifest.config, ...built.image.manifest.layers].reduce((n, d) => n + d.size, 0);
  expect(built.size).toBe(sum + (built.image.blobs.get(built.digest) as Buffer).length);
});

test("an OCI layout target names the image by digest and by tag, and reads back as the same image", async () => {
  const built = await buildDataflowImage({ entry: flow, name: "flow", base });
  const dir = join(work, "layout");
  const delivered = await deliverImage(built, parseTarget(`oci:${dir}`));
  expect(delivered).toMatchObject({ reference: built.reference, target: `oci:${dir}` });
  const index = JSON.parse(readFileSync(join(dir, "index.json"), "utf8")) as { manifests: ImageManifest["layers"] };
  expect(index.manifests.map((d) => [d.digest, d.annotations?.["io.containerd.image.name"]])).toEqual([
    [built.digest, built.reference],
    [built.digest, built.tag],
  ]);
  expect((await readImage(dir)).digest).toBe(built.digest);
  expect((await readImage(dir, built.tag)).digest).toBe(built.digest);
  // A second image joins the layout; then a name must pick one.
  const second = await buildDataflowImage({ entry: other, name: "second", base });
  await deliverImage(second, parseTarget(`oci:${dir}`));
  await expect(readImage(dir)).rejects.toThrow(/holds several images/);
  expect((await readImage(dir, second.reference)).digest).toBe(second.digest);
  expect((await readImage(dir, built.tag)).digest).toBe(built.digest);
});

test("an archive is byte-for-byte reproducible and holds an OCI layout plus Docker's manifest.json", async () => {
  const built = await buildDataflowImage({ entry: flow, name: "flow", base });
  const progress: number[] = [];
  const one = join(work, "one.tar");
  const two = join(work, "two.tar");
  await writeArchive(built.image, one, built, (done) => progress.push(done));
  await deliverImage(built, parseTarget(`docker-archive:${two}`));
  expect(readFileSync(two).equals(readFileSync(one))).toBe(true);
  expect(progress.at(-1)).toBe(built.size);

  const files = await archiveEntries(one);
  const docker = JSON.parse(files.get("manifest.json")?.toString() ?? "[]") as {
    Config: string;
    RepoTags: string[];
    Layers: string[];
  }[];
  expect(docker).toEqual([
    {
      Config: `blobs/sha256/${built.image.manifest.config.digest.slice(7)}`,
      RepoTags: [built.tag],
      Layers: built.image.manifest.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
    },
  ]);
  for (const path of [docker[0]?.Config, ...(docker[0]?.Layers ?? []), `blobs/sha256/${built.digest.slice(7)}`])
    expect(files.has(path ?? "")).toBe(true);
  expect(JSON.parse(files.get("oci-layout")?.toString() ?? "{}")).toEqual({ imageLayoutVersion: "1.0.0" });
  // Read back through the archive (unpacked into the cache), it is the same image.
  process.env.WAXFLOW_CACHE = join(work, "cache");
  expect((await readImage(one, built.reference)).digest).toBe(built.digest);
});

test("a missing default base tells how to build it; a missing --base names the path", async () => {
  process.env.WAXFLOW_CACHE = join(work, "empty-cache");
  await expect(buildDataflowImage({ entry: flow, name: "flow" })).rejects.toThrow(
    /no waxflow-runtime image at .*empty-cache\/images\/current\/waxflow-runtime; build it with `npm run images` or pass --base/,
  );
  await expect(buildDataflowImage({ entry: flow, name: "flow", base: join(work, "nope") })).rejects.toThrow(
    /nope: no such image layout or archive/,
  );
  await expect(buildDataflowImage({ entry: flow, name: "Flow!", base })).rejects.toThrow(
    /image name "Flow!" is not valid/,
  );
});

test("targets parse, or the error lists every form", () => {
  expect(parseTarget("oci:out")).toEqual({ kind: "oci", path: "out" });
  expect(parseTarget("oci-archive:a:b.tar")).toEqual({ kind: "oci-archive", path: "a:b.tar" });
  expect(parseTarget("kind:waxflow-e2e")).toEqual({ kind: "kind", cluster: "waxflow-e2e" });
  expect(parseTarget("docker")).toEqual({ kind: "docker" });
  expect(parseTarget("registry:localhost:5000/team/flow:v1")).toEqual({
    kind: "registry",
    ref: { host: "localhost:5000", repository: "team/flow", tag: "v1" },
  });
  expect(() => parseTarget("registry:x")).toThrow(
    "--output registry:x is not a registry image name: it needs a registry host before the first /",
  );
  for (const bad of ["oci", "oci:", "registry:", "docker:x"])
    expect(() => parseTarget(bad)).toThrow(
      `--output ${bad} is not a target; use oci:DIR, oci-archive:FILE, docker-archive:FILE, kind:CLUSTER, registry:HOST/REPO[:TAG] or docker`,
    );
  expect(nameFromPath("dir/My Flow.ts")).toBe("my-flow");
});

test("waxctl image build --json reports digest, reference, size and timings; twice, the same digest", async () => {
  const out = join(work, "cmd.tar");
  const args = ["image", "build", flow, "--base", base, "-N", "cmd", "-o", `oci-archive:${out}`, "--json"];
  const first = await waxctl(args);
  const second = await waxctl(args);
  const a = JSON.parse(first.stdout) as Record<string, unknown>;
  const b = JSON.parse(second.stdout) as Record<string, unknown>;
  expect(a).toMatchObject({ target: `oci-archive:${out}`, module: "/app/flow.js" });
  expect(a.reference).toBe(`waxflow.local/cmd@${a.digest}`);
  expect(b.digest).toBe(a.digest);
  expect(a.size).toBeGreaterThan(0);
  expect(Object.keys(a.timings as object).sort()).toEqual(["baseMs", "bundleMs", "deliverMs", "layerMs", "totalMs"]);
});

test("waxctl image build tells a person the spec.image and spec.module a Dataflow needs; stdout stays the reference", async () => {
  const out = join(work, "human.tar");
  const { stdout, stderr } = await waxctl([
    "image",
    "build",
    flow,
    "--base",
    base,
    "-N",
    "human",
    "-o",
    `oci-archive:${out}`,
  ]);
  const reference = stdout.trim();
  expect(reference).toMatch(/^waxflow\.local\/human@sha256:[0-9a-f]{64}$/);
  expect(stderr).toContain(`spec.image:  ${reference}\n`);
  expect(stderr).toContain("spec.module: /app/flow.js\n");
});

test("waxctl image build shows a syntax error at file:line, and a bad target, each in one line", async () => {
  const bad = join(work, "bad.ts");
  writeFileSync(bad, "export const flow = (;\n");
  const broken = await waxctl(["image", "build", bad, "--base", base]);
  expect(broken.stderr).toMatch(/^error: .*bad\.ts:1:\d+: /m);
  expect(broken.error?.oclif?.exit).toBe(1);
  const target = await waxctl(["image", "build", flow, "--base", base, "-o", "s3:bucket"]);
  expect(target.stderr).toContain("error: --output s3:bucket is not a target");
  expect(target.error?.oclif?.exit).toBe(2);
});
