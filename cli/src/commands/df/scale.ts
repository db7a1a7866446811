import { Flags } from "@oclif/core";
import type { Dataflow } from "@waxflow/crds";
import { specSchema } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { scale } from "../../deploy/lifecycle.ts";
import { dataflowName, wholeNumber } from "../../deploy/options.ts";
import { connect } from "../../kube.ts";

/** Volume sources that are per pod by nature: a directory on one of them cannot be shared between processes. */
const PER_POD = ["emptyDir", "configMap", "secret", "downwardAPI", "projected", "ephemeral"] as const;

/**
 * What to tell about file output when a dataflow with recovery changes its process count
 * and its pods mount no volume they could share: FileSink and DirSink files stay on the
 * pod that wrote them, so the rescaled processes stop at start if the files are on each
 * pod's own volume. Whether the dataflow writes files only its processes know, so this
 * is a note, not a refusal.
 */
export function fileOutputNote(df: Dataflow, previous: number): string | undefined {
  if (df.spec.recovery?.enabled !== true) return undefined;
  const volumes = df.spec.podTemplate?.spec?.volumes ?? [];
  const shared = volumes.filter((v) => !PER_POD.some((source) => v[source] !== undefined));
  if (shared.length > 0) return undefined;
  const name = df.metadata?.name ?? "";
  const namespace = df.metadata?.namespace ?? "";
  return (
    "note: FileSink and DirSink files stay on the pod that wrote them, and these pods mount no shared volume: " +
    "if this dataflow writes files on each pod's own volume, the rescaled processes stop at start saying that " +
    `file output across a rescale needs a shared volume (\`waxctl df logs ${name} -n ${namespace}\`); ` +
    `\`waxctl df scale ${name} -n ${namespace} -p ${previous}\` goes back. The README's "File output on Kubernetes" shows how to mount one`
  );
}

export default class DfScale extends ClusterCommand {
  static override summary = "Change how many processes a dataflow runs.";
  static override description =
    "Sets spec.processes through the Dataflow's scale subresource. A worker cluster is fixed-size, so the operator replaces every process together; with recovery enabled they resume from the last snapshot, with the state spread over the new count. File output (FileSink, DirSink) moves only if its directory is on a volume every pod mounts: on each pod's own volume the rescaled processes stop at start, naming the file.";

  static override examples = [
    { description: "Run orders on 4 processes:", command: "<%= config.bin %> <%= command.id %> orders --processes 4" },
  ];

  static override args = { name: nameArg };

  static override flags = {
    processes: Flags.string({
      char: "p",
      description: "Processes (pods), at least 1.",
      required: true,
      helpValue: "N",
    }),
  };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfScale);
    const name = dataflowName("NAME", args.name);
    const processes = wholeNumber("processes", flags.processes, 1, specSchema.properties.processes.maximum);
    const { cluster, namespace } = await connect(flags);
    const previous = (await cluster.mustGetDataflow(namespace, name)).spec.processes ?? 1;
    const { dataflow, changed } = await scale(cluster, namespace, name, processes);
    this.log(
      changed
        ? `dataflow ${name} in namespace ${namespace} scaled to ${processes} process(es); every process is replaced together`
        : `dataflow ${name} in namespace ${namespace} already runs ${processes} process(es)`,
    );
    const note = changed ? fileOutputNote(dataflow, previous) : undefined;
    if (note !== undefined) this.logToStderr(note);
    return dataflow;
  }
}
