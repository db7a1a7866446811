/**
 * The process configuration of `waxflow run`, resolved from the command line and the
 * environment by one pure function: a flag wins over its variable, a variable over the
 * default, and every bad value is a UsageError naming the flag or variable at fault.
 */
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import type { ClusterSecret } from "../cluster/handshake.ts";
import { DEFAULT_EPOCH_INTERVAL_MS, DEFAULT_PEER_TIMEOUT_MS, DEFAULT_START_TIMEOUT_MS } from "../defaults.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_PROGRESS_INTERVAL_MS } from "../log.ts";
import { DEFAULT_BACKUP_KEEP } from "../recovery/backup-config.ts";
import { parseStartFrom, type StartFrom } from "../recovery/start-from.ts";

/** The port every process listens on for its peers. */
export const CLUSTER_PORT = 2101;
export const DEFAULT_API_PORT = 3030;

export interface RunConfig {
  /** The dataflow module's path, as given (relative to the working directory). */
  readonly modulePath: string;
  /** The export to run (a Dataflow or a factory returning one); undefined: `flow`, else default. */
  readonly exportName: string | undefined;
  readonly workersPerProcess: number;
  readonly processId: number;
  /** `host:port` of every process in process order; empty when this is the only process. */
  readonly addresses: readonly string[];
  readonly recoveryDirectory: string | undefined;
  /** Create the recovery store when the directory holds none (a new pod's empty volume). */
  readonly recoveryInit: boolean;
  /** Drop recovered state of steps the dataflow no longer has, instead of refusing to start. */
  readonly dropRemovedSteps: boolean;
  /**
   * This process only hands its recovery store over to a cluster that no longer includes
   * it: its index is beyond the cluster's process count.
   */
  readonly holder: boolean;
  /** How long to wait for peers, and for holders of missing stores. */
  readonly startTimeoutMs: number;
  readonly epochIntervalMs: number;
  /** Undefined unless given: how long snapshots are kept is only meaningful with recovery. */
  readonly backupIntervalMs: number | undefined;
  /** Backups of the recovery store to an S3-compatible bucket; undefined without --backup-bucket. */
  readonly backup: BackupSettings | undefined;
  readonly apiPort: number;
  /** Milliseconds between progress lines on stderr; 0 for none. */
  readonly progressIntervalMs: number;
  /** No start, cluster, resume, progress or end lines on stderr: only failures, as Bytewax. */
  readonly quiet: boolean;
  /** Print full stacks on failure. */
  readonly debug: boolean;
  /**
   * Run the dataflow in a child process and re-form the cluster when it fails for a cause
   * a restart cures (a peer lost), instead of exiting and leaving the restart to the kubelet.
   */
  readonly supervise: boolean;
  readonly mesh: MeshSettings;
  /** Serve GET /state/STEP, to requests carrying the token derived from the cluster secret. */
  readonly stateQuery: boolean;
  /** Start from an empty store or a savepoint, once per value (recovery/start-from.ts); undefined: the volume. */
  readonly startFrom: StartFrom | undefined;
  /** The bucket prefix `savepoint:<id>` is read from; undefined: the backup prefix. */
  readonly savepointPrefix: string | undefined;
}

/** Where backups go (recovery/backup.ts); credentials come from AWS_* variables or files. */
export interface BackupSettings {
  readonly bucket: string;
  readonly endpoint: string | undefined;
  readonly prefix: string;
  readonly region: string | undefined;
  readonly keep: number;
  readonly keepAgeMs: number;
}

/** How this process's connections to its peers are secured and timed. */
export interface MeshSettings {
  /** Undefined only for a process that never connects to another (one process, no holder). */
  readonly secret: ClusterSecret | undefined;
  readonly tls: boolean;
  /** Where to listen instead of this process's host in the addresses (a pod's IP). */
  readonly listenHost: string | undefined;
  readonly peerTimeoutMs: number;
}

