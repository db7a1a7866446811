// Images to and from a registry, over the OCI distribution API (what Docker Hub, GHCR,
// ECR, Harbor and the CNCF Distribution registry serve): push uploads each blob the
// registry lacks, then the manifest; pull fetches a manifest and its blobs into the
// cache, checked against their digests. Credentials are the user's Docker ones
// (credentials.ts); a registry's token service is asked for a token when it says so.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Credential, dockerCredential } from "./credentials.ts";
import { OciError } from "./errors.ts";
import {
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  INDEX_MEDIA_TYPE,
  MANIFEST_MEDIA_TYPE,
} from "./image.ts";
import { networkReason } from "./network.ts";
import { cacheDir, type OciImage } from "./oci.ts";

const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT = [MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST, INDEX_MEDIA_TYPE, DOCKER_LIST].join(", ");

/** `HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`, as docker and kubectl write image names. */
export interface RegistryRef {
  readonly host: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** As docker tells a registry host from a Docker Hub user name. */
const isRegistryHost = (host: string): boolean => host.includes(".") || host.includes(":") || host === "localhost";
const NOT_A_HOST = (host: string): string =>
  `"${host}" is not a registry host (a host has a dot or a port, or is localhost)`;

/** Parses an image name with an explicit registry host; `given` is the flag and value as typed, for errors. */
export function parseRegistryRef(text: string, given: string): RegistryRef {
  const bad = (why: string) =>
    new OciError(`${given} is not a registry image name: ${why} (e.g. registry.example.com/team/orders:v1)`, {
      usage: true,
    });
  const [name = "", digest, ...extra] = text.split("@");
  if (extra.length > 0) throw bad("more than one @");
  if (digest !== undefined && !DIGEST.test(digest)) throw bad("the digest must be sha256: and 64 hex digits");
  const slash = name.indexOf("/");
  if (slash <= 0) throw bad("it needs a registry host before the first /");
  const host = name.slice(0, slash);
  if (!isRegistryHost(host)) throw bad(NOT_A_HOST(host));
  let repository = name.slice(slash + 1);
  let tag: string | undefined;
  const colon = repository.lastIndexOf(":");
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag "${tag}" is not valid`);
  }
  if (!REPOSITORY.test(repository)) throw bad(`repository "${repository}" must be lowercase path components`);
  return { host, repository, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** Where deploy pushes: `HOST` or `HOST/PREFIX`; the image goes to HOST/PREFIX/NAME. */
export interface RegistryPrefix {
  readonly host: string;
  readonly prefix: string;
}

export function parseRegistryPrefix(text: string, given: string): RegistryPrefix {
  const slash = text.indexOf("/");
  const host = slash < 0 ? text : text.slice(0, slash);
  const prefix = slash < 0 ? "" : text.slice(slash + 1).replace(/\/+$/, "");
  if (prefix.includes(":") || text.includes("@")) {
    throw new OciError(`${given} names an image; pass HOST or HOST/PREFIX, and the image goes to HOST/PREFIX/NAME`, {
      usage: true,
    });
  }
  const bad = (why: string) => new OciError(`${given} is not a registry: ${why} (e.g. ghcr.io/acme)`, { usage: true });
  if (!isRegistryHost(host)) throw bad(NOT_A_HOST(host));
  if (prefix !== "" && !REPOSITORY.test(prefix)) throw bad(`path "${prefix}" must be lowercase path components`);
  return { host, prefix };
}

/** The repository of image `name` under `at`. */
export function repositoryUnder(at: RegistryPrefix, name: string): RegistryRef {
  return { host: at.host, repository: at.prefix === "" ? name : `${at.prefix}/${name}` };
}

export function formatRef(ref: RegistryRef): string {
  return `${ref.host}/${ref.repository}${ref.tag === undefined ? "" : `:${ref.tag}`}${ref.digest === undefined ? "" : `@${ref.digest}`}`;
}

/**
 * Registries spoken to over plain HTTP: loopback ones (as Docker does) and those in
 * WAXCTL_INSECURE_REGISTRIES (comma-separated HOST[:PORT]).
 */
export function usesPlainHttp(host: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const name = host.replace(/:\d+$/, "");
  if (name === "localhost" || name === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(name)) return true;
  const listed = (env.WAXCTL_INSECURE_REGISTRIES ?? "").split(",").map((h) => h.trim());
  return listed.includes(host) || listed.includes(name);
}

/** A `WWW-Authenticate` challenge: its scheme and parameters (RFC 7235). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (match === null) return undefined;
  const params: Record<string, string> = {};
  for (const p of (match[2] ?? "").matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[(p[1] ?? "").toLowerCase()] = p[2]?.replace(/\\(.)/g, "$1") ?? p[3] ?? "";
  }
  return { scheme: (match[1] ?? "").toLowerCase(), params };
}

export interface PushReport {
  /** Blobs uploaded, and blobs the registry already had. */
  readonly uploaded: number;
  readonly skipped: number;
  /** `HOST/REPOSITORY@sha256:...` */
  readonly reference: string;
}

export interface RegistryOptions {
  /** Bytes of blobs sent so far, of the total to send. */
  readonly onBytes?: (done: number, total: number) => void;
}

type Body = Buffer | string;

/** One registry host, as one user: tokens are kept per scope for the client's life. */
export class RegistryClient {
  readonly host: string;
  readonly #base: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #tokens = new Map<string, string>();
  #basic: string | undefined;
  #credential: Promise<Credential | undefined> | undefined;

  constructor(host: string, env: NodeJS.ProcessEnv = process.env) {
    this.host = host;
    this.#env = env;
    this.#base = `${usesPlainHttp(host, env) ? "http" : "https"}://${host}`;
  }

