// The user's registry credentials, where Docker keeps them: `$DOCKER_CONFIG/config.json`
// (default ~/.docker/config.json), either inline (`auths`, written by `docker login`
// without a credential store) or in a credential helper (`credHelpers` per host, else
// `credsStore`), which is run as `docker-credential-<name> get` with the host on stdin.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { OciError } from "./errors.ts";

export interface Credential {
  readonly username: string;
  readonly password: string;
}

interface DockerConfig {
  readonly auths?: Readonly<Record<string, { auth?: string; username?: string; password?: string }>>;
  readonly credHelpers?: Readonly<Record<string, string>>;
  readonly credsStore?: string;
}

/** Docker Hub's credentials are stored under its legacy index address. */
const DOCKER_HUB = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/** `https://host:port/v1/` and `host:port` name the same registry in config.json. */
function hostOf(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  return DOCKER_HUB.has(host) ? "docker.io" : host;
}

export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json");
}

/** The credential stored for `host`, or undefined when there is none. */
export async function dockerCredential(
  host: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Credential | undefined> {
  const file = configFile(env);
  const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw new OciError(`cannot read ${file}: ${err.message}`);
  });
  if (text === undefined) return undefined;
  let config: DockerConfig;
  try {
    config = JSON.parse(text) as DockerConfig;
  } catch (err) {
    throw new OciError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const wanted = hostOf(host);
  const helper =
    Object.entries(config.credHelpers ?? {}).find(([key]) => hostOf(key) === wanted)?.[1] ?? config.credsStore;
  if (helper !== undefined) {
    const found = await fromHelper(helper, wanted === "docker.io" ? "https://index.docker.io/v1/" : host, env);
    if (found !== undefined) return found;
  }
  const entry = Object.entries(config.auths ?? {}).find(([key]) => hostOf(key) === wanted)?.[1];
  if (entry === undefined) return undefined;
  if (entry.auth !== undefined) {
    const decoded = Buffer.from(entry.auth, "base64").toString();
    const colon = decoded.indexOf(":");
    if (colon < 0) throw new OciError(`${file}: the auth of ${host} is not base64 of USER:PASSWORD`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined)
    return { username: entry.username, password: entry.password };
  return undefined;
}

/** Asks `docker-credential-<helper>`; its "credentials not found" is no credential, anything else an error. */
function fromHelper(helper: string, server: string, env: NodeJS.ProcessEnv): Promise<Credential | undefined> {
  const command = `docker-credential-${helper}`;
  return new Promise((ok, fail) => {
    const child = spawn(command, ["get"], { env, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.resume();
    child.on("error", (err: NodeJS.ErrnoException) =>
      fail(
        new OciError(
          err.code === "ENOENT"
            ? `${command} not found: config.json names the credential helper "${helper}"; install it or remove it from ${configFile(env)}`
            : `${command}: ${err.message}`,
        ),
      ),
    );
    child.on("close", (code) => {
      if (code !== 0) {
        if (/credentials not found/i.test(out)) ok(undefined);
        else fail(new OciError(`${command} get failed for ${server} (exit ${code}): ${out.trim().slice(0, 200)}`));
        return;
      }
      try {
        const { Username, Secret } = JSON.parse(out) as { Username?: string; Secret?: string };
        ok(Username === undefined || Secret === undefined ? undefined : { username: Username, password: Secret });
      } catch {
        fail(new OciError(`${command} get printed something other than JSON for ${server}`));
      }
    });
    child.stdin.end(server);
  });
}
