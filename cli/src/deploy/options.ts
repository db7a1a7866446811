// Turns deploy's raw flag values into a checked description of the Dataflow to apply.
// Pure, so every rule is tested without oclif; each failure is one line that names the
// flag and says what to type instead.

import type { V1PodTemplateSpec } from "@kubernetes/client-node";
import {
  durationMs,
  IMAGE_BY_DIGEST_PATTERN,
  MAX_NAME_LENGTH,
  MIN_SNAPSHOT_INTERVAL,
  SAVEPOINT_ID,
  specSchema,
  type UPGRADE_MODES,
} from "@waxflow/crds";
import { load, YAMLException } from "js-yaml";
import { UsageError } from "../errors.ts";

export interface DeployFlags {
  readonly name: string;
  /** -p and -w, counts oclif has checked (src/flags.ts). */
  readonly processes: number;
  readonly workers: number;
  readonly env: readonly string[];
  /** --env-from-secret NAME, repeatable. */
  readonly envFromSecret?: readonly string[];
  /** --secret-file NAME:KEY=/path, repeatable. */
  readonly secretFile?: readonly string[];
  readonly image?: string;
  readonly recovery: boolean;
  readonly recoverySize?: string;
  readonly recoveryStorageclass?: string;
  readonly recoverySnapshotInterval?: string;
  readonly recoveryBackupInterval?: string;
  /** --backup-bucket and friends: backups of the recovery stores to an S3-compatible bucket. */
  readonly backupBucket?: string;
  readonly backupEndpoint?: string;
  readonly backupPrefix?: string;
  readonly backupRegion?: string;
  /** --backup-credentials-secret NAME: a Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. */
  readonly backupCredentialsSecret?: string;
  /** The --pod-template file's name and text, read by the command. */
  readonly podTemplate?: { readonly file: string; readonly text: string };
  /** --state-query: serve GET /state (spec.stateQuery). */
  readonly stateQuery?: boolean;
  /** --from-savepoint ID and --savepoint-prefix P: spec.restoreFrom. */
  readonly fromSavepoint?: string;
  readonly savepointPrefix?: string;
  /** --upgrade-mode: spec.upgradeMode (oclif checks the value is one of UPGRADE_MODES). */
  readonly upgradeMode?: UpgradeMode;
  /** --rollback-after DURATION: spec.rollback {enabled: true, readyTimeout}. */
  readonly rollbackAfter?: string;
}

export type UpgradeMode = (typeof UPGRADE_MODES)[number];

export interface DeployOptions {
  readonly name: string;
  readonly processes: number;
  readonly workersPerProcess: number;
  readonly env: readonly { readonly name: string; readonly value: string }[];
  /** Secrets whose every key becomes a variable (envFrom). */
  readonly envFromSecrets: readonly string[];
  /** Secret keys mounted as files in the dataflow's container. */
  readonly secretFiles: readonly SecretFile[];
  readonly image?: string;
  readonly recovery?: {
    readonly size?: string;
    readonly storageClassName?: string;
    readonly snapshotInterval?: string;
    readonly backupInterval?: string;
    readonly backup?: {
      readonly bucket: string;
      readonly endpoint?: string;
      readonly prefix?: string;
      readonly region?: string;
      readonly credentialsSecret?: string;
    };
  };
  readonly podTemplate?: V1PodTemplateSpec;
  readonly stateQuery?: boolean;
  /** Where the Dataflow starts: a savepoint, under its own backup prefix or `prefix`. */
  readonly restoreFrom?: { readonly savepoint: string; readonly prefix?: string };
  readonly upgradeMode?: UpgradeMode;
  /** Roll back to the last spec that became Ready when a roll is not Ready within readyTimeout. */
  readonly rollback?: { readonly enabled: true; readonly readyTimeout: string };
}

/** One Secret key, mounted read-only as the file `path`. */
export interface SecretFile {
  readonly secret: string;
  readonly key: string;
  readonly path: string;
}

// A Secret's name is a DNS-1123 subdomain; its keys are letters, digits, '-', '_' and '.'.
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

function secretName(flag: string, name: string): string {
  if (!DNS1123_SUBDOMAIN.test(name) || name.length > 253) {
    throw new UsageError(`${flag} "${name}" is not a Secret name (lowercase letters, digits, '-' and '.')`);
  }
  return name;
}

/** `NAME:KEY=/path`: the Secret NAME's key KEY as the file /path. */
export function secretFile(raw: string): SecretFile {
  const m = /^([^:=]+):([^=]+)=(.*)$/.exec(raw);
  if (m === null) {
    throw new UsageError(
      `--secret-file takes NAME:KEY=/path, got "${raw}"; e.g. --secret-file kafka:password=/etc/kafka/password`,
    );
  }
  const [, secret = "", key = "", path = ""] = m;
  secretName(`--secret-file ${raw}: Secret`, secret);
  if (!SECRET_KEY.test(key)) {
    throw new UsageError(`--secret-file ${raw}: "${key}" is not a Secret key (letters, digits, '-', '_' and '.')`);
  }
  if (!path.startsWith("/") || path.endsWith("/") || path.split("/").includes("..")) {
    throw new UsageError(`--secret-file ${raw}: the file must be an absolute path to a file, got "${path}"`);
  }
  return { secret, key, path };
}

