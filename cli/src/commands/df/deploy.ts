import { readFile } from "node:fs/promises";
import { Args, Flags, type Interfaces } from "@oclif/core";
import { type Dataflow, durationMs, MIN_SNAPSHOT_INTERVAL, specSchema, UPGRADE_MODES } from "@waxflow/crds";
import { APP_DIR, parseRegistryPrefix } from "@waxflow/oci";
import { dump } from "js-yaml";
import { ClusterCommand } from "../../base.ts";
import { buildAndDeliver, type Destination, kindClusterOf } from "../../deploy/build.ts";
import { bundledModule, type DeployResult, deploy, loadCheck } from "../../deploy/deploy.ts";
import { dataflowManifest } from "../../deploy/manifest.ts";
import { type DeployOptions, deployOptions, namespaceName, type UpgradeMode } from "../../deploy/options.ts";
import { UsageError } from "../../errors.ts";
import { count, dataflowName, duration } from "../../flags.ts";
import { connect } from "../../kube.ts";
import { createProgress, outputMode } from "../../ui/progress.ts";

// A dry run builds nothing, so it shows this where the digest will be.
export const UNBUILT_IMAGE =
  "(built by the deploy; pass --image REGISTRY/NAME@sha256:<digest> to choose one, or use `waxctl df render` for a Dataflow to apply yourself)";

export default class DfDeploy extends ClusterCommand {
  static override summary = "Bundle a dataflow, build its image and run it in the cluster.";
  static override description =
    `Bundles PATH and its imports with esbuild (TypeScript works as is), builds an image that is the waxflow-runtime image plus one layer holding the bundle at /${APP_DIR}, loads it into the kind cluster or pushes it to --registry (without a Docker daemon), and server-side applies (field manager waxctl) a Dataflow resource that runs it on N processes of W workers each. The waxflow operator creates the pods; deploy waits until they are ready and the worker cluster has formed.

Before anything is built or applied, deploy loads the bundle once here (in a worker thread, with the -e variables), as \`waxflow run\` in a pod would, and refuses an entry that exports no Dataflow: its pods could only crash-loop. Code at the top of the module runs then; --no-check skips this for a module that loads only in its pods.

Deploying again with the same image and flags changes nothing. A change to a running dataflow (image, processes, workers, env, recovery) replaces every process together, so it needs --yes.

--dry-run -o yaml prints the Dataflow that would be applied and touches nothing: it needs no cluster and reads no kubeconfig (without -n the Dataflow has no namespace, so \`kubectl apply\` puts it in the context's).`;

  static override examples = [
    {
      description: "See what would be deployed, without a cluster:",
      command: "<%= config.bin %> <%= command.id %> examples/wordcount.ts --name wordcount --dry-run -o yaml",
    },
    {
      description: "Three processes of two workers, with recovery every 5 seconds:",
      command:
        "<%= config.bin %> <%= command.id %> flow.ts -N orders -p 3 -w 2 --recovery --recovery-snapshot-interval 5s",
    },
    {
      description: "Any cluster: push the image to a registry it pulls from (credentials from `docker login`):",
      command: "<%= config.bin %> <%= command.id %> flow.ts -N orders --registry ghcr.io/acme",
    },
    {
      description: "Replace the running dataflow's image, without waiting for it:",
      command:
        "<%= config.bin %> <%= command.id %> -N orders --image registry.example/orders@sha256:<digest> --yes --no-wait",
    },
    {
      description:
        "Mount an existing volume claim into every process (pod-template.yaml adds volumes and volumeMounts):",
      command: "<%= config.bin %> <%= command.id %> flow.ts -N orders --pod-template pod-template.yaml",
    },
    {
      description:
        "Kafka credentials from Secrets: the variables of kafka-env, and the password of kafka-creds as a file:",
      command:
        "<%= config.bin %> <%= command.id %> flow.ts -N orders --env-from-secret kafka-env --secret-file kafka-creds:password=/etc/kafka/password -e KAFKA_SASL_PASSWORD_FILE=/etc/kafka/password",
    },
    {
      description: "A new dataflow starting from a savepoint another one took (df savepoint create):",
      command:
        "<%= config.bin %> <%= command.id %> flow.ts -N orders-v2 --recovery --backup-bucket backups --backup-prefix prod/orders-v2 --from-savepoint before-v2 --savepoint-prefix prod/orders",
    },
    {
      description: "Use an image you built elsewhere and set a variable:",
      command:
        "<%= config.bin %> <%= command.id %> flow.ts -N orders --image registry.example/orders@sha256:<digest> -e LOG_LEVEL=debug",
    },
  ];