  /** Uploads what the registry lacks of `image`, then its manifest under `ref`'s tag, or by digest. */
  async push(image: OciImage, ref: RegistryRef, options: RegistryOptions = {}): Promise<PushReport> {
    const scope = `repository:${ref.repository}:pull,push`;
    const manifestBytes = image.blobs.get(image.digest);
    if (!Buffer.isBuffer(manifestBytes)) throw new Error(`manifest ${image.digest} is not in memory`);
    const blobs: Descriptor[] = [image.manifest.config, ...image.manifest.layers].filter(
      (d, i, all) => all.findIndex((o) => o.digest === d.digest) === i,
    );
    const total = blobs.reduce((n, d) => n + d.size, 0);
    let done = 0;
    let uploaded = 0;
    for (const blob of blobs) {
      const head = await this.#request("HEAD", `/v2/${ref.repository}/blobs/${blob.digest}`, scope);
      if (head.status === 200) {
        done += blob.size;
        options.onBytes?.(done, total);
        continue;
      }
      const source = image.blobs.get(blob.digest);
      if (source === undefined) throw new Error(`blob ${blob.digest} of image ${image.digest} is missing`);
      const start = await this.#request("POST", `/v2/${ref.repository}/blobs/uploads/`, scope);
      await this.#expect(start, 202, `starting the upload of ${blob.digest}`);
      await start.body?.cancel();
      const location = start.headers.get("location");
      if (location === null) throw this.#error(`the registry gave no upload location for ${blob.digest}`);
      const url = new URL(location, this.#base);
      url.searchParams.set("digest", blob.digest);
      const sent = done;
      const put = await this.#request("PUT", url.toString(), scope, {
        body: source,
        size: blob.size,
        contentType: "application/octet-stream",
        onBytes: (n) => options.onBytes?.(sent + n, total),
      });
      await this.#expect(put, 201, `uploading ${blob.digest}`);
      await put.body?.cancel();
      done += blob.size;
      uploaded++;
    }
    const put = await this.#request("PUT", `/v2/${ref.repository}/manifests/${ref.tag ?? image.digest}`, scope, {
      body: manifestBytes,
      size: manifestBytes.length,
      contentType: image.manifest.mediaType,
    });
    await this.#expect(put, 201, "uploading the manifest");
    const stored = put.headers.get("docker-content-digest");
    if (stored !== null && stored !== image.digest)
      throw this.#error(`the registry stored the manifest as ${stored}, not ${image.digest}`);
    return {
      uploaded,
      skipped: blobs.length - uploaded,
      reference: `${this.host}/${ref.repository}@${image.digest}`,
    };
  }

  /**
   * The linux/amd64 image `ref` names. Its blobs go to the cache (by digest, so a second
   * pull downloads nothing); the image returned points at them there.
   */
  async pull(ref: RegistryRef): Promise<OciImage> {
    const scope = `repository:${ref.repository}:pull`;
    let [digest, manifestBytes, mediaType] = await this.#manifest(ref, ref.digest ?? ref.tag ?? "latest", scope);
    if (mediaType === INDEX_MEDIA_TYPE || mediaType === DOCKER_LIST) {
      const index = JSON.parse(manifestBytes.toString()) as { manifests?: (Descriptor & { platform?: Platform })[] };
      const chosen = index.manifests?.find((m) => m.platform?.os === "linux" && m.platform.architecture === "amd64");
      if (chosen === undefined) throw this.#error(`${formatRef(ref)} has no linux/amd64 image`);
      [digest, manifestBytes, mediaType] = await this.#manifest(ref, chosen.digest, scope);
    }
    if (mediaType !== MANIFEST_MEDIA_TYPE && mediaType !== DOCKER_MANIFEST)
      throw this.#error(`${formatRef(ref)} is a ${mediaType}, not an image manifest`);
    const manifest = JSON.parse(manifestBytes.toString()) as ImageManifest;
    const dir = join(cacheDir(this.#env), "images", "blobs");
    const blobs = new Map<string, Body>([[digest, manifestBytes]]);
    for (const d of [manifest.config, ...manifest.layers])
      blobs.set(d.digest, await this.#fetchBlob(ref, d, dir, scope));
    const config = JSON.parse(await readFile(blobs.get(manifest.config.digest) as string, "utf8")) as ImageConfig;
    return { digest, manifest, config, blobs };
  }

  async #manifest(ref: RegistryRef, reference: string, scope: string): Promise<[string, Buffer, string]> {
    const res = await this.#request("GET", `/v2/${ref.repository}/manifests/${reference}`, scope, { accept: ACCEPT });
    if (res.status === 404) throw this.#error(`${formatRef(ref)}: no such image (manifest ${reference} not found)`);
    await this.#expect(res, 200, `reading manifest ${reference}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (DIGEST.test(reference) && digest !== reference)
      throw this.#error(`manifest ${reference} arrived with digest ${digest}`);
    const mediaType =
      res.headers.get("content-type")?.split(";")[0]?.trim() ??
      (JSON.parse(bytes.toString()) as { mediaType?: string }).mediaType ??
      "";
    return [digest, bytes, mediaType];
  }

  async #fetchBlob(ref: RegistryRef, d: Descriptor, dir: string, scope: string): Promise<string> {
    const file = join(dir, d.digest.replace(":", "-"));
    if ((await stat(file).catch(() => undefined))?.size === d.size) return file;
    const res = await this.#request("GET", `/v2/${ref.repository}/blobs/${d.digest}`, scope);
    await this.#expect(res, 200, `downloading ${d.digest}`);
    if (res.body === null) throw this.#error(`blob ${d.digest} arrived empty`);
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const hash = createHash("sha256");
    const check = new Transform({
      transform(chunk: Buffer, _encoding, next) {
        hash.update(chunk);
        next(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(res.body), check, createWriteStream(tmp));
      const got = `sha256:${hash.digest("hex")}`;
      if (got !== d.digest) throw this.#error(`blob ${d.digest} arrived with digest ${got}`);
      await rename(tmp, file);
    } finally {
      await rm(tmp, { force: true });
    }
    return file;
  }

  /** One request, authorized: on a 401 it asks for a token (or uses basic auth) as the challenge says, once. */
  async #request(
    method: string,
    path: string,
    scope: string,
    send: {
      body?: Body;
      size?: number;
      contentType?: string;
      accept?: string;
      onBytes?: (n: number) => void;
    } = {},
  ): Promise<Response> {
    const url = path.startsWith("http") ? path : `${this.#base}${path}`;
    const attempt = async (): Promise<Response> => {
      const headers: Record<string, string> = {};
      const token = this.#tokens.get(scope);
      if (token !== undefined) headers.authorization = `Bearer ${token}`;
      else if (this.#basic !== undefined) headers.authorization = `Basic ${this.#basic}`;
      if (send.accept !== undefined) headers.accept = send.accept;
      if (send.contentType !== undefined) headers["content-type"] = send.contentType;
      if (send.size !== undefined) headers["content-length"] = String(send.size);
      try {
        return await fetch(url, {
          method,
          headers,
          body: send.body === undefined ? undefined : bodyOf(send.body, send.onBytes),
          duplex: "half",
        } as RequestInit);
      } catch (err) {
        throw new OciError(
          `cannot reach registry ${this.host} (${this.#base}): ${networkReason(err)}; ` +
            "check the host and port, and set WAXCTL_INSECURE_REGISTRIES=HOST:PORT for a registry without TLS",
        );
      }
    };
    const first = await attempt();
    if (first.status !== 401) return first;
    await first.body?.cancel();
    const challenge = parseChallenge(first.headers.get("www-authenticate") ?? "");
    const credential = await this.#credentials();
    if (challenge?.scheme === "bearer") {
      this.#tokens.set(scope, await this.#token(challenge, scope, credential));
    } else if (challenge?.scheme === "basic" && credential !== undefined) {
      this.#basic = Buffer.from(`${credential.username}:${credential.password}`).toString("base64");
    } else {
      throw this.#unauthorized(credential);
    }
    const second = await attempt();
    if (second.status === 401) {
      await second.body?.cancel();
      throw this.#unauthorized(credential);
    }
    return second;
  }

  async #token(challenge: Challenge, scope: string, credential: Credential | undefined): Promise<string> {
    const realm = challenge.params.realm;
    if (realm === undefined) throw this.#error("its token challenge names no realm");
    const url = new URL(realm);
    if (challenge.params.service !== undefined) url.searchParams.set("service", challenge.params.service);
    url.searchParams.set("scope", scope);
    const headers: Record<string, string> = {};
    if (credential !== undefined)
      headers.authorization = `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString("base64")}`;
    const res = await fetch(url, { headers }).catch((err: unknown) => {
      throw this.#error(`cannot reach its token service ${url.origin}: ${networkReason(err)}`);
    });
    if (res.status === 401 || res.status === 403) throw this.#unauthorized(credential);
    await this.#expect(res, 200, "getting a token");
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (token === undefined) throw this.#error("its token service answered without a token");
    return token;
  }

  #credentials(): Promise<Credential | undefined> {
    this.#credential ??= dockerCredential(this.host, this.#env);
    return this.#credential;
  }

  #unauthorized(credential: Credential | undefined): OciError {
    return this.#error(
      credential === undefined
        ? `it needs credentials and none are stored for ${this.host}; run \`docker login ${this.host}\` (waxctl reads Docker's config.json and credential helpers)`
        : `it refused the credentials stored for ${this.host} (user ${credential.username}); run \`docker login ${this.host}\` again`,
    );
  }

  async #expect(res: Response, status: number, doing: string): Promise<void> {
    if (res.status === status) return;
    const text = await res.text().catch(() => "");
    let detail = text.slice(0, 300);
    try {
      const errors = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
      if (errors.length > 0) detail = errors.map((e) => `${e.code ?? ""}: ${e.message ?? ""}`).join("; ");
    } catch {}
    throw this.#error(`${doing} failed with HTTP ${res.status}${detail === "" ? "" : ` (${detail.trim()})`}`);
  }

  #error(message: string): OciError {
    return new OciError(`registry ${this.host}: ${message}`);
  }
}

interface Platform {
  readonly os?: string;
  readonly architecture?: string;
}

/** A blob as a request body: bytes, or a file streamed and counted as it goes. */
function bodyOf(source: Body, onBytes?: (n: number) => void): RequestInit["body"] {
  if (Buffer.isBuffer(source)) {
    onBytes?.(source.length);
    return new Uint8Array(source.buffer, source.byteOffset, source.length);
  }
  let n = 0;
  const counted = createReadStream(source).pipe(
    new Transform({
      transform(chunk: Buffer, _encoding, next) {
        n += chunk.length;
        onBytes?.(n);
        next(null, chunk);
      },
    }),
  );
  return Readable.toWeb(counted) as ReadableStream<Uint8Array>;
}
