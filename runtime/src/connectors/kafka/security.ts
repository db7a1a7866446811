/**
 * SASL and TLS settings of KafkaSource and KafkaSink. Each setting comes from the
 * options or, when the options leave it out, from a KAFKA_* variable, so one
 * dataflow file runs locally and in a pod whose Secret provides the variables. Values
 * are checked when the source or sink is made; files are read when it first connects,
 * since a file mounted from a Secret exists in the pod but not where `waxctl df deploy`
 * loads the module to check it. Either failure is one line naming the option or
 * variable. The password and key live in private fields: nothing that prints a source
 * or sink (inspect, JSON, errors) can reach them.
 */
import { readFileSync } from "node:fs";
import { inspect } from "node:util";

export type SaslMechanism = "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512";
const MECHANISMS: readonly SaslMechanism[] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

export interface KafkaSaslOptions {
  readonly mechanism?: SaslMechanism;
  readonly username?: string;
  /** The password itself; or give `passwordFile`. */
  readonly password?: string;
  /** A file holding the password (a mounted Secret key); one trailing newline is dropped. */
  readonly passwordFile?: string;
}

export interface KafkaTlsOptions {
  /** PEM file of the CA(s) that signed the brokers' certificates; the system's CAs when left out. */
  readonly caFile?: string;
  /** PEM client certificate, for brokers that require one; needs `keyFile`. */
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** What KafkaSourceOptions and KafkaSinkOptions take besides their own settings. */
export interface KafkaSecurityOptions {
  /** SASL authentication; fields left out come from KAFKA_SASL_*. */
  readonly sasl?: KafkaSaslOptions;
  /**
   * TLS to the brokers: true (system CAs), false (plaintext, whatever the environment
   * says), or files; fields left out come from KAFKA_TLS_*.
   */
  readonly tls?: boolean | KafkaTlsOptions;
}

/**
 * The variables, one set for sources and sinks alike. Not WAXFLOW_*: a Dataflow's env
 * may not name those (the controller sets them from the spec), and these come from the
 * user, often through `valueFrom: secretKeyRef`. KAFKA_BROKERS of the examples fits in.
 */
export const KAFKA_ENV = {
  saslMechanism: "KAFKA_SASL_MECHANISM",
  saslUsername: "KAFKA_SASL_USERNAME",
  saslPassword: "KAFKA_SASL_PASSWORD",
  saslPasswordFile: "KAFKA_SASL_PASSWORD_FILE",
  tls: "KAFKA_TLS",
  tlsCaFile: "KAFKA_TLS_CA_FILE",
  tlsCertFile: "KAFKA_TLS_CERT_FILE",
  tlsKeyFile: "KAFKA_TLS_KEY_FILE",
} as const;

/** SASL as resolved: the password is reachable only through `password()`. */
export class KafkaSasl {
  readonly mechanism: SaslMechanism;
  readonly username: string;
  #password: string | undefined;
  readonly #file: Sourced | undefined;

  constructor(mechanism: SaslMechanism, username: string, password: string | Sourced) {
    this.mechanism = mechanism;
    this.username = username;
    if (typeof password === "string") this.#password = password;
    else this.#file = password;
  }

  /** The password, read from its file the first time. */
  password(): string {
    if (this.#password === undefined) {
      const file = this.#file as Sourced;
      const password = readSetting(file, "password").replace(/\r?\n$/, "");
      if (password === "") throw new RangeError(`${file.from}: the password file ${file.value} is empty`);
      this.#password = password;
    }
    return this.#password;
  }

  toJSON(): { mechanism: SaslMechanism; username: string; password: string } {
    return { mechanism: this.mechanism, username: this.username, password: "***" };
  }

  [inspect.custom](): string {
    return `KafkaSasl { mechanism: ${this.mechanism}, username: ${JSON.stringify(this.username)}, password: *** }`;
  }
}

/** PEM contents as the client takes them. */
export interface KafkaTlsPem {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** TLS as resolved: file names until `pem()` reads them (the key stays private). */
export class KafkaTls {
  readonly #ca: Sourced | undefined;
  readonly #cert: Sourced | undefined;
  readonly #key: Sourced | undefined;
  #pem: KafkaTlsPem | undefined;

