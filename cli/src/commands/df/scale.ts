import { Flags } from "@oclif/core";
import type { Dataflow } from "@waxflow/crds";
import { specSchema } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { scale } from "../../deploy/lifecycle.ts";
import { dataflowName, duration, durationMs, wholeNumber } from "../../deploy/options.ts";
import { waitUntilFormed } from "../../deploy/wait.ts";
import { connect } from "../../kube.ts";
import { createProgress, outputMode } from "../../ui/progress.ts";

export default class DfScale extends ClusterCommand {
  static override summary = "Change how many processes a dataflow runs.";
  static override description =
    "Sets spec.processes through the Dataflow's scale subresource. A worker cluster is fixed-size, so the operator replaces every process together; with recovery enabled they resume from the last snapshot, with the state spread over the new count.";

  static override examples = [
    { description: "Run orders on 4 processes:", command: "<%= config.bin %> <%= command.id %> orders --processes 4" },
    {
      description: "The same, returning once the 4 processes run:",
      command: "<%= config.bin %> <%= command.id %> orders --processes 4 --wait",
    },
  ];

  static override args = { name: nameArg };

  static override flags = {
    processes: Flags.string({
      char: "p",
      description: "Processes (pods), at least 1.",
      required: true,
      helpValue: "N",
    }),
    wait: Flags.boolean({ description: "Wait until the new processes are ready and the worker cluster has formed." }),
    timeout: Flags.string({ description: "How long --wait waits.", default: "5m", helpValue: "DURATION" }),
  };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfScale);
    const name = dataflowName("NAME", args.name);
    const processes = wholeNumber("processes", flags.processes, 1, specSchema.properties.processes.maximum);
    const timeoutMs = durationMs(duration("timeout", flags.timeout));
    const { cluster, namespace } = await connect(flags);
    const { dataflow, changed } = await scale(cluster, namespace, name, processes);
    this.log(
      changed
        ? `dataflow ${name} in namespace ${namespace} scaled to ${processes} process(es); every process is replaced together`
        : `dataflow ${name} in namespace ${namespace} already runs ${processes} process(es)`,
    );
    if (!changed || !flags.wait) return dataflow;
    const mode = outputMode(this.jsonEnabled(), process.stdout.isTTY === true, process.env);
    const progress = await createProgress(mode, (line) => this.log(line));
    try {
      return await waitUntilFormed(cluster, dataflow, progress, { timeoutMs });
    } finally {
      await progress.close();
    }
  }
}
