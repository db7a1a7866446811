// The Dataflow `df fork` applies: the source's spec under a new name, with its own backup
// prefix and spec.restoreFrom pointing at a savepoint under the source's prefix. Pure, so
// every rule is tested without a cluster.
import { API_VERSION, type Dataflow, dataflowLabels, KIND } from "@waxflow/crds";
import { UsageError, UserError } from "../errors.ts";

export interface ForkInput {
  readonly source: Dataflow;
  readonly name: string;
  readonly namespace: string;
  readonly savepoint: string;
  /** --backup-prefix; undefined: `<namespace>/<name>`. */
  readonly backupPrefix?: string;
}

/** The source's backup prefix ("" for the bucket's root), or one line saying it has no backups. */
export function sourcePrefix(source: Dataflow): string {
  const backup = source.spec.recovery?.backup;
  if (source.spec.recovery?.enabled !== true || backup === undefined) {
    const name = source.metadata?.name ?? "";
    throw new UserError(
      `dataflow ${name} has no backups, so no savepoint to fork from: deploy it with --recovery --backup-bucket BUCKET (spec.recovery.backup)`,
    );
  }
  return backup.prefix ?? "";
}

/**
 * The fork: image, module, processes, workers, recovery (bucket, endpoint, credentials),
 * env and pod template as the source has them; not its restart nonce or suspension.
 */
export function forkedDataflow(input: ForkInput): Dataflow {
  const { source, name, namespace } = input;
  const fromPrefix = sourcePrefix(source);
  const prefix = input.backupPrefix ?? `${namespace}/${name}`;
  if (prefix === fromPrefix) {
    throw new UsageError(
      `--backup-prefix "${prefix}" is ${source.metadata?.name}'s own: two dataflows backing up to one prefix would delete each other's sets; give the fork its own`,
    );
  }
  const { restartNonce: _nonce, state: _state, restoreFrom: _from, ...spec } = source.spec;
  const recovery = source.spec.recovery ?? {};
  const backup = recovery.backup ?? { bucket: "" };
  return JSON.parse(
    JSON.stringify({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, namespace, labels: dataflowLabels(name, "waxctl") },
      spec: {
        ...spec,
        recovery: { ...recovery, backup: { ...backup, prefix } },
        restoreFrom: { savepoint: input.savepoint, prefix: fromPrefix },
      },
    }),
  ) as Dataflow;
}
