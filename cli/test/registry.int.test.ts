// Push and pull against a real registry (CNCF Distribution, cli/install-tools.sh) with
// htpasswd users, credentials from a Docker config.json or a credential helper, and the
// pushed image read back by skopeo, a tool that is not ours.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type OciImage, RegistryClient } from "@waxflow/oci";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { tool } from "../../e2e/toolchain/test-tools.ts";
import { freePort } from "../../runtime/test/support/ports.ts";
import type { ImageBuildResult } from "../src/commands/image/build.ts";
import { buildDataflowImage } from "../src/image/build.ts";
import { imageWork, standInBase } from "./base-image.ts";
import { startRegistry, type TestRegistry } from "./registry-server.ts";
import { registryBinary } from "./tools.ts";
import { type Outcome, waxctl } from "./waxctl.ts";

const { work, base, flow, other } = imageWork("waxctl-push-");
let baseImg: OciImage;
let registry: TestRegistry;
const env = { ...process.env };

/** A Docker config folder holding `config`; DOCKER_CONFIG points at it for the next commands. */
function dockerConfig(config: unknown): void {
  const dir = mkdtempSync(join(work, "docker-"));
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  process.env.DOCKER_CONFIG = dir;
}
/** The `error: ` line a failed command printed, without the prefix. */
function errorOf(outcome: Outcome): string | undefined {
  const line = outcome.stderr.split("\n").find((l) => l.startsWith("error: "));
  return line?.slice("error: ".length);
}
const basicAuth = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString("base64");

async function push(path: string, target: string): Promise<ImageBuildResult> {
  const outcome = await waxctl(["image", "build", path, "-N", "flow", "--base", base, "-o", target, "--json"]);
  if (outcome.error !== undefined) throw outcome.error;
  return JSON.parse(outcome.stdout) as ImageBuildResult;
}

