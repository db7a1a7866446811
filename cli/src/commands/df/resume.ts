import type { Dataflow } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { setState } from "../../deploy/lifecycle.ts";
import { connect } from "../../kube.ts";

export default class DfResume extends ClusterCommand {
  static override summary = "Start a suspended dataflow again, from its recovery snapshots.";
  static override description =
    "Sets spec.state to running: the operator starts every process together, and with recovery enabled they resume where the dataflow was suspended.";

  static override examples = [
    { description: "Resume orders:", command: "<%= config.bin %> <%= command.id %> orders -n streams" },
  ];

  static override args = { name: nameArg };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfResume);
    const name = args.name;
    const { cluster, namespace } = await connect(flags);
    const { dataflow, changed } = await setState(cluster, namespace, name, "running");
    this.log(
      changed
        ? `dataflow ${name} in namespace ${namespace} resumed; \`waxctl df describe ${name} -n ${namespace}\` shows its processes`
        : `dataflow ${name} in namespace ${namespace} is already running`,
    );
    return dataflow;
  }
}