  static override args = {
    path: Args.string({
      description:
        "The dataflow's entry module (.ts or .js), optionally PATH:NAME for a named export. With --image it may be left out to keep the deployed entry.",
    }),
  };

  static override flags = {
    name: dataflowName({
      char: "N",
      description: "Name of the Dataflow: lowercase letters, digits and '-', at most 52 characters.",
      required: true,
    }),
    processes: count({
      char: "p",
      description: "Processes (pods), at least 1.",
      default: 1,
      min: 1,
      max: specSchema.properties.processes.maximum,
    }),
    workers: count({
      char: "w",
      description: "Workers per process, at least 1.",
      default: 1,
      min: 1,
      max: specSchema.properties.workersPerProcess.maximum,
    }),
    env: Flags.string({
      char: "e",
      description: "Environment variable for every process; repeat for more.",
      multiple: true,
      multipleNonGreedy: true,
      helpValue: "KEY=VALUE",
    }),
    "env-from-secret": Flags.string({
      description:
        "Every key of this Secret becomes a variable of every process (envFrom); repeat for more. The Secret must exist in the namespace.",
      multiple: true,
      multipleNonGreedy: true,
      helpValue: "NAME",
    }),
    "secret-file": Flags.string({
      description:
        "Mount the key KEY of the Secret NAME read-only as the file /path in every process (say, a Kafka password for KAFKA_SASL_PASSWORD_FILE); repeat for more.",
      multiple: true,
      multipleNonGreedy: true,
      helpValue: "NAME:KEY=/path",
    }),
    image: Flags.string({
      description: "Deploy this image (by digest) instead of building one.",
      helpValue: "REF@sha256:DIGEST",
      helpGroup: "IMAGE",
    }),
    base: Flags.string({
      description:
        "The waxflow-runtime image to build on: an OCI layout or archive, or registry:HOST/REPO[:TAG|@DIGEST] (default: the one `npm run images` built).",
      helpValue: "PATH",
      helpGroup: "IMAGE",
    }),
    kind: Flags.string({
      description: "Load the built image into this kind cluster (default: the context's, when it is kind-CLUSTER).",
      helpValue: "CLUSTER",
      helpGroup: "IMAGE",
    }),
    registry: Flags.string({
      description:
        "Push the built image to HOST/PREFIX/NAME (or HOST/NAME) in this registry, by digest, instead of loading it into kind. Uses your Docker credentials; loopback registries and WAXCTL_INSECURE_REGISTRIES (HOST:PORT,...) are plain HTTP.",
      helpValue: "HOST[/PREFIX]",
      helpGroup: "IMAGE",
    }),
    recovery: Flags.boolean({
      description: "Snapshot state to a volume per process, so a restart resumes where it stopped.",
      helpGroup: "RECOVERY",
    }),
    "recovery-size": Flags.string({
      relationships: [{ type: "all", flags: ["recovery"] }],
      description: "Size of each recovery volume (default 1Gi).",
      helpGroup: "RECOVERY",
      helpValue: "QUANTITY",
    }),
    "recovery-storageclass": Flags.string({
      relationships: [{ type: "all", flags: ["recovery"] }],
      description: "Storage class of the recovery volumes (default: the cluster's).",
      helpGroup: "RECOVERY",
      helpValue: "NAME",
    }),
    "recovery-snapshot-interval": duration({
      relationships: [{ type: "all", flags: ["recovery"] }],
      minMs: durationMs(MIN_SNAPSHOT_INTERVAL),
      description: "Time between snapshots, e.g. 10s (the default).",
      helpGroup: "RECOVERY",
      helpValue: "DURATION",
    }),
    "recovery-backup-interval": duration({
      relationships: [{ type: "all", flags: ["recovery"] }],
      description: "How long old snapshots are kept, at least the snapshot interval (default 30s).",
      helpGroup: "RECOVERY",
      helpValue: "DURATION",
    }),
    "state-query": Flags.boolean({
      description:
        "Answer per-key state queries (waxctl df state) on the processes' API port. Off by default: state is user data; queries need the token derived from the Dataflow's cluster Secret.",
    }),
    "backup-bucket": Flags.string({
      relationships: [{ type: "all", flags: ["recovery"] }],
      description:
        "Back the recovery stores up to this S3-compatible bucket every backup interval; an empty volume restores from it.",
      helpGroup: "RECOVERY",
      helpValue: "BUCKET",
    }),
    "backup-endpoint": Flags.string({
      relationships: [{ type: "all", flags: ["backup-bucket"] }],
      description: "The bucket's S3 endpoint URL (default: AWS S3).",
      helpGroup: "RECOVERY",
      helpValue: "URL",
    }),
    "backup-prefix": Flags.string({
      relationships: [{ type: "all", flags: ["backup-bucket"] }],
      description: "Key prefix of this dataflow's backups in the bucket.",
      helpGroup: "RECOVERY",
      helpValue: "PREFIX",
    }),
    "backup-region": Flags.string({
      relationships: [{ type: "all", flags: ["backup-bucket"] }],
      description: "The bucket's region (default us-east-1).",
      helpGroup: "RECOVERY",
      helpValue: "REGION",
    }),
    "backup-credentials-secret": Flags.string({
      relationships: [{ type: "all", flags: ["backup-bucket"] }],
      description: "A Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the bucket.",
      helpGroup: "RECOVERY",
      helpValue: "NAME",
    }),
    "from-savepoint": Flags.string({
      relationships: [{ type: "all", flags: ["recovery"] }],
      description:
        "Start from this savepoint (spec.restoreFrom): each process applies it once, then keeps its own newer state. Needs --backup-bucket.",
      helpGroup: "RECOVERY",
      helpValue: "ID",
    }),
    "savepoint-prefix": Flags.string({
      relationships: [{ type: "all", flags: ["from-savepoint"] }],
      description: "The backup prefix the savepoint lives under, e.g. another Dataflow's (default: --backup-prefix).",
      helpGroup: "RECOVERY",
      helpValue: "PREFIX",
    }),
    "upgrade-mode": Flags.string({
      description:
        "Where the new processes of an upgrade or scale take their state from (spec.upgradeMode): stateless (empty), last-state (their volumes; the default) or savepoint (the operator takes a savepoint first and starts them from it; needs --backup-bucket).",
      options: [...UPGRADE_MODES],
      helpGroup: "UPGRADES",
      helpValue: "MODE",
    }),
    "rollback-after": duration({
      description:
        "Roll back to the last spec that became Ready when a roll is not Ready this long after it started (spec.rollback), e.g. 5m; the Dataflow's spec stays as written.",
      helpGroup: "UPGRADES",
      helpValue: "DURATION",
    }),
    "pod-template": Flags.file({
      description:
        "YAML or JSON PodTemplateSpec merged over the generated pods: extra volumes and mounts, node selectors, tolerations, sidecars.",
      exists: true,
      helpValue: "FILE",
    }),
    check: Flags.boolean({
      description:
        "Load the bundle here first (with the -e variables) and refuse it unless it exports a Dataflow. --no-check skips that, for a module that loads only in its pods.",
      allowNo: true,
      default: true,
    }),
    "create-namespace": Flags.boolean({ description: "Create the namespace if it does not exist." }),
    wait: Flags.boolean({
      description: "Wait until every process is ready and the worker cluster has formed.",
      allowNo: true,
      default: true,
    }),
    timeout: duration({ description: "How long --wait waits.", default: "5m" }),
    yes: Flags.boolean({ char: "y", description: "Replace a running dataflow whose processes this deploy changes." }),
    "dry-run": Flags.boolean({ description: "Print the Dataflow that would be applied; change nothing." }),
    output: Flags.option({
      char: "o",
      description: "Print the Dataflow (the dry run's, or as applied) in this format instead of progress.",
      options: ["yaml", "json"] as const,
    })(),
  };

