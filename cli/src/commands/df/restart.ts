import type { Dataflow } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { restart } from "../../deploy/lifecycle.ts";
import { connect } from "../../kube.ts";

export default class DfRestart extends ClusterCommand {
  static override summary = "Restart every process of a dataflow together.";
  static override description =
    "Bumps spec.restartNonce; the operator replaces every process together. With recovery enabled they resume from the last snapshot.";

  static override examples = [
    { description: "Restart orders:", command: "<%= config.bin %> <%= command.id %> orders" },
  ];

  static override args = { name: nameArg };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfRestart);
    const name = args.name;
    const { cluster, namespace } = await connect(flags);
    const dataflow = await restart(cluster, namespace, name);
    this.log(
      `dataflow ${name} in namespace ${namespace} restarting (restartNonce ${dataflow.spec.restartNonce}); \`waxctl df describe ${name} -n ${namespace}\` shows its processes`,
    );
    return dataflow;
  }
}