// The name becomes the StatefulSet's and its pods' names: a DNS-1123 label, and short
// enough (the CRD's own limit) to leave room for the pod ordinal suffix.
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// The checks the CRD's CEL rules make, so the error comes before anything is applied.
const IMAGE_BY_DIGEST = new RegExp(IMAGE_BY_DIGEST_PATTERN);
const recoverySchema = specSchema.properties.recovery.properties;
const DURATION = new RegExp(recoverySchema.snapshotInterval.pattern);
const QUANTITY = new RegExp(recoverySchema.storage.properties.size.pattern);

const MIN_SNAPSHOT_MS = durationMs(MIN_SNAPSHOT_INTERVAL);

/** A whole number flag in [min, max]; the error names the flag and shows a valid use. */
export function wholeNumber(flag: string, raw: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got "${raw}"; e.g. --${flag} 2`);
  }
  return Number(raw);
}

/** A namespace's name, as `label` (the flag) gave it. */
export function namespaceName(label: string, name: string): string {
  if (!DNS1123_LABEL.test(name) || name.length > 63) {
    throw new UsageError(`${label} "${name}" is not a namespace name (lowercase DNS-1123 label)`);
  }
  return name;
}

/** A Dataflow's name, as `label` (the flag or argument) gave it. */
export function dataflowName(label: string, name: string): string {
  if (!DNS1123_LABEL.test(name) || name.length > MAX_NAME_LENGTH) {
    throw new UsageError(
      `${label} "${name}" is not a DNS-1123 label: use at most ${MAX_NAME_LENGTH} lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  return name;
}

export function duration(flag: string, raw: string): string {
  if (!DURATION.test(raw)) {
    throw new UsageError(`--${flag} must be a duration such as 10s, 500ms or 1m30s, got "${raw}"`);
  }
  return raw;
}

function envVar(raw: string): { name: string; value: string } {
  const eq = raw.indexOf("=");
  const name = eq < 0 ? raw : raw.slice(0, eq);
  if (eq < 0 || !ENV_NAME.test(name)) {
    throw new UsageError(`-e/--env takes KEY=VALUE with KEY a variable name, got "${raw}"; e.g. -e LOG_LEVEL=debug`);
  }
  if (name.startsWith("WAXFLOW_")) {
    throw new UsageError(`-e ${name}: WAXFLOW_* variables are set from the other deploy flags; use those instead`);
  }
  return { name, value: raw.slice(eq + 1) };
}

