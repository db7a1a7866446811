// A real registry for tests: the CNCF Distribution registry (cli/install-tools.sh) on a free
// loopback port, storing into a temporary folder. Users log in with basic auth (htpasswd),
// or through a token service, as on Docker Hub and GHCR: the test's own, issuing JWTs
// that the registry checks against the service's key set.
import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { exportJWK, SignJWT } from "jose";
import { dump } from "js-yaml";
import { freePort } from "../../runtime/test/support/ports.ts";

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  readonly host: string;
  /** The scopes the token service granted, in order (with `tokens`). */
  readonly scopes: readonly string[];
  stop(): Promise<void>;
}

export interface RegistryAuth {
  readonly users: Readonly<Record<string, string>>;
  /** Through a token service (Bearer challenges) rather than basic auth. */
  readonly tokens?: boolean;
}

/** A token service: checks basic credentials, grants what each scope asks, and records the scopes. */
async function startTokenService(dir: string, users: Readonly<Record<string, string>>) {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const kid = "waxctl-test-key";
  const jwks = join(dir, "jwks.json");
  writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" }] }));
  const scopes: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://token");
    const [user, password] = Buffer.from((req.headers.authorization ?? "").replace(/^Basic /, ""), "base64")
      .toString()
      .split(":");
    if (user === undefined || users[user] !== password) {
      res.writeHead(401).end();
      return;
    }
    const scope = url.searchParams.get("scope") ?? "";
    scopes.push(scope);
    const [type, name, actions] = scope.split(":");
    void new SignJWT({ access: [{ type, name, actions: (actions ?? "").split(",") }] })
      .setProtectedHeader({ alg: "EdDSA", kid })
      .setIssuer("waxctl-test-issuer")
      .setAudience(url.searchParams.get("service") ?? "")
      .setSubject(user)
      .setIssuedAt()
      .setNotBefore("0s")
      .setExpirationTime("5m")
      .setJti(randomUUID())
      .sign(privateKey)
      .then((token) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token })));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as { port: number };
  return {
    config: { realm: `http://127.0.0.1:${port}/token`, service: "waxctl-test", issuer: "waxctl-test-issuer", jwks },
    scopes,
    stop: () => new Promise((ok) => server.close(ok)),
  };
}

export interface RegistryServerOptions {
  readonly auth?: RegistryAuth;
  /** A fixed port on every address (kind nodes reach it at their network's gateway); default a free loopback one. */
  readonly hostPort?: number;
}

export async function startRegistry(binary: string, options: RegistryServerOptions = {}): Promise<TestRegistry> {
  const { auth, hostPort } = options;
  const dir = mkdtempSync(join(tmpdir(), "waxctl-registry-"));
  const port = hostPort ?? (await freePort());
  const htpasswd = join(dir, "htpasswd");
  writeFileSync(
    htpasswd,
    Object.entries(auth?.users ?? {})
      .map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4)}\n`)
      .join(""),
  );
  const tokens = auth?.tokens === true ? await startTokenService(dir, auth.users) : undefined;
  const config = {
    version: 0.1,
    log: { level: "warn" },
    storage: { filesystem: { rootdirectory: join(dir, "data") } },
    http: { addr: hostPort === undefined ? `127.0.0.1:${port}` : `:${port}` },
    ...(tokens !== undefined
      ? { auth: { token: tokens.config } }
      : auth !== undefined
        ? { auth: { htpasswd: { realm: "waxctl-test", path: htpasswd } } }
        : {}),
  };
  writeFileSync(join(dir, "config.yml"), dump(config));
  // The registry reads REGISTRY_* variables as settings: none of ours may leak into it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("REGISTRY_")));
  const child: ChildProcess = spawn(binary, ["serve", join(dir, "config.yml")], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const up = await fetch(`http://${host}/v2/`).then(
      (res) => res.status === 200 || res.status === 401,
      () => false,
    );
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      await tokens?.stop();
      throw new Error(`the registry did not start on ${host}: ${stderr}`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return {
    host,
    scopes: tokens?.scopes ?? [],
    async stop() {
      await tokens?.stop();
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.once("exit", ok));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
