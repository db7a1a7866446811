/**
 * A real Kafka broker for the connector's tests: one KRaft node (broker and controller)
 * on 127.0.0.1 free ports, its storage in a temporary directory, built from Maven
 * Central by broker.sh (cached under ~/.cache/waxflow/kafka/<version>). The broker's log
 * is kept and shown when it fails to start.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePorts } from "../support/ports.ts";

export const KAFKA_VERSION = "4.1.1";
// About 5 s on an idle machine; minutes when its cores are shared with much else.
const START_TIMEOUT_MS = 150_000;

export interface Broker {
  /** `127.0.0.1:port` of the client listener (plaintext). */
  readonly address: string;
  readonly port: number;
  /** `127.0.0.1:port` of the SASL_SSL listener, when started with `saslSsl`. */
  readonly saslSslAddress: string | undefined;
  /** Everything the broker logged so far. */
  log(): string;
  /** Kills the broker (SIGKILL) and waits for it; its storage stays for `restart`. */
  kill(): Promise<void>;
  /** Starts the broker again on the same ports and storage. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function libs(): string {
  const script = join(import.meta.dirname, "broker.sh");
  try {
    return execFileSync("bash", [script], { env: { ...process.env, KAFKA_VERSION }, encoding: "utf8" }).trim();
  } catch (err) {
    throw new Error(`could not resolve Kafka ${KAFKA_VERSION} with ${script}: ${(err as Error).message}`);
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}

/** A SASL_SSL listener beside the plaintext one (which the tests' own helpers keep using). */
export interface SaslSslListener {
  /** PEM files of the broker's unencrypted PKCS#8 key and its certificate (for 127.0.0.1). */
  readonly keyFile: string;
  readonly certFile: string;
  /** A CA whose client certificates the broker accepts (requested, not required). */
  readonly clientCaFile?: string;
  /** PLAIN users: name to password. */
  readonly plain?: Readonly<Record<string, string>>;
  /** SCRAM users (SHA-256 and SHA-512 alike), written at format time with --add-scram. */
  readonly scram?: Readonly<Record<string, string>>;
}

/** JAAS option values are quoted strings: the tests' names and passwords need no escapes. */
function jaasQuoted(value: string): string {
  if (/["\\\s;]/.test(value)) throw new Error(`test credential ${JSON.stringify(value)} needs no quoting, please`);
  return `"${value}"`;
}

function saslSslProperties(listener: SaslSslListener): string[] {
  const plainUsers = Object.entries(listener.plain ?? {})
    .map(([user, password]) => `user_${user}=${jaasQuoted(password)}`)
    .join(" ");
  return [
    "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
    "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
    // PEM straight from openssl: no keystore to convert.
    "listener.name.sasl_ssl.ssl.keystore.type=PEM",
    `listener.name.sasl_ssl.ssl.keystore.certificate.chain=${pemValue(listener.certFile)}`,
    `listener.name.sasl_ssl.ssl.keystore.key=${pemValue(listener.keyFile)}`,
    ...(listener.clientCaFile === undefined
      ? []
      : [
          "listener.name.sasl_ssl.ssl.truststore.type=PEM",
          `listener.name.sasl_ssl.ssl.truststore.certificates=${pemValue(listener.clientCaFile)}`,
          "listener.name.sasl_ssl.ssl.client.auth=requested",
        ]),
  ];
}

/** A PEM file as one properties value: newlines escaped. */
function pemValue(file: string): string {
  return readFileSync(file, "utf8").trim().split("\n").join("\\n");
}

/** `--add-scram` arguments of the storage format, one per user and mechanism. */
function scramArguments(listener: SaslSslListener | undefined): string[] {
  return Object.entries(listener?.scram ?? {}).flatMap(([user, password]) =>
    ["SCRAM-SHA-256", "SCRAM-SHA-512"].flatMap((m) => ["--add-scram", `${m}=[name=${user},password=${password}]`]),
  );
}

export interface BrokerOptions {
  /** The plaintext listener's port; a free one when left out. */
  readonly clientPort?: number;
  readonly saslSsl?: SaslSslListener;
}

/** Formats a fresh storage directory and starts a broker on it. */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const classpath = `${libs()}/*`;
  const dir = mkdtempSync(join(tmpdir(), "waxflow-kafka-"));
  const [free, controllerPort, saslSslPort] = (await freePorts(3)) as [number, number, number];
  const port = options.clientPort ?? free;
  const saslSsl = options.saslSsl;
  const listeners = [`PLAINTEXT://127.0.0.1:${port}`, ...(saslSsl ? [`SASL_SSL://127.0.0.1:${saslSslPort}`] : [])];
  const properties = join(dir, "server.properties");
  writeFileSync(
    properties,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=${listeners.join(",")},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=${listeners.join(",")}`,
      "controller.listener.names=CONTROLLER",
      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
      ...(saslSsl ? saslSslProperties(saslSsl) : []),
      "inter.broker.listener.name=PLAINTEXT",
      `log.dirs=${join(dir, "data")}`,
      "num.partitions=1",
      "auto.create.topics.enable=false",
      "offsets.topic.replication.factor=1",
      "offsets.topic.num.partitions=1",
      "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1",
      "transaction.state.log.num.partitions=1",
      "group.initial.rebalance.delay.ms=0",
      // Transaction markers and read_committed reads are not held back for the tests.
      "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "log4j2.properties"),
    [
      "rootLogger.level=WARN",
      "rootLogger.appenderRef.out.ref=out",
      "appender.out.type=Console",
      "appender.out.name=out",
      "appender.out.layout.type=PatternLayout",
      "appender.out.layout.pattern=[%d] %p %m (%c)%n",
      "logger.kafka.name=kafka.server.KafkaRaftServer",
      "logger.kafka.level=INFO",
      "",
    ].join("\n"),
  );
  const java = (args: string[]): string[] => [
    "-Xmx512m",
    `-Dlog4j2.configurationFile=${join(dir, "log4j2.properties")}`,
    "-cp",
    classpath,
    ...args,
  ];
  // A cluster id is 16 random bytes in URL-safe base64, as `kafka-storage random-uuid` prints.
  // Given as `--cluster-id=ID`: one in 64 starts with "-", which a separate argument would
  // make look like an option.
  const clusterId = randomBytes(16).toString("base64url");
  execFileSync(
    "java",
    java([
      "kafka.tools.StorageTool",
      "format",
      `--cluster-id=${clusterId}`,
      "-c",
      properties,
      ...scramArguments(saslSsl),
    ]),
    { stdio: "pipe" },
  );

  let output = "";
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const launch = async (): Promise<void> => {
    const proc = spawn("java", java(["kafka.Kafka", properties]), { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    proc.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    proc.stderr?.on("data", (d: Buffer) => (output += d.toString()));
    exited = new Promise((done) => proc.once("exit", () => done()));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await answers(port))) {
      if (proc.exitCode !== null) throw new Error(`Kafka broker exited with ${proc.exitCode}:\n${output}`);
      if (Date.now() > deadline)
        throw new Error(`Kafka broker not answering on ${port} after ${START_TIMEOUT_MS / 1000} s:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const kill = async (): Promise<void> => {
    child?.kill("SIGKILL");
    await exited;
  };
  await launch();
  return {
    address: `127.0.0.1:${port}`,
    port,
    saslSslAddress: saslSsl ? `127.0.0.1:${saslSslPort}` : undefined,
    log: () => output,
    kill,
    restart: launch,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
