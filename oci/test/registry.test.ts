import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { dockerCredential } from "../src/credentials.ts";
import {
  formatRef,
  parseChallenge,
  parseRegistryPrefix,
  parseRegistryRef,
  repositoryUnder,
  usesPlainHttp,
} from "../src/registry.ts";

describe("image names", () => {
  test.each([
    ["ghcr.io/acme/orders", { host: "ghcr.io", repository: "acme/orders" }],
    ["localhost:5000/orders:v1.2", { host: "localhost:5000", repository: "orders", tag: "v1.2" }],
    [
      `r.example/a/b/c@sha256:${"e".repeat(64)}`,
      { host: "r.example", repository: "a/b/c", digest: `sha256:${"e".repeat(64)}` },
    ],
    [
      `localhost/x:1@sha256:${"0".repeat(64)}`,
      { host: "localhost", repository: "x", tag: "1", digest: `sha256:${"0".repeat(64)}` },
    ],
  ])("%s", (text, ref) => {
    expect(parseRegistryRef(text, "--x")).toEqual(ref);
    expect(formatRef(ref)).toBe(text);
  });

  test.each([
    ["orders", "it needs a registry host before the first /"],
    ["acme/orders", '"acme" is not a registry host'],
    ["ghcr.io/Acme/orders", 'repository "Acme/orders" must be lowercase'],
    ["ghcr.io/acme/orders:", 'tag "" is not valid'],
    ["ghcr.io/a@sha256:1@sha256:2", "more than one @"],
  ])("%s is refused: %s", (text, why) => {
    expect(() => parseRegistryRef(text, `--registry ${text}`)).toThrow(
      `--registry ${text} is not a registry image name: ${why}`,
    );
  });
});

test("deploy's --registry: a host, or a host and a path under which each dataflow's image goes", () => {
  const at = (text: string) => parseRegistryPrefix(text, `--registry ${text}`);
  expect(repositoryUnder(at("localhost:5000"), "orders")).toEqual({ host: "localhost:5000", repository: "orders" });
  expect(repositoryUnder(at("ghcr.io/acme/team/"), "orders")).toEqual({
    host: "ghcr.io",
    repository: "acme/team/orders",
  });
  expect(() => at("ghcr.io/acme:v1")).toThrow("--registry ghcr.io/acme:v1 names an image");
  expect(() => at("ghcr.io/Acme")).toThrow('--registry ghcr.io/Acme is not a registry: path "Acme" must be lowercase');
  expect(() => at("acme")).toThrow('--registry acme is not a registry: "acme" is not a registry host');
});

test("plain HTTP for loopback registries and those listed", () => {
  for (const host of ["localhost:5000", "127.0.0.1:5001", "[::1]:5000", "localhost"])
    expect(usesPlainHttp(host, {})).toBe(true);
  expect(usesPlainHttp("ghcr.io", {})).toBe(false);
  const env = { WAXCTL_INSECURE_REGISTRIES: "registry.lan:5000, other.lan" };
  expect(usesPlainHttp("registry.lan:5000", env)).toBe(true);
  expect(usesPlainHttp("other.lan:443", env)).toBe(true);
  expect(usesPlainHttp("registry.lan:6000", env)).toBe(false);
});

test("WWW-Authenticate challenges", () => {
  expect(
    parseChallenge(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull"',
    ),
  ).toEqual({
    scheme: "bearer",
    params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:a/b:pull" },
  });
  expect(parseChallenge('Basic realm="x \\"y\\""')).toEqual({ scheme: "basic", params: { realm: 'x "y"' } });
  expect(parseChallenge("Bearer realm=https://r/token, service=r")).toEqual({
    scheme: "bearer",
    params: { realm: "https://r/token", service: "r" },
  });
  expect(parseChallenge("")).toBeUndefined();
});

describe("Docker credentials", () => {
  const dir = mkdtempSync(join(tmpdir(), "waxctl-docker-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const withConfig = (config: unknown) => {
    writeFileSync(join(dir, "config.json"), typeof config === "string" ? config : JSON.stringify(config));
    return { DOCKER_CONFIG: dir };
  };
  const auth = (s: string) => Buffer.from(s).toString("base64");

  test("auths keys with a scheme or a path name their host; Docker Hub's legacy key is docker.io", async () => {
    const env = withConfig({
      auths: {
        "https://index.docker.io/v1/": { auth: auth("hub:pw") },
        "https://r.example:5000": { auth: auth("me:p:w") },
        "plain.example": { username: "u", password: "p" },
      },
    });
    expect(await dockerCredential("docker.io", env)).toEqual({ username: "hub", password: "pw" });
    expect(await dockerCredential("r.example:5000", env)).toEqual({ username: "me", password: "p:w" });
    expect(await dockerCredential("plain.example", env)).toEqual({ username: "u", password: "p" });
    expect(await dockerCredential("other.example", env)).toBeUndefined();
  });

  test("no config is no credential; a broken one is an error that names the file", async () => {
    expect(await dockerCredential("r.example", { DOCKER_CONFIG: join(dir, "absent") })).toBeUndefined();
    await expect(dockerCredential("r.example", withConfig("{ nope"))).rejects.toThrow(
      `${join(dir, "config.json")} is not valid JSON`,
    );
    await expect(
      dockerCredential("r.example", withConfig({ auths: { "r.example": { auth: auth("nocolon") } } })),
    ).rejects.toThrow("the auth of r.example is not base64 of USER:PASSWORD");
  });
});