describe("registry", () => {
  beforeAll(async () => {
    registry = await startRegistry(registryBinary(), { auth: { users: { alice: "s3cret" } } });
    baseImg = await standInBase(base);
    process.env.WAXFLOW_CACHE = join(work, "cache");
  });
  afterAll(async () => {
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
    for (const key of ["DOCKER_CONFIG", "WAXFLOW_CACHE", "PATH"] as const) {
      if (env[key] === undefined) delete process.env[key];
      else process.env[key] = env[key];
    }
  });

  let first: ImageBuildResult | undefined;
  test("push with config.json credentials: by digest, and under the tag", async () => {
    dockerConfig({ auths: { [`http://${registry.host}`]: { auth: basicAuth("alice", "s3cret") } } });
    const pushed = await push(flow, `registry:${registry.host}/team/flow:v1`);
    expect(pushed.delivered).toBe(`${registry.host}/team/flow@${pushed.digest}`);
    expect(pushed.target).toBe(`registry:${registry.host}/team/flow:v1`);
    // Config, the base's layer, the app layer.
    expect(pushed.blobs).toEqual({ uploaded: 3, skipped: 0 });
    first = pushed;
  });

  test("skopeo reads the pushed image back by tag and digest", () => {
    const digest = first?.digest;
    expect(digest, "the push test above ran").toBeDefined();
    const inspect = (ref: string) =>
      JSON.parse(
        execFileSync(
          tool("skopeo"),
          ["inspect", "--tls-verify=false", "--creds", "alice:s3cret", `docker://${registry.host}/team/flow${ref}`],
          { encoding: "utf8" },
        ),
      ) as { Digest: string; Layers: string[] };
    const byTag = inspect(":v1");
    expect(byTag.Digest).toBe(digest);
    expect(byTag.Layers).toHaveLength(2);
    expect(inspect(`@${digest}`).Digest).toBe(digest);
  });

  test("a second push uploads only what the registry lacks", async () => {
    dockerConfig({ auths: { [registry.host]: { username: "alice", password: "s3cret" } } });
    const again = await push(flow, `registry:${registry.host}/team/flow`);
    expect(again.blobs).toEqual({ uploaded: 0, skipped: 3 });
    const changed = await push(other, `registry:${registry.host}/team/flow`);
    expect(changed.digest).not.toBe(again.digest);
    expect(changed.blobs).toEqual({ uploaded: 2, skipped: 1 });
  });

  test("credentials from a credential helper (credsStore)", async () => {
    const bin = mkdtempSync(join(work, "bin-"));
    const helper = join(bin, "docker-credential-waxtest");
    // The helper protocol: the server on stdin, {Username, Secret} on stdout.
    writeFileSync(
      helper,
      `#!/bin/sh\nread server\n[ "$server" = "${registry.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"ServerURL":"'$server'","Username":"alice","Secret":"s3cret"}'\n`,
    );
    chmodSync(helper, 0o755);
    process.env.PATH = `${bin}:${env.PATH ?? ""}`;
    dockerConfig({ credsStore: "waxtest" });
    const pushed = await push(flow, `registry:${registry.host}/helped/flow:v1`);
    expect(pushed.blobs?.uploaded).toBe(3);
  });

  test("no credentials, wrong ones, a missing helper: one line each that says what to do", async () => {
    dockerConfig({});
    const none = await waxctl(["image", "build", flow, "--base", base, "-o", `registry:${registry.host}/team/x`]);
    expect(errorOf(none)).toBe(
      `registry ${registry.host}: it needs credentials and none are stored for ${registry.host}; run \`docker login ${registry.host}\` (waxctl reads Docker's config.json and credential helpers)`,
    );
    dockerConfig({ auths: { [registry.host]: { auth: basicAuth("alice", "wrong") } } });
    const wrong = await waxctl(["image", "build", flow, "--base", base, "-o", `registry:${registry.host}/team/x`]);
    expect(errorOf(wrong)).toMatch(/refused the credentials stored for 127\.0\.0\.1:\d+ \(user alice\)/);
    dockerConfig({ credsStore: "absent" });
    const helper = await waxctl(["image", "build", flow, "--base", base, "-o", `registry:${registry.host}/team/x`]);
    expect(errorOf(helper)).toMatch(
      /^docker-credential-absent not found: config.json names the credential helper "absent"/,
    );
  });

  test("an unreachable registry names the host and the way to plain HTTP", async () => {
    const closed = `127.0.0.1:${await freePort()}`;
    const outcome = await waxctl(["image", "build", flow, "--base", base, "-o", `registry:${closed}/team/x`]);
    expect(errorOf(outcome)).toBe(
      `cannot reach registry ${closed} (http://${closed}): connection refused (ECONNREFUSED); check the host and port, and set WAXCTL_INSECURE_REGISTRIES=HOST:PORT for a registry without TLS`,
    );
  });

  test("a registry with a token service (Bearer challenges, as Docker Hub and GHCR): one token per scope", async () => {
    const tokened = await startRegistry(registryBinary(), { auth: { users: { bob: "pw" }, tokens: true } });
    try {
      dockerConfig({ auths: { [tokened.host]: { auth: basicAuth("bob", "pw") } } });
      const pushed = await push(flow, `registry:${tokened.host}/team/flow:v1`);
      expect(pushed.blobs).toEqual({ uploaded: 3, skipped: 0 });
      expect(tokened.scopes).toEqual(["repository:team/flow:pull,push"]);
      const pulled = await new RegistryClient(tokened.host).pull({
        host: tokened.host,
        repository: "team/flow",
        tag: "v1",
      });
      expect(pulled.digest).toBe(pushed.digest);
      expect(tokened.scopes.at(-1)).toBe("repository:team/flow:pull");
      dockerConfig({ auths: { [tokened.host]: { auth: basicAuth("bob", "nope") } } });
      const refused = await waxctl(["image", "build", flow, "--base", base, "-o", `registry:${tokened.host}/team/x`]);
      expect(errorOf(refused)).toBe(
        `registry ${tokened.host}: it refused the credentials stored for ${tokened.host} (user bob); run \`docker login ${tokened.host}\` again`,
      );
    } finally {
      await tokened.stop();
    }
  });

  test("a base pulled from the registry gives the same image as the same base read from disk", async () => {
    dockerConfig({ auths: { [registry.host]: { auth: basicAuth("alice", "s3cret") } } });
    const client = new RegistryClient(registry.host);
    await client.push(baseImg, { host: registry.host, repository: "waxflow-runtime", tag: "0.1.0" });
    const local = await buildDataflowImage({ entry: flow, name: "flow", base });
    const remote = await buildDataflowImage({
      entry: flow,
      name: "flow",
      base: `registry:${registry.host}/waxflow-runtime:0.1.0`,
    });
    expect(remote.digest).toBe(local.digest);
    // By digest too; the blobs are in the cache now and are checked against their digests.
    const byDigest = await client.pull({
      host: registry.host,
      repository: "waxflow-runtime",
      digest: baseImg.digest,
    });
    expect(byDigest.digest).toBe(baseImg.digest);
    const missing = await waxctl(["image", "build", flow, "--base", `registry:${registry.host}/nothing:1`]);
    expect(errorOf(missing)).toBe(
      `registry ${registry.host}: ${registry.host}/nothing:1: no such image (manifest 1 not found)`,
    );
  });
});

test("registry names are checked before anything is built", async () => {
  for (const [target, why] of [
    ["registry:team/flow", /"team" is not a registry host/],
    ["registry:ghcr.io/Team/flow", /repository "Team\/flow" must be lowercase/],
    ["registry:ghcr.io/team/flow@sha256:abc", /the digest must be sha256: and 64 hex digits/],
  ] as const) {
    const outcome = await waxctl(["image", "build", flow, "-o", target]);
    expect(errorOf(outcome)).toMatch(why);
  }
});
