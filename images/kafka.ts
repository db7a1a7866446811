/**
 * `npm run images:kafka [-- --json] [-- --update-lock]`: the Kafka broker image the kind
 * suite runs, built as the others are, with no daemon: the runtime's OS layer, Debian's
 * headless Java 17 runtime, and Apache Kafka's jars from Maven Central, every file pinned
 * by SHA-256 in kafka.lock.json. No shell: the entrypoint starts `java` on the jars and
 * the command names the class (`kafka.Kafka`, or `kafka.tools.StorageTool` to format).
 * Written under `$WAXFLOW_CACHE/images/kafka/<key>`; it does not move `images/current`.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs, promisify } from "node:util";
import { cacheDir, tarLayer } from "@waxflow/oci";
import { type BaseImage, cachedImage, writeImage } from "./build.ts";
import { type DebianLock, fetchDebs, osLayer, packageEntries, readLock, resolveLock } from "./debian.ts";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..");
export const KAFKA_LOCK_FILE = new URL("./kafka.lock.json", import.meta.url);
const BUILDER_SOURCES = ["images/kafka.ts", "images/build.ts", "images/debian.ts", "oci/src/layer.ts"];

/**
 * What a headless broker loads (`ldd` of bin/java, libjvm.so and the lib/*.so it uses:
 * libc, libm, libstdc++, libgcc_s from the OS layer, and libz). The package's other
 * dependencies (cups, fontconfig, nss, alsa, ...) serve AWT, printing and PKCS#11 only.
 */
export const JRE_PACKAGES = ["openjdk-17-jre-headless", "zlib1g"] as const;
export const JAVA_HOME = "/usr/lib/jvm/java-17-openjdk-amd64";
export const KAFKA_LIBS = "/opt/kafka/libs";
const LOG4J_FILE = "opt/kafka/config/log4j2.properties";
/** Where the pod mounts the broker's configuration: the image's default command reads it. */
export const SERVER_PROPERTIES = "/config/server.properties";
const MAVEN_CENTRAL = "https://repo1.maven.org/maven2/";
/** log4j-slf4j-impl binds the slf4j-api 1.7 the broker pulls to log4j2: without it the broker logs nothing. */
const LOG4J_SLF4J = "org.apache.logging.log4j:log4j-slf4j-impl:2.24.3";

export interface LockedJar {
  /** The file's path in Maven Central's repository layout. */
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
}

export interface KafkaLock {
  readonly kafka: string;
  readonly debian: DebianLock;
  readonly jars: readonly LockedJar[];
}

export interface KafkaImage extends BaseImage {
  readonly key: string;
  readonly cached: boolean;
  readonly ms: number;
}

const hash = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex");

// The broker's log goes to stdout only (the root filesystem is read-only); the server's
// start line stays, as the tests' broker keeps it.
const LOG4J = [
  "rootLogger.level=WARN",
  "rootLogger.appenderRef.out.ref=out",
  "appender.out.type=Console",
  "appender.out.name=out",
  "appender.out.layout.type=PatternLayout",
  "appender.out.layout.pattern=[%d] %p %m (%c)%n",
  "logger.raft.name=kafka.server.KafkaRaftServer",
  "logger.raft.level=INFO",
  "",
].join("\n");

