import { homedir } from "node:os";
import { Args, Flags } from "@oclif/core";
import type { Dataflow } from "@waxflow/crds";
import { dump } from "js-yaml";
import { ClusterCommand } from "../../base.ts";
import { bundleDataflow } from "../../bundle.ts";
import { dataflowManifest } from "../../deploy/manifest.ts";
import { deployOptions } from "../../deploy/options.ts";
import { UsageError, UserError } from "../../errors.ts";
import { APP_DIR, appLayer } from "../../image/layer.ts";
import { loadKubeConfig, targetNamespace } from "../../kube.ts";

// Until images are assembled, a dry run shows this instead of a digest it cannot know.
export const UNBUILT_IMAGE = "(not built yet: pass --image REGISTRY/NAME@sha256:<digest>)";

export default class DfDeploy extends ClusterCommand {
  static override summary = "Bundle a dataflow, build its image and run it in the cluster.";
  static override description =
    `Bundles PATH and its imports with esbuild (TypeScript works as is), builds an image that is the waxflow-runtime image plus one layer holding the bundle at /${APP_DIR}, and applies a Dataflow resource that runs it on N processes of W workers each. The waxflow operator creates the pods.

--dry-run -o yaml prints the Dataflow that would be applied and touches nothing.`;

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
      description: "Use an image you built elsewhere and set a variable:",
      command:
        "<%= config.bin %> <%= command.id %> flow.ts -N orders --image registry.example/orders@sha256:<digest> -e LOG_LEVEL=debug",
    },
  ];

  static override args = {
    path: Args.string({
      description: "The dataflow's entry module (.ts or .js), optionally PATH:NAME for a named export.",
      required: true,
    }),
  };

  static override flags = {
    name: Flags.string({
      char: "N",
      description: "Name of the Dataflow: lowercase letters, digits and '-', at most 52 characters.",
      required: true,
      helpValue: "NAME",
    }),
    processes: Flags.string({ char: "p", description: "Processes (pods), at least 1.", default: "1", helpValue: "N" }),
    workers: Flags.string({ char: "w", description: "Workers per process, at least 1.", default: "1", helpValue: "N" }),
    env: Flags.string({
      char: "e",
      description: "Environment variable for every process; repeat for more.",
      multiple: true,
      multipleNonGreedy: true,
      helpValue: "KEY=VALUE",
    }),
    image: Flags.string({
      description: "Deploy this image (by digest) instead of building one.",
      helpValue: "REF@sha256:DIGEST",
    }),
    recovery: Flags.boolean({
      description: "Snapshot state to a volume per process, so a restart resumes where it stopped.",
      helpGroup: "RECOVERY",
    }),
    "recovery-size": Flags.string({
      description: "Size of each recovery volume (default 1Gi).",
      helpGroup: "RECOVERY",
      helpValue: "QUANTITY",
    }),
    "recovery-storageclass": Flags.string({
      description: "Storage class of the recovery volumes (default: the cluster's).",
      helpGroup: "RECOVERY",
      helpValue: "NAME",
    }),
    "recovery-snapshot-interval": Flags.string({
      description: "Time between snapshots, e.g. 10s (the default).",
      helpGroup: "RECOVERY",
      helpValue: "DURATION",
    }),
    "recovery-backup-interval": Flags.string({
      description: "How long old snapshots are kept, at least the snapshot interval (default 30s).",
      helpGroup: "RECOVERY",
      helpValue: "DURATION",
    }),
    "dry-run": Flags.boolean({ description: "Print the Dataflow that would be applied; change nothing." }),
    output: Flags.option({ char: "o", description: "Format of the dry run.", options: ["yaml", "json"] as const })(),
  };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfDeploy);
    const options = deployOptions({
      name: flags.name,
      processes: flags.processes,
      workers: flags.workers,
      env: flags.env ?? [],
      image: flags.image,
      recovery: flags.recovery,
      recoverySize: flags["recovery-size"],
      recoveryStorageclass: flags["recovery-storageclass"],
      recoverySnapshotInterval: flags["recovery-snapshot-interval"],
      recoveryBackupInterval: flags["recovery-backup-interval"],
    });
    if (flags.output !== undefined && !flags["dry-run"]) {
      throw new UsageError("-o/--output only applies with --dry-run; add --dry-run");
    }
    if (!flags["dry-run"]) {
      throw new UserError(
        "applying to a cluster is not implemented in this waxctl yet; add --dry-run -o yaml to see the Dataflow",
      );
    }
    const kube = await loadKubeConfig(flags, process.env, homedir());
    const namespace = targetNamespace(flags, kube);

    // PATH:NAME picks a named export or factory, as `waxflow run` does.
    const named = /^(.+):([A-Za-z_$][\w$]*)$/.exec(args.path);
    const bundle = await bundleDataflow(named?.[1] ?? args.path, process.cwd());
    const layer = await appLayer([{ path: bundle.entry, contents: bundle.code }]);
    const manifest = dataflowManifest({
      options,
      namespace,
      image: options.image ?? UNBUILT_IMAGE,
      module: `/${APP_DIR}/${bundle.entry}${named === null ? "" : `:${named[2]}`}`,
      // Lets a later deploy see that the code is unchanged even before images are built.
      annotations: { "waxflow.io/app-layer": layer.digest },
    });
    this.log(
      flags.output === "json"
        ? JSON.stringify(manifest, null, 2)
        : dump(manifest, { lineWidth: -1, noRefs: true }).trimEnd(),
    );
    return manifest;
  }
}
