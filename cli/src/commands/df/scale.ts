import { Flags } from "@oclif/core";
import type { Dataflow } from "@waxflow/crds";
import { specSchema } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { scale } from "../../deploy/lifecycle.ts";
import { dataflowName, wholeNumber } from "../../deploy/options.ts";
import { connect } from "../../kube.ts";

export default class DfScale extends ClusterCommand {
  static override summary = "Change how many processes a dataflow runs.";
  static override description =
    "Sets spec.processes through the Dataflow's scale subresource. A worker cluster is fixed-size, so the operator replaces every process together; with recovery enabled they resume from the last snapshot, with the state spread over the new count.";

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
    const { dataflow, changed } = await scale(cluster, namespace, name, processes);
    this.log(
      changed
        ? `dataflow ${name} in namespace ${namespace} scaled to ${processes} process(es); every process is replaced together`
        : `dataflow ${name} in namespace ${namespace} already runs ${processes} process(es)`,
    );
    return dataflow;
  }
}
