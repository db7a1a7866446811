import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import type { Dataflow } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { connect } from "../../kube.ts";
import { readProcesses } from "../../processes.ts";
import { describeText } from "../../ui/describe.ts";
import { type StepsView, stepsView } from "../../ui/steps.ts";

export interface Description {
  readonly dataflow: Dataflow;
  readonly pods: V1Pod[];
  readonly events: CoreV1Event[];
  /** The steps as the running processes report them (summed over processes and workers). */
  readonly steps: StepsView;
}

export default class DfDescribe extends ClusterCommand {
  static override summary = "Show a dataflow's spec, status, conditions, steps, Kafka lag, pods and recent events.";

  static override description =
    "The steps are listed as the running processes report them on their HTTP API (read through the " +
    "API server's pod proxy, so you need `get` on `pods/proxy`): each core step with its kind, the " +
    "operator it belongs to, whether it holds state, the items in and out so far and the keys held; for a " +
    "dataflow with Kafka sources, each partition's lag with the pod and worker reading it. " +
    "Nothing of the dataflow's code is loaded here.";

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
    const name = args.name;
    const { cluster, namespace } = await connect(flags);
    const dataflow = await cluster.mustGetDataflow(namespace, name);
    const [readings, events] = await Promise.all([
      readProcesses(cluster, namespace, name),
      cluster.events(namespace, "Dataflow", name),
    ]);
    const pods = readings.map((r) => r.pod);
    const steps = stepsView(readings);
    this.log(describeText(dataflow, pods, events, new Date(), steps));
    return { dataflow, pods, events, steps };
  }
}