/** A pod template overlay (core/v1 PodTemplateSpec) from YAML or JSON; errors name the file and line. */
export function podTemplate(file: string, text: string): V1PodTemplateSpec {
  let value: unknown;
  try {
    value = load(text, { filename: file });
  } catch (err) {
    const where =
      err instanceof YAMLException && err.mark !== undefined ? `line ${err.mark.line + 1}: ${err.reason}` : String(err);
    throw new UsageError(`--pod-template ${file}: not valid YAML, ${where}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new UsageError(
      `--pod-template ${file}: expected a PodTemplateSpec mapping (metadata:, spec:), got ${Array.isArray(value) ? "a list" : typeof value}`,
    );
  }
  const unknown = Object.keys(value).filter((k) => k !== "metadata" && k !== "spec");
  if (unknown.length > 0) {
    throw new UsageError(
      `--pod-template ${file}: a PodTemplateSpec has only metadata and spec, not ${unknown.join(", ")}; e.g. spec: { volumes: [...] }`,
    );
  }
  return value as V1PodTemplateSpec;
}

export function deployOptions(flags: DeployFlags): DeployOptions {
  dataflowName("--name", flags.name);
  const processes = flags.processes;
  const workersPerProcess = flags.workers;

  const env = flags.env.map(envVar);
  const seen = new Set<string>();
  for (const { name } of env) {
    if (seen.has(name)) throw new UsageError(`-e ${name} is given twice; keep one`);
    seen.add(name);
  }

  const envFromSecrets = (flags.envFromSecret ?? []).map((n) => secretName("--env-from-secret", n));
  const twice = envFromSecrets.find((n, i) => envFromSecrets.indexOf(n) !== i);
  if (twice !== undefined) throw new UsageError(`--env-from-secret ${twice} is given twice; keep one`);
  const secretFiles = (flags.secretFile ?? []).map(secretFile);
  const paths = secretFiles.map((f) => f.path);
  const samePath = paths.find((p, i) => paths.indexOf(p) !== i);
  if (samePath !== undefined) throw new UsageError(`--secret-file: two files at ${samePath}; give each its own path`);

  if (flags.image !== undefined && !IMAGE_BY_DIGEST.test(flags.image)) {
    throw new UsageError(
      `--image must name an image by digest (REGISTRY/NAME@sha256:<64 hex>), got "${flags.image}"; or leave --image out to build one`,
    );
  }

  const overlay =
    flags.podTemplate === undefined ? undefined : podTemplate(flags.podTemplate.file, flags.podTemplate.text);

  const options = {
    name: flags.name,
    processes,
    workersPerProcess,
    env,
    envFromSecrets,
    secretFiles,
    image: flags.image,
    podTemplate: overlay,
    ...(flags.stateQuery === true ? { stateQuery: true } : {}),
    ...upgradeOptions(flags),
  };
  // Which flags need --recovery, --backup-bucket or --from-savepoint is declared on the
  // flags (dependsOn in df deploy); oclif refuses a stray one before this runs.
  if (!flags.recovery) return options;

  if (flags.recoverySize !== undefined && !QUANTITY.test(flags.recoverySize)) {
    throw new UsageError(
      `--recovery-size must be a Kubernetes quantity such as 1Gi or 500Mi, got "${flags.recoverySize}"`,
    );
  }
  if (flags.recoveryStorageclass === "") {
    throw new UsageError("--recovery-storageclass is empty; name a storage class or leave the flag out");
  }
  const snapshotInterval =
    flags.recoverySnapshotInterval === undefined
      ? undefined
      : duration("recovery-snapshot-interval", flags.recoverySnapshotInterval);
  const backupInterval =
    flags.recoveryBackupInterval === undefined
      ? undefined
      : duration("recovery-backup-interval", flags.recoveryBackupInterval);
  const snapshotMs = durationMs(snapshotInterval ?? recoverySchema.snapshotInterval.default);
  if (snapshotMs < MIN_SNAPSHOT_MS) {
    throw new UsageError(
      `--recovery-snapshot-interval must be at least ${MIN_SNAPSHOT_MS}ms, got "${snapshotInterval}"`,
    );
  }
  if (durationMs(backupInterval ?? recoverySchema.backupInterval.default) < snapshotMs) {
    throw new UsageError(
      `--recovery-backup-interval must be at least the snapshot interval (${snapshotInterval ?? recoverySchema.snapshotInterval.default})`,
    );
  }
  return {
    ...options,
    recovery: {
      size: flags.recoverySize,
      storageClassName: flags.recoveryStorageclass,
      snapshotInterval,
      backupInterval,
      backup: backupOptions(flags),
    },
    ...restoreFromOptions(flags),
  };
}

/** --upgrade-mode and --rollback-after; savepoint mode takes its savepoints in the backup bucket. */
function upgradeOptions(flags: DeployFlags): Pick<DeployOptions, "upgradeMode" | "rollback"> {
  if (flags.upgradeMode === "savepoint" && flags.backupBucket === undefined) {
    throw new UsageError(
      "--upgrade-mode savepoint takes its savepoints in the backup bucket; add --recovery --backup-bucket, or use last-state",
    );
  }
  return {
    ...(flags.upgradeMode === undefined ? {} : { upgradeMode: flags.upgradeMode }),
    ...(flags.rollbackAfter === undefined
      ? {}
      : { rollback: { enabled: true, readyTimeout: duration("rollback-after", flags.rollbackAfter) } }),
  };
}

/** --from-savepoint reads the savepoint from the backup bucket, as the CRD's rule says. */
function restoreFromOptions(flags: DeployFlags): Pick<DeployOptions, "restoreFrom"> {
  if (flags.fromSavepoint === undefined) return {};
  if (flags.backupBucket === undefined) {
    throw new UsageError("--from-savepoint reads the savepoint from the backup bucket; add --backup-bucket");
  }
  if (!SAVEPOINT_ID.test(flags.fromSavepoint)) {
    throw new UsageError(
      `--from-savepoint "${flags.fromSavepoint}" is not a savepoint id (lowercase letters, digits and '-', at most 63); \`waxctl df savepoint list NAME\` shows them`,
    );
  }
  return {
    restoreFrom: {
      savepoint: flags.fromSavepoint,
      ...(flags.savepointPrefix === undefined ? {} : { prefix: flags.savepointPrefix }),
    },
  };
}

function backupOptions(flags: DeployFlags): NonNullable<DeployOptions["recovery"]>["backup"] {
  if (flags.backupBucket === undefined) return undefined;
  if (flags.backupEndpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(flags.backupEndpoint)) {
    throw new UsageError(
      `--backup-endpoint must be an http:// or https:// URL such as http://seaweedfs.storage:8333, got "${flags.backupEndpoint}"`,
    );
  }
  return {
    bucket: flags.backupBucket,
    endpoint: flags.backupEndpoint,
    prefix: flags.backupPrefix,
    region: flags.backupRegion,
    credentialsSecret:
      flags.backupCredentialsSecret === undefined
        ? undefined
        : secretName("--backup-credentials-secret", flags.backupCredentialsSecret),
  };
}
