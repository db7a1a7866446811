// The Dataflow custom resource that `df deploy` applies, as a pure function of the checked
// options, so a dry run prints exactly what a real deploy would send.
import { API_VERSION, type Dataflow, type DataflowRecovery, KIND } from "@waxflow/crds";
import type { DeployOptions } from "./options.ts";

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
      labels: {
        "app.kubernetes.io/name": "waxflow",
        "app.kubernetes.io/instance": options.name,
        "app.kubernetes.io/managed-by": "waxctl",
        "waxflow.io/dataflow": options.name,
      },
      annotations: input.annotations,
    },
    spec: {
      image: input.image,
      module: input.module,
      processes: options.processes,
      workersPerProcess: options.workersPerProcess,
      env: options.env.length === 0 ? undefined : options.env.map((e) => ({ name: e.name, value: e.value })),
      recovery,
      podTemplate: options.podTemplate,
    },
  });
}

/** Unset optional fields are left out, not printed as `null` or sent to the API server. */
function dropUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