export type Command =
  | { readonly kind: "help" }
  | { readonly kind: "run"; readonly config: RunConfig }
  | { readonly kind: "recovery-init"; readonly directory: string; readonly partitions: number }
  | {
      readonly kind: "graph";
      readonly modulePath: string;
      readonly exportName: string | undefined;
      readonly format: GraphFormat;
    };

export const GRAPH_FORMATS = ["mermaid", "dot"] as const;
export type GraphFormat = (typeof GRAPH_FORMATS)[number];

export type Env = Readonly<Record<string, string | undefined>>;

/** What resolution may read besides argv and env; injected so the function stays pure. */
export interface ConfigIo {
  readonly readHostfile: (path: string) => string;
  readonly readSecretFile?: (path: string) => Buffer;
}

/** Flag name (long), short letter and variable: the single table behind parsing and help. */
export const RUN_OPTIONS = {
  "workers-per-process": { type: "string", short: "w" },
  "process-id": { type: "string", short: "i" },
  addresses: { type: "string", short: "a" },
  "recovery-directory": { type: "string", short: "r" },
  "recovery-init": { type: "boolean" },
  "drop-removed-steps": { type: "boolean" },
  "snapshot-interval": { type: "string", short: "s" },
  "backup-interval": { type: "string", short: "b" },
  "backup-bucket": { type: "string" },
  "backup-endpoint": { type: "string" },
  "backup-prefix": { type: "string" },
  "backup-region": { type: "string" },
  "backup-keep": { type: "string" },
  "backup-keep-age": { type: "string" },
  "start-from": { type: "string" },
  "savepoint-prefix": { type: "string" },
  "start-timeout": { type: "string" },
  "progress-interval": { type: "string" },
  quiet: { type: "boolean", short: "q" },
  holder: { type: "boolean" },
  "no-supervise": { type: "boolean" },
  // The mesh: how processes prove they belong to the cluster, and when a peer is lost.
  "cluster-secret": { type: "string" },
  "cluster-secret-file": { type: "string" },
  "insecure-cluster": { type: "boolean" },
  "cluster-tls": { type: "boolean" },
  listen: { type: "string" },
  "peer-timeout": { type: "string" },
  "state-query": { type: "boolean" },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Flag = keyof typeof RUN_OPTIONS;
type StringFlag = { [K in Flag]: (typeof RUN_OPTIONS)[K]["type"] extends "string" ? K : never }[Flag];
type BooleanFlag = Exclude<Flag, StringFlag>;
type Values = { readonly [K in StringFlag]?: string } & { readonly [K in BooleanFlag]?: boolean };

/** What each flag that takes a value expects, for the line that says it is missing. */
const VALUE_OF: Partial<Record<StringFlag, string>> = {
  "workers-per-process": "a whole number >= 1, e.g. -w 2",
  "process-id": "this process's index, e.g. -i 0",
  addresses: 'every process\'s host:port in process order, e.g. -a "10.0.0.1:2101;10.0.0.2:2101"',
  "recovery-directory": "the recovery store's directory, e.g. -r /var/lib/waxflow/recovery",
  "snapshot-interval": "seconds between snapshots (> 0), e.g. -s 10",
  "backup-interval": "seconds snapshots are kept (>= 0), e.g. -b 30",
  "backup-bucket": "the bucket backups go to, e.g. --backup-bucket waxflow-backups",
  "backup-endpoint": "the S3 endpoint URL, e.g. --backup-endpoint http://seaweedfs:8333",
  "backup-prefix": "a key prefix, e.g. --backup-prefix prod/wordcount",
  "backup-region": "the bucket's region, e.g. --backup-region eu-west-1",
  "backup-keep": "how many complete backup sets to keep (>= 1), e.g. --backup-keep 3",
  "backup-keep-age": "seconds complete backup sets are kept whatever their number (>= 0), e.g. --backup-keep-age 86400",
  "start-timeout": "seconds to wait for peers (> 0), e.g. --start-timeout 60",
  "start-from": "fresh:<token> or savepoint:<id>, e.g. --start-from savepoint:sp-20261205-103500-3f9a",
  "savepoint-prefix": "the backup prefix the savepoint lives under, e.g. --savepoint-prefix prod/wordcount",
};

const SEE_HELP = "see `waxflow --help`";

/**
 * argv -> values and positionals. parseArgs' own strict mode refuses a value that starts
 * with '-' (`-s -1`) as "ambiguous" and explains itself over several lines; here such a value
 * reaches the flag's own check, which says what the flag takes.
 */
function parseFlags(argv: readonly string[]): { values: Values; positionals: string[] } {
  const { values, positionals, tokens } = parseArgs({
    args: [...argv],
    options: RUN_OPTIONS,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    if (!Object.hasOwn(RUN_OPTIONS, token.name)) throw new UsageError(`unknown flag ${token.rawName}; ${SEE_HELP}`);
    const flag = token.name as Flag;
    const label = flagLabel(flag);
    if (RUN_OPTIONS[flag].type === "string" && token.value === undefined) {
      const wanted = VALUE_OF[flag as StringFlag];
      throw new UsageError(`${label} needs a value${wanted === undefined ? `; ${SEE_HELP}` : `: ${wanted}`}`);
    }
    if (RUN_OPTIONS[flag].type === "boolean" && token.value !== undefined) {
      throw new UsageError(
        `${label} takes no value, got ${JSON.stringify(token.value)}; write ${label.split("/").pop()} alone`,
      );
    }
  }
  return { values: values as Values, positionals };
}

/** `-w/--workers-per-process`, or `--holder` for a flag without a short letter. */
function flagLabel(flag: Flag): string {
  const option = RUN_OPTIONS[flag];
  return "short" in option ? `-${option.short}/--${flag}` : `--${flag}`;
}

/** `waxflow <argv...>` -> what to do. */
export function resolveCommand(argv: readonly string[], env: Env, io: ConfigIo): Command {
  // `graph` has flags of its own: parsed apart, so `run` never accepts --format.
  if (argv[0] === "graph") return graphCommand(argv.slice(1));
  const parsed = parseFlags(argv);
  const { values, positionals } = parsed;
  if (values.help === true) return { kind: "help" };
  const [command, target, ...extra] = positionals;
  if (command === undefined) throw new UsageError("missing command: expected `waxflow run <module>[:name]`");
  if (command === "recovery") return recoveryInit(positionals.slice(1));
  if (command !== "run") {
    throw new UsageError(
      `unknown command ${JSON.stringify(command)}: the commands are \`run\`, \`graph\` and \`recovery init\``,
    );
  }
  if (target === undefined) throw new UsageError("missing dataflow module: expected `waxflow run <module>[:name]`");
  if (extra.length > 0) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(extra[0])}: expected \`waxflow run <module>[:name] [flags]\``,
    );
  }
  return { kind: "run", config: resolveRunConfig(target, values, env, io) };
}

