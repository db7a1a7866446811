import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";
import { Flags } from "@oclif/core";
import { ClusterCommand, nameArg } from "../../base.ts";
import { dataflowName, wholeNumber } from "../../deploy/options.ts";
import { podStatus } from "../../deploy/status.ts";
import { UserError } from "../../errors.ts";
import { connect } from "../../kube.ts";
import { prefixedLines } from "../../ui/format.ts";

export default class DfLogs extends ClusterCommand {
  static override summary = "Print the logs of every process of a dataflow, each line prefixed with its pod.";
  // Log lines are the output; there is no result to print as JSON.
  static override enableJsonFlag = false;

  static override examples = [
    {
      description: "The last 20 lines of each process:",
      command: "<%= config.bin %> <%= command.id %> orders --tail 20",
    },
    { description: "Follow every process as it writes:", command: "<%= config.bin %> <%= command.id %> orders -f" },
  ];

  static override args = { name: nameArg };

  static override flags = {
    follow: Flags.boolean({ char: "f", description: "Keep printing new lines until interrupted (Ctrl-C)." }),
    tail: Flags.string({ description: "Lines to show from the end of each log (default: all).", helpValue: "N" }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(DfLogs);
    const name = dataflowName("NAME", args.name);
    const tailLines = flags.tail === undefined ? undefined : wholeNumber("tail", flags.tail, 0, 1_000_000);
    const { cluster, namespace } = await connect(flags);
    const df = await cluster.mustGetDataflow(namespace, name);
    const pods = await cluster.pods(namespace, name);
    if (pods.length === 0) {
      const why = df.spec.state === "suspended" ? "it is suspended" : "none has been created yet";
      throw new UserError(
        `dataflow ${name} in namespace ${namespace} has no pods: ${why}; \`waxctl df describe ${name} -n ${namespace}\` shows why`,
      );
    }
    if (!flags.follow) {
      for (const pod of pods) {
        const podName = pod.metadata?.name ?? "";
        const text = await cluster.podLog(namespace, podName, tailLines);
        if (text === undefined) this.logToStderr(`[${podName}] (no log yet: ${podStatus(pod)})`);
        else for (const line of prefixedLines(podName, text)) this.log(line);
      }
      return;
    }
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once("SIGINT", interrupt);
    try {
      await Promise.all(
        pods.map(async (pod) => {
          const podName = pod.metadata?.name ?? "";
          const out = new PassThrough();
          // An aborted request stops feeding `out` without ending it; end it so the reader finishes.
          stop.signal.addEventListener("abort", () => out.end(), { once: true });
          await cluster.followPodLog(namespace, podName, out, { tailLines, signal: stop.signal });
          for await (const line of createInterface({ input: out })) this.log(`[${podName}] ${line}`);
        }),
      );
    } finally {
      process.off("SIGINT", interrupt);
    }
  }
}
