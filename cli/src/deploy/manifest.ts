// The Dataflow custom resource that `df deploy` applies, as a pure function of the checked
// options, so a dry run prints exactly what a real deploy would send.
import type { V1PodTemplateSpec } from "@kubernetes/client-node";
import { API_VERSION, CONTAINER, type Dataflow, type DataflowRecovery, dataflowLabels, KIND } from "@waxflow/crds";
import type { DeployOptions, SecretFile } from "./options.ts";

/** The dataflow's container in the operator's pods, where --secret-file mounts go. */

export interface ManifestInput {
  readonly options: DeployOptions;
  /** Undefined in a dry run without -n: the namespace is then the applier's. */
  readonly namespace: string | undefined;
  /** Image reference by digest, or a placeholder when no image was built. */
  readonly image: string;
  /** `waxflow run` argument: the bundled entry inside the image. */
  readonly module: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export function dataflowManifest(input: ManifestInput): Dataflow {
  const { options } = input;
  const recovery: DataflowRecovery | undefined =
    options.recovery === undefined
      ? undefined
      : {
          enabled: true,
          snapshotInterval: options.recovery.snapshotInterval,
          backupInterval: options.recovery.backupInterval,
          backup:
            options.recovery.backup === undefined
              ? undefined
              : {
                  bucket: options.recovery.backup.bucket,
                  endpoint: options.recovery.backup.endpoint,
                  prefix: options.recovery.backup.prefix,
                  region: options.recovery.backup.region,
                  credentialsSecret:
                    options.recovery.backup.credentialsSecret === undefined
                      ? undefined
                      : { name: options.recovery.backup.credentialsSecret },
                },
          storage:
            options.recovery.size === undefined && options.recovery.storageClassName === undefined
              ? undefined
              : { size: options.recovery.size, storageClassName: options.recovery.storageClassName },
        };
  return dropUndefined({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: options.name,
      namespace: input.namespace,
      labels: dataflowLabels(options.name, "waxctl"),
      annotations: input.annotations,
    },
    spec: {
      image: input.image,
      module: input.module,
      processes: options.processes,
      workersPerProcess: options.workersPerProcess,
      env: options.env.length === 0 ? undefined : options.env.map((e) => ({ name: e.name, value: e.value })),
      envFrom:
        options.envFromSecrets.length === 0
          ? undefined
          : options.envFromSecrets.map((name) => ({ secretRef: { name } })),
      recovery,
      restoreFrom: options.restoreFrom,
      upgradeMode: options.upgradeMode,
      rollback: options.rollback,
      stateQuery: options.stateQuery === true ? true : undefined,
      podTemplate: withSecretFiles(options.podTemplate, options.secretFiles),
    },
  });
}

/**
 * The pod template with a Secret volume per --secret-file (only that key), mounted
 * read-only at its path by subPath, added to what --pod-template gave.
 */
export function withSecretFiles(
  template: V1PodTemplateSpec | undefined,
  files: readonly SecretFile[],
): V1PodTemplateSpec | undefined {
  if (files.length === 0) return template;
  const volumeName = (i: number) => `waxctl-secret-file-${i}`;
  const fileName = (f: SecretFile) => f.path.slice(f.path.lastIndexOf("/") + 1);
  const volumes = files.map((f, i) => ({
    name: volumeName(i),
    secret: { secretName: f.secret, items: [{ key: f.key, path: fileName(f) }] },
  }));
  const mounts = files.map((f, i) => ({
    name: volumeName(i),
    mountPath: f.path,
    subPath: fileName(f),
    readOnly: true,
  }));
  const spec = template?.spec ?? { containers: [] };
  const containers = spec.containers.some((c) => c.name === CONTAINER)
    ? spec.containers
    : [...spec.containers, { name: CONTAINER }];
  return {
    ...template,
    spec: {
      ...spec,
      volumes: [...(spec.volumes ?? []), ...volumes],
      containers: containers.map((c) =>
        c.name === CONTAINER ? { ...c, volumeMounts: [...(c.volumeMounts ?? []), ...mounts] } : c,
      ),
    },
  };
}

/** Unset optional fields are left out, not printed as `null` or sent to the API server. */
function dropUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