/** `waxflow recovery init DIR COUNT`: creates COUNT empty recovery partitions in DIR. */
function recoveryInit(args: readonly string[]): Command {
  const [sub, directory, count, ...extra] = args;
  const usage = "expected `waxflow recovery init <dir> <partition count>`";
  if (sub !== "init") throw new UsageError(`unknown recovery command ${JSON.stringify(sub ?? "")}: ${usage}`);
  if (directory === undefined || count === undefined) throw new UsageError(`missing argument: ${usage}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: ${usage}`);
  const partitions = Number(count);
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new UsageError(`partition count must be a whole number >= 1, got ${JSON.stringify(count)}`);
  }
  return { kind: "recovery-init", directory, partitions };
}

/** `waxflow graph <module>[:name] [--format mermaid|dot]`: prints the dataflow's steps and streams. */
function graphCommand(argv: readonly string[]): Command {
  const usage = "expected `waxflow graph <module>[:name] [--format mermaid|dot]`";
  const { values, positionals, tokens } = parseArgs({
    args: [...argv],
    options: { format: { type: "string", short: "f" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    if (token.name !== "format" && token.name !== "help")
      throw new UsageError(`unknown flag ${token.rawName}; ${usage}`);
    if (token.name === "format" && token.value === undefined)
      throw new UsageError(`-f/--format needs a value: mermaid or dot`);
  }
  if (values.help === true) return { kind: "help" };
  const [target, ...extra] = positionals;
  if (target === undefined) throw new UsageError(`missing dataflow module: ${usage}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: ${usage}`);
  const format = values.format ?? "mermaid";
  if (typeof format !== "string" || !(GRAPH_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--format must be one of ${GRAPH_FORMATS.join(", ")}, got ${JSON.stringify(format)}`);
  }
  return { kind: "graph", ...splitTarget(target), format: format as GraphFormat };
}

function resolveRunConfig(target: string, values: Values, env: Env, io: ConfigIo): RunConfig {
  const { modulePath, exportName } = splitTarget(target);
  const { addresses, derived } = resolveAddresses(values, env, io);
  const processId = resolveProcessId(values, env);
  const recoveryDirectory = setting(values, env, "recovery-directory", "WAXFLOW_RECOVERY_DIRECTORY")?.value;
  const holder = resolveHolder(processId, addresses, derived, values.holder === true, recoveryDirectory);
  const snapshot = setting(values, env, "snapshot-interval", "WAXFLOW_SNAPSHOT_INTERVAL");
  const backup = setting(values, env, "backup-interval", "WAXFLOW_BACKUP_INTERVAL");
  const workers = setting(values, env, "workers-per-process", "WAXFLOW_WORKERS_PER_PROCESS");
  const startTimeout = setting(values, env, "start-timeout", "WAXFLOW_START_TIMEOUT");
  const progress = setting(values, env, "progress-interval", "WAXFLOW_PROGRESS_INTERVAL");
  const recoveryInit = values["recovery-init"] === true || flagVariable(env, "WAXFLOW_RECOVERY_INIT");
  const dropRemovedSteps = values["drop-removed-steps"] === true || flagVariable(env, "WAXFLOW_DROP_REMOVED_STEPS");
  const apiPort = envSetting(env, "WAXFLOW_API_PORT");
  const connects = addresses.length > 1 || holder;
  const superviseAllowed =
    values["no-supervise"] !== true &&
    (envSetting(env, "WAXFLOW_SUPERVISE") === undefined || flagVariable(env, "WAXFLOW_SUPERVISE"));
  const mesh = resolveMesh(values, env, io, connects);
  const stateQuery = values["state-query"] === true || flagVariable(env, "WAXFLOW_STATE_QUERY");
  if (stateQuery && !(mesh.secret instanceof Uint8Array)) {
    throw new UsageError(
      "--state-query (WAXFLOW_STATE_QUERY) needs a cluster secret, which its token is derived from: " +
        "set WAXFLOW_CLUSTER_SECRET or WAXFLOW_CLUSTER_SECRET_FILE (--insecure-cluster has none)",
    );
  }
  return {
    modulePath,
    exportName,
    workersPerProcess: workers === undefined ? 1 : wholeNumber(workers, 1),
    processId: processId.value,
    addresses,
    recoveryDirectory,
    recoveryInit,
    dropRemovedSteps,
    holder,
    startTimeoutMs: startTimeout === undefined ? DEFAULT_START_TIMEOUT_MS : seconds(startTimeout, false),
    epochIntervalMs: snapshot === undefined ? DEFAULT_EPOCH_INTERVAL_MS : seconds(snapshot, false),
    backupIntervalMs: backup === undefined ? undefined : seconds(backup, true),
    backup: resolveBackup(values, env),
    apiPort: apiPort === undefined ? DEFAULT_API_PORT : port(apiPort),
    progressIntervalMs: progress === undefined ? DEFAULT_PROGRESS_INTERVAL_MS : seconds(progress, true),
    quiet: values.quiet === true || flagVariable(env, "WAXFLOW_QUIET"),
    debug: values.debug === true || env.WAXFLOW_DEBUG === "1",
    // Only a process with peers can lose one: a lone process gains nothing from a
    // supervisor and would pay a second Node start (~80 ms) before its first item.
    supervise: connects && superviseAllowed,
    mesh,
    stateQuery,
    ...resolveStartFrom(values, env),
  };
}

function resolveStartFrom(values: Values, env: Env): Pick<RunConfig, "startFrom" | "savepointPrefix"> {
  const given = setting(values, env, "start-from", "WAXFLOW_START_FROM");
  const prefix = setting(values, env, "savepoint-prefix", "WAXFLOW_SAVEPOINT_PREFIX");
  const startFrom = given === undefined ? undefined : parseStartFrom(given.value);
  if (startFrom !== undefined && "error" in startFrom) throw new UsageError(`${given?.source}: ${startFrom.error}`);
  return { startFrom, savepointPrefix: prefix?.value };
}

function resolveBackup(values: Values, env: Env): BackupSettings | undefined {
  const get = (flag: StringFlag, variable: string) => setting(values, env, flag, variable);
  const bucket = get("backup-bucket", "WAXFLOW_BACKUP_BUCKET");
  const others = [
    get("backup-endpoint", "WAXFLOW_BACKUP_ENDPOINT"),
    get("backup-prefix", "WAXFLOW_BACKUP_PREFIX"),
    get("backup-region", "WAXFLOW_BACKUP_REGION"),
    get("backup-keep", "WAXFLOW_BACKUP_KEEP"),
    get("backup-keep-age", "WAXFLOW_BACKUP_KEEP_AGE"),
  ] as const;
  const [endpoint, prefix, region, keep, keepAge] = others;
  if (bucket === undefined) {
    const stray = others.find((o) => o !== undefined);
    if (stray !== undefined)
      throw new UsageError(`${stray.source} needs a bucket: add --backup-bucket (WAXFLOW_BACKUP_BUCKET)`);
    return undefined;
  }
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(endpoint.value)) {
    throw new UsageError(
      `${endpoint.source} must be an http:// or https:// URL, got ${JSON.stringify(endpoint.value)}`,
    );
  }
  return {
    bucket: bucket.value,
    endpoint: endpoint?.value,
    prefix: prefix?.value ?? "",
    region: region?.value,
    keep: keep === undefined ? DEFAULT_BACKUP_KEEP : wholeNumber(keep, 1),
    keepAgeMs: keepAge === undefined ? 0 : seconds(keepAge, true),
  };
}

/** A secret shorter than this is guessable offline from one recorded handshake. */
const MIN_SECRET_BYTES = 16;
const SECRET_HELP =
  "set the same random value on every process with WAXFLOW_CLUSTER_SECRET, WAXFLOW_CLUSTER_SECRET_FILE or " +
  "--cluster-secret (e.g. `openssl rand -hex 32`), or pass --insecure-cluster on a trusted network";

function resolveMesh(values: Values, env: Env, io: ConfigIo, connects: boolean): MeshSettings {
  const insecure = values["insecure-cluster"] === true || flagVariable(env, "WAXFLOW_INSECURE_CLUSTER");
  const given = clusterSecret(values, env, io);
  if (given !== undefined && insecure) {
    throw new UsageError(`${given.source} and --insecure-cluster (WAXFLOW_INSECURE_CLUSTER) exclude each other`);
  }
  if (given !== undefined && given.bytes.length < MIN_SECRET_BYTES) {
    throw new UsageError(
      `${given.source} holds ${given.bytes.length} bytes; a cluster secret needs at least ${MIN_SECRET_BYTES} (e.g. \`openssl rand -hex 32\`)`,
    );
  }
  if (connects && given === undefined && !insecure) {
    throw new UsageError(`this process connects to other processes, so it needs a cluster secret: ${SECRET_HELP}`);
  }
  const listen = setting(values, env, "listen", "WAXFLOW_LISTEN");
  const listenHost = listen?.value.replace(/^\[(.*)\]$/, "$1");
  if (listen !== undefined && !(isIP(listenHost ?? "") !== 0 || /^[^\s:;[\]]+$/.test(listen.value))) {
    throw new UsageError(`${listen.source} must be a host name or IP address, got ${JSON.stringify(listen.value)}`);
  }
  const timeout = setting(values, env, "peer-timeout", "WAXFLOW_PEER_TIMEOUT");
  return {
    secret: insecure ? "insecure" : given?.bytes,
    tls: values["cluster-tls"] === true || flagVariable(env, "WAXFLOW_CLUSTER_TLS"),
    listenHost,
    peerTimeoutMs: timeout === undefined ? DEFAULT_PEER_TIMEOUT_MS : seconds(timeout, false),
  };
}

/** The secret's bytes: a file's content as is, a flag's or variable's text as UTF-8. */
function clusterSecret(values: Values, env: Env, io: ConfigIo): { bytes: Uint8Array; source: string } | undefined {
  const text = setting(values, env, "cluster-secret", "WAXFLOW_CLUSTER_SECRET");
  const file = setting(values, env, "cluster-secret-file", "WAXFLOW_CLUSTER_SECRET_FILE");
  if (text !== undefined && file !== undefined) {
    throw new UsageError(`${text.source} and ${file.source} both give the cluster secret: keep one`);
  }
  if (text !== undefined) return { bytes: Buffer.from(text.value, "utf8"), source: text.source };
  if (file === undefined) return undefined;
  try {
    if (io.readSecretFile === undefined) throw new Error("files cannot be read here");
    return { bytes: io.readSecretFile(file.value), source: `${file.source} ${JSON.stringify(file.value)}` };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new UsageError(`${file.source}: cannot read ${JSON.stringify(file.value)}: ${reason}`);
  }
}

/**
 * A process whose index is beyond the cluster's count is a holder: on Kubernetes the pod
 * of a StatefulSet scaled down whose ordinal is WAXFLOW_REPLICAS or more; elsewhere only
 * with --holder, so a mistyped -i is not taken for one.
 */
function resolveHolder(
  processId: { value: number; source: string },
  addresses: readonly string[],
  derived: boolean,
  flag: boolean,
  recoveryDirectory: string | undefined,
): boolean {
  const count = Math.max(addresses.length, 1);
  if (processId.value < count) {
    if (flag) {
      throw new UsageError(
        `--holder needs a process id beyond the cluster's ${count} process(es), but ${processId.source} is ${processId.value}`,
      );
    }
    return false;
  }
  if (!flag && !derived) {
    throw new UsageError(
      addresses.length === 0
        ? `${processId.source} is ${processId.value} but no addresses are given (-a/--addresses or WAXFLOW_ADDRESSES)`
        : `${processId.source} is ${processId.value} but there are only ${addresses.length} addresses ` +
            "(add --holder if this process only hands its recovery store over to that cluster)",
    );
  }
  if (addresses.length === 0) {
    throw new UsageError("a holder needs the cluster's addresses (-a/--addresses or WAXFLOW_ADDRESSES)");
  }
  if (recoveryDirectory === undefined) {
    throw new UsageError(
      `process ${processId.value} is beyond the cluster's ${count} processes, so it holds its recovery store for them, ` +
        "but no store is given: add -r/--recovery-directory (WAXFLOW_RECOVERY_DIRECTORY)",
    );
  }
  return true;
}

/** Combinations that parse but mean nothing: refused at start rather than ignored. */
export function unsupported(config: RunConfig): string | undefined {
  if (config.backupIntervalMs !== undefined && config.recoveryDirectory === undefined) {
    return "-b/--backup-interval only applies with recovery: add -r/--recovery-directory";
  }
  if (config.backup !== undefined && config.recoveryDirectory === undefined) {
    return "--backup-bucket only applies with recovery: add -r/--recovery-directory";
  }
  if (config.backup !== undefined && config.backupIntervalMs === 0) {
    return "-b/--backup-interval 0 with --backup-bucket: backups are uploaded every backup interval, so give it > 0 seconds";
  }
  if (config.recoveryInit && config.recoveryDirectory === undefined) {
    return "--recovery-init only applies with recovery: add -r/--recovery-directory";
  }
  if (config.startFrom !== undefined && config.recoveryDirectory === undefined) {
    return "--start-from (WAXFLOW_START_FROM) only applies with recovery: add -r/--recovery-directory";
  }
  if (config.startFrom?.kind === "savepoint" && config.backup === undefined) {
    return "--start-from savepoint:<id> reads the savepoint from the backup bucket: add --backup-bucket (WAXFLOW_BACKUP_BUCKET)";
  }
  if (config.dropRemovedSteps && config.recoveryDirectory === undefined) {
    return "--drop-removed-steps only applies with recovery: add -r/--recovery-directory";
  }
  return undefined;
}

const EXPORT_NAME = /^[A-Za-z_$][\w$]*$/;

/** `path/to/x.ts:name` -> path and export; a colon not followed by a name is part of the path. */
function splitTarget(target: string): { modulePath: string; exportName: string | undefined } {
  const colon = target.lastIndexOf(":");
  const name = colon < 0 ? "" : target.slice(colon + 1);
  if (colon > 0 && EXPORT_NAME.test(name)) return { modulePath: target.slice(0, colon), exportName: name };
  if (target.endsWith(":")) throw new UsageError(`missing export name after ":" in ${JSON.stringify(target)}`);
  return { modulePath: target, exportName: undefined };
}

/** A raw value and where it came from, so errors name the flag or variable. */
interface Setting {
  readonly value: string;
  readonly source: string;
}

/** The flag if given, else the variable. */
function setting(values: Values, env: Env, flag: StringFlag, variable: string): Setting | undefined {
  const fromFlag = values[flag];
  if (fromFlag !== undefined) return { value: fromFlag, source: flagLabel(flag) };
  return envSetting(env, variable);
}

/** A yes/no variable, as Kubernetes manifests write it. */
function flagVariable(env: Env, variable: string): boolean {
  const s = envSetting(env, variable);
  if (s === undefined) return false;
  const value = s.value.toLowerCase();
  if (value === "true" || value === "1") return true;
  if (value === "false" || value === "0") return false;
  throw new UsageError(`${variable} must be true or false, got ${JSON.stringify(s.value)}`);
}

function envSetting(env: Env, variable: string): Setting | undefined {
  const value = env[variable]?.trim();
  // Kubernetes manifests often set a variable to "" to mean "not set".
  return value === undefined || value === "" ? undefined : { value, source: variable };
}

function wholeNumber(s: Setting, min: number): number {
  const n = /^\s*\d+\s*$/.test(s.value) ? Number(s.value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${s.source} must be a whole number >= ${min}, got ${JSON.stringify(s.value)}`);
  }
  return n;
}

/** Seconds (fractions allowed) -> milliseconds. */
function seconds(s: Setting, zeroAllowed: boolean): number {
  const n = /^\s*\d+(\.\d+)?\s*$/.test(s.value) ? Number(s.value) : Number.NaN;
  if (!Number.isFinite(n) || (!zeroAllowed && n === 0)) {
    throw new UsageError(
      `${s.source} must be a number of seconds ${zeroAllowed ? ">= 0" : "> 0"}, got ${JSON.stringify(s.value)}`,
    );
  }
  return n * 1000;
}

/** A port number; 0 picks a free port (tests run several processes on one host). */
function port(s: Setting): number {
  const n = wholeNumber(s, 0);
  if (n > 65_535) throw new UsageError(`${s.source} must be a port number (0-65535), got ${JSON.stringify(s.value)}`);
  return n;
}

function resolveProcessId(values: Values, env: Env): { value: number; source: string } {
  const explicit = setting(values, env, "process-id", "WAXFLOW_PROCESS_ID");
  if (explicit !== undefined) return { value: wholeNumber(explicit, 0), source: explicit.source };
  const pod = envSetting(env, "WAXFLOW_POD_NAME");
  if (pod === undefined) return { value: 0, source: "the process id" };
  // A StatefulSet names its pods `<sts>-<ordinal>`; the ordinal is the process id.
  const sts = envSetting(env, "WAXFLOW_STATEFULSET_NAME");
  if (sts === undefined) throw new UsageError("WAXFLOW_POD_NAME is set but WAXFLOW_STATEFULSET_NAME is not");
  const prefix = `${sts.value}-`;
  const ordinal = pod.value.startsWith(prefix) ? pod.value.slice(prefix.length) : "";
  if (!/^\d+$/.test(ordinal)) {
    throw new UsageError(
      `WAXFLOW_POD_NAME ${JSON.stringify(pod.value)} is not "${prefix}<number>" (WAXFLOW_STATEFULSET_NAME is ${JSON.stringify(sts.value)})`,
    );
  }
  return { value: Number(ordinal), source: `the process id from WAXFLOW_POD_NAME ${JSON.stringify(pod.value)}` };
}

/** `derived`: built from WAXFLOW_REPLICAS, the StatefulSet's own count. */
function resolveAddresses(values: Values, env: Env, io: ConfigIo): { addresses: string[]; derived: boolean } {
  const given = (addresses: string[]) => ({ addresses, derived: false });
  const list = setting(values, env, "addresses", "WAXFLOW_ADDRESSES");
  if (list !== undefined) return given(checkAddresses(list.value.split(";"), list.source));
  const hostfile = envSetting(env, "WAXFLOW_HOSTFILE_PATH");
  if (hostfile !== undefined) {
    let text: string;
    try {
      text = io.readHostfile(hostfile.value);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new UsageError(`WAXFLOW_HOSTFILE_PATH: cannot read ${JSON.stringify(hostfile.value)}: ${reason}`);
    }
    return given(checkAddresses(text.split("\n"), `WAXFLOW_HOSTFILE_PATH ${JSON.stringify(hostfile.value)}`));
  }
  const derived = derivedAddresses(env);
  return { addresses: derived, derived: derived.length > 0 };
}

/** `<sts>-<i>.<svc>.<ns>.svc:2101`: the stable DNS names a headless Service gives StatefulSet pods. */
function derivedAddresses(env: Env): string[] {
  const replicas = envSetting(env, "WAXFLOW_REPLICAS");
  if (replicas === undefined) return [];
  const names = ["WAXFLOW_STATEFULSET_NAME", "WAXFLOW_SERVICE_NAME", "WAXFLOW_NAMESPACE"] as const;
  const [sts, svc, ns] = names.map((n) => envSetting(env, n)?.value);
  const missing = names.filter((n) => envSetting(env, n) === undefined);
  if (missing.length > 0) {
    throw new UsageError(`WAXFLOW_REPLICAS is set, so addresses are derived, but ${missing.join(", ")} is not set`);
  }
  const count = wholeNumber(replicas, 1);
  return Array.from({ length: count }, (_, i) => `${sts}-${i}.${svc}.${ns}.svc:${CLUSTER_PORT}`);
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:;[\]]+):(\d{1,5})$/;

function checkAddresses(raw: readonly string[], source: string): string[] {
  const addresses = raw.map((a) => a.trim()).filter((a) => a !== "");
  if (addresses.length === 0) throw new UsageError(`${source} holds no addresses`);
  for (const a of addresses) {
    const m = HOST_PORT.exec(a);
    const p = Number(m?.[2]);
    if (m === null || p < 1 || p > 65_535) {
      throw new UsageError(`${source}: ${JSON.stringify(a)} is not host:port`);
    }
  }
  return addresses;
}