  async run(): Promise<Dataflow | DeployResult> {
    const { args, flags } = await this.parse(DfDeploy);
    const options = await optionsOf(flags, "deploy");
    const waitMs = durationMs(flags.timeout);
    if (args.path === undefined && (flags.image === undefined || flags["dry-run"])) {
      throw new UsageError(
        flags.image === undefined
          ? "PATH is missing: pass the dataflow's entry module, e.g. waxctl df deploy flow.ts -N NAME (only a deploy with --image may leave it out)"
          : "PATH is missing: --dry-run prints the whole Dataflow, so it needs the entry module even with --image, e.g. waxctl df deploy flow.ts -N NAME --image REF --dry-run",
      );
    }
    const registry =
      flags.registry === undefined ? undefined : parseRegistryPrefix(flags.registry, `--registry ${flags.registry}`);
    const print = (df: Dataflow) =>
      this.log(
        flags.output === "json" ? JSON.stringify(df, null, 2) : dump(df, { lineWidth: -1, noRefs: true }).trimEnd(),
      );

    if (flags["dry-run"]) {
      const quiet = await createProgress("quiet", () => {});
      const manifest = dataflowManifest({
        options,
        // A dry run reads no kubeconfig: without -n the Dataflow goes where `kubectl apply` puts it.
        namespace: flags.namespace === undefined ? undefined : namespaceName("-n/--namespace", flags.namespace),
        image: options.image ?? UNBUILT_IMAGE,
        module: await bundledModule(args.path as string, process.cwd(), quiet, loadCheck(options, flags.check)),
      });
      print(manifest);
      return manifest;
    }

    const { cluster, namespace } = await connect(flags);
    const kind = flags.kind ?? kindClusterOf(cluster.context);
    const destination: Destination | undefined =
      registry !== undefined ? { registry } : kind === undefined ? undefined : { kindCluster: kind };
    const mode = outputMode(
      this.jsonEnabled() || flags.output !== undefined,
      process.stdout.isTTY === true,
      process.env,
    );
    const progress = await createProgress(mode, (line) => this.log(line));
    let result: DeployResult;
    try {
      result = await deploy(
        {
          options,
          namespace,
          path: args.path,
          createNamespace: flags["create-namespace"],
          yes: flags.yes,
          waitMs: flags.wait ? waitMs : undefined,
          check: flags.check,
        },
        {
          cluster,
          progress,
          cwd: process.cwd(),
          build: destination === undefined ? undefined : buildAndDeliver(destination, flags.base, process.cwd()),
        },
      );
    } finally {
      await progress.close();
    }
    if (flags.output !== undefined) print(result.dataflow);
    else this.log(summary(result, namespace));
    return result;
  }
}

