// The Kafka broker image (the kind suite runs it: e2e/kafka.e2e.test.ts). What the lock
// pins is what a headless broker needs; the image shares the runtime's OS layer, runs as
// 65532 and starts java on exactly those jars with no shell; and a build in an empty
// cache (its downloads linked, not fetched again) gives the same digest.
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDir, readImage } from "@waxflow/oci";
import { afterAll, beforeAll, expect, test } from "vitest";
import { buildImages } from "../build.ts";
import { buildKafkaImage, JAVA_HOME, JRE_PACKAGES, KAFKA_LIBS, type KafkaImage, readKafkaLock } from "../kafka.ts";

const work = mkdtempSync(join(tmpdir(), "waxflow-kafka-image-"));
let image: KafkaImage;
beforeAll(async () => {
  image = await buildKafkaImage();
}, 600_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("the lock pins the JRE's packages and Kafka's jars, each once, by SHA-256", async () => {
  const lock = await readKafkaLock();
  expect(lock.debian.suite).toBe("bookworm");
  expect(lock.debian.packages.map((p) => p.package)).toEqual([...JRE_PACKAGES]);
  const names = lock.jars.map((j) => j.path.split("/").at(-1));
  expect(new Set(names).size).toBe(names.length);
  expect(names).toContain(`kafka_2.13-${lock.kafka}.jar`);
  expect(names).toContain(`kafka-clients-${lock.kafka}.jar`);
  // Without a binding for the slf4j-api 1.7 the broker pulls, it logs nothing.
  expect(names.some((n) => n?.startsWith("log4j-slf4j-impl-"))).toBe(true);
  for (const pinned of [...lock.debian.packages, ...lock.jars]) {
    expect(pinned.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(pinned.size).toBeGreaterThan(0);
  }
});

test("three layers, the first the runtime's; java on the jars as 65532, the broker by default", async () => {
  const kafka = await readImage(image.layout);
  const runtime = await readImage((await buildImages()).runtime.layout);
  expect(kafka.digest).toBe(image.digest);
  expect(kafka.manifest.layers).toHaveLength(3);
  expect(kafka.manifest.layers[0]).toEqual(runtime.manifest.layers[0]);
  expect(kafka.config.config).toMatchObject({
    User: "65532:65532",
    Entrypoint: [
      `${JAVA_HOME}/bin/java`,
      "-XX:-UsePerfData",
      "-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties",
      "-cp",
      `${KAFKA_LIBS}/*`,
    ],
    Cmd: ["kafka.Kafka", "/config/server.properties"],
  });
  expect(image.tag).toBe(`waxflow.local/waxflow-kafka:${(await readKafkaLock()).kafka}`);
});

test("a build in an empty cache gives the same digest", async () => {
  const cache = join(work, "cache");
  await mkdir(cache);
  for (const downloads of ["debs", "jars"]) symlinkSync(join(cacheDir(), "images", downloads), join(cache, downloads));
  const fresh = await buildKafkaImage({ cache });
  expect(fresh.cached).toBe(false);
  expect(fresh.digest).toBe(image.digest);
}, 300_000);