/** Kafka `version`'s runtime jars as Maven resolves them now, each with its SHA-256. */
async function resolveJars(version: string): Promise<LockedJar[]> {
  const work = await mkdtemp(join(tmpdir(), "waxflow-kafka-lock-"));
  try {
    const dependency = (coordinates: string): string => {
      const [groupId, artifactId, v] = coordinates.split(":");
      return `<dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${v}</version></dependency>`;
    };
    await writeFile(
      join(work, "pom.xml"),
      `<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>io.waxflow</groupId><artifactId>kafka-image</artifactId><version>1</version>
<dependencies>${dependency(`org.apache.kafka:kafka_2.13:${version}`)}${dependency(LOG4J_SLF4J)}</dependencies></project>\n`,
    );
    // The repository layout keeps group ids in the paths: they are the download URLs.
    await run(
      "mvn",
      [
        "-B",
        "-q",
        "-f",
        join(work, "pom.xml"),
        `-Dmaven.repo.local=${join(work, "m2")}`,
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        "-Dmdep.useRepositoryLayout=true",
        `-DoutputDirectory=${join(work, "libs")}`,
      ],
      { maxBuffer: 16 << 20 },
    );
    const libs = join(work, "libs");
    const files = (await readdir(libs, { recursive: true, withFileTypes: true }))
      .filter((d) => d.isFile() && d.name.endsWith(".jar"))
      .map((d) => relative(libs, join(d.parentPath, d.name)))
      .sort();
    return Promise.all(
      files.map(async (path) => {
        const bytes = await readFile(join(libs, path));
        return { path, size: bytes.length, sha256: hash(bytes) };
      }),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function readKafkaLock(): Promise<KafkaLock> {
  return JSON.parse(await readFile(KAFKA_LOCK_FILE, "utf8")) as KafkaLock;
}

/** The lock for Kafka `version`: the JRE's .debs apt would install now and the jars Maven resolves. */
export async function resolveKafkaLock(version: string): Promise<KafkaLock> {
  return { kafka: version, debian: await resolveLock(JRE_PACKAGES), jars: await resolveJars(version) };
}

const jarName = (jar: LockedJar): string => jar.path.split("/").at(-1) ?? jar.path;

/** The jars of the lock, fetched from Maven Central into `dir` when missing, each checked against its SHA-256. */
async function fetchJars(jars: readonly LockedJar[], dir: string, log: (line: string) => void): Promise<Buffer[]> {
  await mkdir(dir, { recursive: true });
  const names = new Set(jars.map(jarName));
  if (names.size !== jars.length) throw new Error(`${KAFKA_LOCK_FILE.pathname}: two jars share a file name`);
  const out: Buffer[] = [];
  for (const jar of jars) {
    const path = join(dir, `${jar.sha256}-${jarName(jar)}`);
    let bytes = await readFile(path).catch(() => undefined);
    if (bytes === undefined || hash(bytes) !== jar.sha256) {
      const url = `${MAVEN_CENTRAL}${jar.path}`;
      log(`fetching ${url}`);
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
      bytes = Buffer.from(await response.arrayBuffer());
      if (hash(bytes) !== jar.sha256) throw new Error(`${url}: SHA-256 is not the one in ${KAFKA_LOCK_FILE.pathname}`);
      await writeFile(`${path}.tmp`, bytes);
      await rename(`${path}.tmp`, path);
    }
    out.push(bytes);
  }
  return out;
}

/** The image's runtime configuration: `java` on the jars; the command picks the class. */
export function kafkaImageConfig(): Record<string, unknown> {
  return {
    Entrypoint: [
      `${JAVA_HOME}/bin/java`,
      // No /tmp/hsperfdata: nothing reads it, and /tmp may be small.
      "-XX:-UsePerfData",
      `-Dlog4j2.configurationFile=/${LOG4J_FILE}`,
      "-cp",
      `${KAFKA_LIBS}/*`,
    ],
    Cmd: ["kafka.Kafka", SERVER_PROPERTIES],
    Env: ["PATH=/usr/local/bin:/usr/bin:/bin", `JAVA_HOME=${JAVA_HOME}`],
    ExposedPorts: { "9092/tcp": {} },
  };
}

/** Builds the Kafka image unless a build of the same inputs is in `cache` (default $WAXFLOW_CACHE/images). */
export async function buildKafkaImage(
  options: { log?: (line: string) => void; cache?: string } = {},
): Promise<KafkaImage> {
  const log = options.log ?? (() => {});
  const t0 = performance.now();
  const cache = options.cache ?? join(cacheDir(), "images");
  const base = await readLock();
  const lock = await readKafkaLock();
  const builder = await Promise.all(BUILDER_SOURCES.map(async (f) => `${f}:${hash(await readFile(join(ROOT, f)))}`));
  const key = hash(JSON.stringify({ builder, base, lock })).slice(0, 32);
  const { image, cached } = await cachedImage(cache, "kafka", key, async (tmp) => {
    const debs = join(cache, "debs");
    log("fetching Debian packages");
    const baseDebs = await fetchDebs(base, debs, log);
    const jreDebs = await fetchDebs(lock.debian, debs, log);
    log("fetching Kafka's jars");
    const jars = await fetchJars(lock.jars, join(cache, "jars"), log);
    log("writing layers");
    // The runtime's OS layer, byte for byte: a node that holds one image holds it for both.
    const os = await osLayer(base, baseDebs);
    const jre = {
      layer: await tarLayer(await packageEntries(jreDebs)),
      createdBy: `debian ${lock.debian.suite}: ${lock.debian.packages.map((p) => p.file).join(" ")}`,
    };
    const kafka = {
      layer: await tarLayer([
        ...lock.jars.map((jar, i) => ({
          path: `${KAFKA_LIBS.slice(1)}/${jarName(jar)}`,
          type: "file" as const,
          contents: jars[i] as Buffer,
        })),
        { path: LOG4J_FILE, type: "file", contents: Buffer.from(LOG4J) },
      ]),
      createdBy: `kafka ${lock.kafka}: ${lock.jars.length} jars from Maven Central`,
    };
    return writeImage(tmp, "waxflow-kafka", lock.kafka, [os, jre, kafka], kafkaImageConfig());
  });
  return { ...image, key, cached, ms: performance.now() - t0 };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { json: { type: "boolean" }, "update-lock": { type: "boolean" }, kafka: { type: "string" } },
  });
  const log = (line: string) => process.stderr.write(`[images:kafka] ${line}\n`);
  if (values["update-lock"]) {
    const version = values.kafka ?? (await readKafkaLock().catch(() => undefined))?.kafka ?? "4.1.1";
    const lock = await resolveKafkaLock(version);
    await writeFile(KAFKA_LOCK_FILE, `${JSON.stringify(lock, null, 2)}\n`);
    log(`locked ${lock.debian.packages.map((p) => p.file).join(" ")} and ${lock.jars.length} jars of Kafka ${version}`);
  }
  const image = await buildKafkaImage({ log });
  if (values.json) console.log(JSON.stringify(image, null, 2));
  else
    console.log(
      `${image.tag}  ${image.digest}  ${(image.size / 1e6).toFixed(1)} MB\n  ${image.layout}\n  ${image.archive}\n${image.cached ? "cached" : "built"} in ${(image.ms / 1000).toFixed(1)} s`,
    );
}