  constructor(ca: Sourced | undefined, cert: Sourced | undefined, key: Sourced | undefined) {
    this.#ca = ca;
    this.#cert = cert;
    this.#key = key;
  }

  /** The CA file, for messages; undefined: the system's CAs. */
  get caFile(): string | undefined {
    return this.#ca?.value;
  }

  get clientCertificate(): boolean {
    return this.#cert !== undefined;
  }

  /** The files' PEM contents, read the first time. */
  pem(): KafkaTlsPem {
    this.#pem ??= {
      ...(this.#ca && { ca: readPem(this.#ca, "CA certificate", "CERTIFICATE") }),
      ...(this.#cert && { cert: readPem(this.#cert, "client certificate", "CERTIFICATE") }),
      ...(this.#key && { key: readPem(this.#key, "client key", "PRIVATE KEY") }),
    };
    return this.#pem;
  }

  toJSON(): { caFile: string | undefined; clientCertificate: boolean } {
    return { caFile: this.caFile, clientCertificate: this.clientCertificate };
  }

  [inspect.custom](): string {
    return `KafkaTls { ca: ${this.caFile ?? "system CAs"}${this.clientCertificate ? ", with a client certificate" : ""} }`;
  }
}

function readPem(setting: Sourced, what: string, marker: string): string {
  const text = readSetting(setting, what);
  const found =
    marker === "PRIVATE KEY" ? /-----BEGIN [A-Z ]*PRIVATE KEY/.test(text) : text.includes(`-----BEGIN ${marker}`);
  if (!found)
    throw new RangeError(`${setting.from}: ${setting.value} is not a PEM ${what} (no "-----BEGIN ${marker}")`);
  return text;
}

export interface KafkaSecurity {
  readonly sasl?: KafkaSasl;
  readonly tls?: KafkaTls;
}

type Env = Readonly<Record<string, string | undefined>>;

/** A setting and where it came from, to name in a message. */
interface Sourced {
  readonly value: string;
  readonly from: string;
}

function pick(owner: string, option: string, value: unknown, env: Env, variable: string): Sourced | undefined {
  if (value !== undefined) {
    if (typeof value !== "string" || value === "") {
      throw new RangeError(`${owner} ${option} must be a non-empty string, got ${JSON.stringify(value)}`);
    }
    return { value, from: `${owner} ${option}` };
  }
  const fromEnv = env[variable];
  return fromEnv === undefined || fromEnv === "" ? undefined : { value: fromEnv, from: variable };
}

function readSetting(setting: Sourced, what: string): string {
  try {
    return readFileSync(setting.value, "utf8");
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`${setting.from}: cannot read the ${what} file ${setting.value} (${reason})`);
  }
}

function checkObject(owner: string, option: string, value: unknown, keys: readonly string[]): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RangeError(`${owner} ${option} must be an object, got ${JSON.stringify(value)}`);
  }
  const unknown = Object.keys(value).filter((k) => !keys.includes(k));
  if (unknown.length > 0) {
    throw new RangeError(`${owner} ${option} has unknown key ${unknown.join(", ")}; known: ${keys.join(", ")}`);
  }
}

function resolveSasl(owner: string, options: KafkaSaslOptions | undefined, env: Env): KafkaSasl | undefined {
  if (options !== undefined) {
    checkObject(owner, "sasl", options, ["mechanism", "username", "password", "passwordFile"]);
  }
  const o = options ?? {};
  const mechanism = pick(owner, "sasl.mechanism", o.mechanism, env, KAFKA_ENV.saslMechanism);
  const username = pick(owner, "sasl.username", o.username, env, KAFKA_ENV.saslUsername);
  // A password given in the options outranks both variables, and so does a file.
  const fromOptions = o.password !== undefined || o.passwordFile !== undefined;
  if (o.password !== undefined && o.passwordFile !== undefined) {
    throw new RangeError(`${owner} sasl takes password or passwordFile, not both`);
  }
  const envPassword = fromOptions ? undefined : env[KAFKA_ENV.saslPassword];
  const envPasswordFile = fromOptions ? undefined : env[KAFKA_ENV.saslPasswordFile];
  if (envPassword && envPasswordFile) {
    throw new RangeError(`set ${KAFKA_ENV.saslPassword} or ${KAFKA_ENV.saslPasswordFile}, not both`);
  }
  if (o.password !== undefined && (typeof o.password !== "string" || o.password === "")) {
    // The value is a secret: its type only.
    throw new RangeError(`${owner} sasl.password must be a non-empty string, got a ${typeof o.password}`);
  }
  const file = pick(owner, "sasl.passwordFile", o.passwordFile, fromOptions ? {} : env, KAFKA_ENV.saslPasswordFile);
  const password: string | Sourced | undefined = o.password ?? (envPassword || undefined) ?? file;
  if (mechanism === undefined && username === undefined && password === undefined) return undefined;
  if (mechanism === undefined) {
    throw new RangeError(
      `${owner} sasl needs a mechanism (sasl.mechanism or ${KAFKA_ENV.saslMechanism}): ${MECHANISMS.join(", ")}`,
    );
  }
  if (!(MECHANISMS as readonly string[]).includes(mechanism.value)) {
    throw new RangeError(
      `${mechanism.from} must be ${MECHANISMS.join(", ")} (as written), got ${JSON.stringify(mechanism.value)}`,
    );
  }
  if (username === undefined) {
    throw new RangeError(
      `${owner} sasl ${mechanism.value} needs a username (sasl.username or ${KAFKA_ENV.saslUsername})`,
    );
  }
  if (password === undefined) {
    throw new RangeError(
      `${owner} sasl ${mechanism.value} needs a password (sasl.password, sasl.passwordFile, ${KAFKA_ENV.saslPassword} or ${KAFKA_ENV.saslPasswordFile})`,
    );
  }
  return new KafkaSasl(mechanism.value as SaslMechanism, username.value, password);
}

function envSwitch(env: Env): boolean | undefined {
  const raw = env[KAFKA_ENV.tls];
  if (raw === undefined || raw === "") return undefined;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new RangeError(`${KAFKA_ENV.tls} must be true or false, got ${JSON.stringify(raw)}`);
}

function resolveTls(owner: string, options: boolean | KafkaTlsOptions | undefined, env: Env): KafkaTls | undefined {
  if (options === false) return undefined;
  if (options !== undefined && options !== true) checkObject(owner, "tls", options, ["caFile", "certFile", "keyFile"]);
  const o: KafkaTlsOptions = typeof options === "object" ? options : {};
  const ca = pick(owner, "tls.caFile", o.caFile, env, KAFKA_ENV.tlsCaFile);
  const cert = pick(owner, "tls.certFile", o.certFile, env, KAFKA_ENV.tlsCertFile);
  const key = pick(owner, "tls.keyFile", o.keyFile, env, KAFKA_ENV.tlsKeyFile);
  const on = options !== undefined || envSwitch(env);
  if (on === false) return undefined;
  if (on !== true && ca === undefined && cert === undefined && key === undefined) return undefined;
  if ((cert === undefined) !== (key === undefined)) {
    const given = (cert ?? key) as Sourced;
    throw new RangeError(
      `${given.from} needs its pair: a client certificate takes both tls.certFile and tls.keyFile (${KAFKA_ENV.tlsCertFile}, ${KAFKA_ENV.tlsKeyFile})`,
    );
  }
  return new KafkaTls(ca, cert, key);
}

/** SASL and TLS for `owner` ("KafkaSource", "KafkaSink") from its options, then `env`. */
export function resolveKafkaSecurity(
  owner: string,
  options: KafkaSecurityOptions,
  env: Env = process.env,
): KafkaSecurity {
  const sasl = resolveSasl(owner, options.sasl, env);
  const tls = resolveTls(owner, options.tls, env);
  return { ...(sasl && { sasl }), ...(tls && { tls }) };
}

/** How a source or sink shows its security when printed: never the password or key. */
export function describeSecurity(security: KafkaSecurity): string {
  const parts: string[] = [];
  if (security.sasl !== undefined)
    parts.push(`sasl: ${security.sasl.mechanism} as ${JSON.stringify(security.sasl.username)}`);
  if (security.tls !== undefined) {
    parts.push(
      `tls: ${security.tls.caFile ?? "system CAs"}${security.tls.clientCertificate ? " with a client certificate" : ""}`,
    );
  }
  return parts.length === 0 ? "plaintext" : parts.join(", ");
}
