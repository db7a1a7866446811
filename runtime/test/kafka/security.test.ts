// SASL and TLS settings resolved from options and KAFKA_* (no broker): options
// win over the environment field by field, bad values fail in one line naming the
// option or variable, never echoing a password, and files are read only on first use.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, expect, test } from "vitest";
import { clientConfig } from "../../src/connectors/kafka/client.ts";
import { KafkaSink, KafkaSource } from "../../src/connectors/kafka/index.ts";
import { type KafkaSecurityOptions, resolveKafkaSecurity } from "../../src/connectors/kafka/security.ts";

const dir = mkdtempSync(join(tmpdir(), "waxflow-kafka-security-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const ca = file("ca.pem", PEM_CERT);

const resolve = (options: KafkaSecurityOptions, env: Record<string, string> = {}) =>
  resolveKafkaSecurity("KafkaSource", options, env);
/** The one-line message `fn` throws. */
const thrown = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("nothing was thrown");
};

test("nothing set: plaintext, and the client config is left as given", () => {
  expect(resolve({})).toEqual({});
  expect(clientConfig({ timeout: 5 }, resolve({}))).toEqual({ timeout: 5 });
});

test("options win over the environment field by field; a password file drops its newline", () => {
  const env = {
    KAFKA_SASL_MECHANISM: "SCRAM-SHA-256",
    KAFKA_SASL_USERNAME: "from-env",
    KAFKA_SASL_PASSWORD: "env-password",
    KAFKA_TLS_CA_FILE: join(dir, "missing.pem"),
  };
  const security = resolve({ sasl: { username: "from-options" }, tls: { caFile: ca } }, env);
  const config = clientConfig({}, security);
  expect(config).toEqual({
    sasl: { mechanism: "SCRAM-SHA-256", username: "from-options", password: "env-password" },
    tls: { ca: PEM_CERT },
  });
  const passwordFile = file("password", "file-password\n");
  expect(clientConfig({}, resolve({ sasl: { passwordFile }, tls: false }, env)).sasl).toEqual({
    mechanism: "SCRAM-SHA-256",
    username: "from-env",
    password: "file-password",
  });
  // A password in the options outranks a password file in the environment.
  expect(
    clientConfig(
      {},
      resolve({ sasl: { password: "opt" }, tls: false }, { ...env, KAFKA_SASL_PASSWORD_FILE: passwordFile }),
    ).sasl,
  ).toMatchObject({ password: "opt" });
});

test("TLS: on with system CAs by option or variable, off by tls: false whatever the environment says", () => {
  expect(clientConfig({}, resolve({ tls: true })).tls).toEqual({});
  expect(clientConfig({}, resolve({}, { KAFKA_TLS: "true" })).tls).toEqual({});
  expect(clientConfig({}, resolve({ tls: false }, { KAFKA_TLS_CA_FILE: ca })).tls).toBeUndefined();
  const cert = file("client.pem", PEM_CERT);
  const key = file("client.key", PEM_KEY);
  expect(clientConfig({}, resolve({ tls: { certFile: cert, keyFile: key } })).tls).toEqual({
    cert: PEM_CERT,
    key: PEM_KEY,
  });
});

test.each<[string, KafkaSecurityOptions, Record<string, string>, string]>([
  [
    "unknown mechanism (option)",
    { sasl: { mechanism: "plain" as "PLAIN", username: "u", password: "p" } },
    {},
    "KafkaSource sasl.mechanism must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
  ],
  [
    "unknown mechanism (variable)",
    {},
    { KAFKA_SASL_MECHANISM: "GSSAPI", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD: "p" },
    "KAFKA_SASL_MECHANISM must be PLAIN",
  ],
  [
    "no mechanism",
    { sasl: { username: "u", password: "p" } },
    {},
    "KafkaSource sasl needs a mechanism (sasl.mechanism or KAFKA_SASL_MECHANISM)",
  ],
  [
    "no username",
    {},
    { KAFKA_SASL_MECHANISM: "PLAIN", KAFKA_SASL_PASSWORD: "p" },
    "KafkaSource sasl PLAIN needs a username",
  ],
  ["no password", { sasl: { mechanism: "PLAIN", username: "u" } }, {}, "KafkaSource sasl PLAIN needs a password"],
  [
    "both in the options",
    { sasl: { mechanism: "PLAIN", username: "u", password: "p", passwordFile: "/x" } },
    {},
    "KafkaSource sasl takes password or passwordFile, not both",
  ],
  [
    "both variables",
    {},
    { KAFKA_SASL_PASSWORD: "p", KAFKA_SASL_PASSWORD_FILE: "/x" },
    "set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both",
  ],
  [
    "missing password file",
    {},
    { KAFKA_SASL_MECHANISM: "PLAIN", KAFKA_SASL_USERNAME: "u", KAFKA_SASL_PASSWORD_FILE: join(dir, "nope") },
    `KAFKA_SASL_PASSWORD_FILE: cannot read the password file ${join(dir, "nope")} (ENOENT)`,
  ],
  [
    "missing CA file",
    { tls: { caFile: join(dir, "nope.pem") } },
    {},
    `KafkaSource tls.caFile: cannot read the CA certificate file ${join(dir, "nope.pem")} (ENOENT)`,
  ],
  [
    "a CA file that is no PEM",
    {},
    { KAFKA_TLS_CA_FILE: file("junk", "junk") },
    `KAFKA_TLS_CA_FILE: ${join(dir, "junk")} is not a PEM CA certificate`,
  ],
  ["a certificate without its key", { tls: { certFile: ca } }, {}, "KafkaSource tls.certFile needs its pair"],
  ["a bad switch", {}, { KAFKA_TLS: "yes" }, 'KAFKA_TLS must be true or false, got "yes"'],
  [
    "an unknown key",
    { sasl: { mechanism: "PLAIN", user: "u" } as unknown as KafkaSecurityOptions["sasl"] },
    {},
    "KafkaSource sasl has unknown key user",
  ],
])("%s fails in one line naming it", (_name, options, env, expected) => {
  expect(thrown(() => clientConfig({}, resolve(options, env)))).toContain(expected);
});

test("a password that is not a string is reported by its type, not echoed", () => {
  const options = { sasl: { mechanism: "PLAIN", username: "u", password: 4711 } } as unknown as KafkaSecurityOptions;
  const message = thrown(() => resolve(options));
  expect(message).toBe("KafkaSource sasl.password must be a non-empty string, got a number");
});

test("the resolved settings print no password", () => {
  const security = resolve({ sasl: { mechanism: "PLAIN", username: "u", password: "hunter2-secret" } });
  for (const shown of [inspect(security, { depth: 5 }), JSON.stringify(security), String(security.sasl)]) {
    expect(shown).not.toContain("hunter2-secret");
  }
});

test("files are read on first use: a source made where the Secret is not mounted fails only when it connects", async () => {
  const env = { KAFKA_SASL_PASSWORD_FILE: join(dir, "not-mounted"), KAFKA_TLS_CA_FILE: join(dir, "not-mounted.pem") };
  const saved = { ...process.env };
  Object.assign(process.env, env, { KAFKA_SASL_MECHANISM: "PLAIN", KAFKA_SASL_USERNAME: "u" });
  try {
    // What `waxctl df deploy` does when it loads the module to check it.
    const source = new KafkaSource(["127.0.0.1:1"], ["t"]);
    const sink = new KafkaSink(["127.0.0.1:1"], "t");
    expect(source.security).toBe(`sasl: PLAIN as "u", tls: ${join(dir, "not-mounted.pem")}`);
    await expect(source.listParts()).rejects.toThrow(
      `KAFKA_SASL_PASSWORD_FILE: cannot read the password file ${join(dir, "not-mounted")} (ENOENT)`,
    );
    expect(() => sink.build("flow.out", 0)).toThrow("KAFKA_SASL_PASSWORD_FILE: cannot read the password file");
  } finally {
    for (const k of ["KAFKA_SASL_PASSWORD_FILE", "KAFKA_TLS_CA_FILE", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME"]) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});
