import type { Dataflow } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { setState } from "../../deploy/lifecycle.ts";
import { connect } from "../../kube.ts";

export default class DfSuspend extends ClusterCommand {
  static override summary = "Stop every process of a dataflow, keeping its recovery volumes.";
  static override description =
    "Sets spec.state to suspended: the operator scales the worker cluster to zero and keeps the recovery volumes, so `waxctl df resume` continues from the last snapshot.";

  static override examples = [{ description: "Pause orders:", command: "<%= config.bin %> <%= command.id %> orders" }];

  static override args = { name: nameArg };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfSuspend);
    const name = args.name;
    const { cluster, namespace } = await connect(flags);
    const { dataflow, changed } = await setState(cluster, namespace, name, "suspended");
    this.log(
      changed
        ? `dataflow ${name} in namespace ${namespace} suspended; \`waxctl df resume ${name} -n ${namespace}\` starts it again`
        : `dataflow ${name} in namespace ${namespace} is already suspended`,
    );
    return dataflow;
  }
}
