import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import type { Dataflow } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { dataflowName } from "../../deploy/options.ts";
import { connect } from "../../kube.ts";
import { describeText } from "../../ui/describe.ts";

export interface Description {
  readonly dataflow: Dataflow;
  readonly pods: V1Pod[];
  readonly events: CoreV1Event[];
}

export default class DfDescribe extends ClusterCommand {
  static override summary = "Show a dataflow's spec, status, conditions, pods and recent events.";

  static override examples = [
    { description: "Why is it not running?", command: "<%= config.bin %> <%= command.id %> orders -n streams" },
    {
      description: "Everything as JSON (the Dataflow, its pods and events):",
      command: "<%= config.bin %> <%= command.id %> orders --json",
    },
  ];

  static override args = { name: nameArg };

  async run(): Promise<Description> {
    const { args, flags } = await this.parse(DfDescribe);
    const name = dataflowName("NAME", args.name);
    const { cluster, namespace } = await connect(flags);
    const dataflow = await cluster.mustGetDataflow(namespace, name);
    const [pods, events] = await Promise.all([
      cluster.pods(namespace, name),
      cluster.events(namespace, "Dataflow", name),
    ]);
    this.log(describeText(dataflow, pods, events, new Date()));
    return { dataflow, pods, events };
  }
}