function summary(result: DeployResult, namespace: string): string {
  const { dataflow: df, action } = result;
  const name = df.metadata?.name ?? "";
  const what =
    action === "unchanged"
      ? `dataflow ${name} in namespace ${namespace} is unchanged`
      : `dataflow ${name} ${action} in namespace ${namespace}`;
  if (result.ready) {
    return `${what}: ${df.spec.processes ?? 1} process(es) × ${df.spec.workersPerProcess ?? 1} worker(s) running`;
  }
  if (df.spec.state === "suspended")
    return `${what}; it is suspended: \`waxctl df resume ${name} -n ${namespace}\` starts it`;
  return `${what}; \`waxctl df describe ${name} -n ${namespace}\` shows how it is doing`;
}

/** The flags `df deploy` and `df render` share, as oclif parses them. */
type SharedFlags = Pick<
  Interfaces.InferredFlags<typeof DfDeploy.flags>,
  | "name"
  | "processes"
  | "workers"
  | "env"
  | "env-from-secret"
  | "secret-file"
  | "image"
  | "recovery"
  | "recovery-size"
  | "recovery-storageclass"
  | "recovery-snapshot-interval"
  | "recovery-backup-interval"
  | "backup-bucket"
  | "backup-endpoint"
  | "backup-prefix"
  | "backup-region"
  | "backup-credentials-secret"
  | "from-savepoint"
  | "savepoint-prefix"
  | "upgrade-mode"
  | "rollback-after"
  | "pod-template"
  | "state-query"
  | "base"
  | "kind"
  | "registry"
>;

/** The Dataflow's options from the flags, with the checks both commands make before any work. */
export async function optionsOf(flags: SharedFlags, command: "deploy" | "render"): Promise<DeployOptions> {
  const options = deployOptions({
    name: flags.name,
    processes: flags.processes,
    workers: flags.workers,
    env: flags.env ?? [],
    envFromSecret: flags["env-from-secret"] ?? [],
    secretFile: flags["secret-file"] ?? [],
    image: flags.image,
    recovery: flags.recovery,
    recoverySize: flags["recovery-size"],
    recoveryStorageclass: flags["recovery-storageclass"],
    recoverySnapshotInterval: flags["recovery-snapshot-interval"],
    recoveryBackupInterval: flags["recovery-backup-interval"],
    stateQuery: flags["state-query"],
    backupBucket: flags["backup-bucket"],
    backupEndpoint: flags["backup-endpoint"],
    backupPrefix: flags["backup-prefix"],
    backupRegion: flags["backup-region"],
    backupCredentialsSecret: flags["backup-credentials-secret"],
    fromSavepoint: flags["from-savepoint"],
    savepointPrefix: flags["savepoint-prefix"],
    upgradeMode: flags["upgrade-mode"] as UpgradeMode | undefined,
    rollbackAfter: flags["rollback-after"],
    podTemplate:
      flags["pod-template"] === undefined
        ? undefined
        : { file: flags["pod-template"], text: await readFile(flags["pod-template"], "utf8") },
  });
  const buildFlag = (["base", "kind", "registry"] as const).find((f) => flags[f] !== undefined);
  if (flags.image !== undefined && buildFlag !== undefined) {
    throw new UsageError(`--${buildFlag} only applies when ${command} builds the image; leave out --image`);
  }
  if (flags.kind !== undefined && flags.registry !== undefined) {
    throw new UsageError("--kind and --registry are two places for the image; pass one");
  }
  return options;
}
