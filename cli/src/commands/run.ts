import { Args } from "@oclif/core";
import { specSchema } from "@waxflow/crds";
import { WaxctlCommand } from "../base.ts";
import { count } from "../flags.ts";

/**
 * The runtime's own CLI (`waxflow/cli`): its TypeScript sources in this repository, its
 * built dist/ once installed, as the export conditions pick. Loaded on use: `waxctl run`
 * alone needs the engine.
 */
async function runtimeMain(): Promise<typeof import("waxflow/cli").main> {
  return (await import("waxflow/cli")).main;
}

/** As many as a Dataflow may have per process, so `run` accepts what `df deploy` does. */
const MAX_WORKERS = specSchema.properties.workersPerProcess.maximum;

export default class Run extends WaxctlCommand {
  static override summary = "Run a dataflow here, in this process, without a cluster.";
  static override description =
    `Loads the module (TypeScript or JavaScript) and runs its dataflow until every input reaches its end, exactly as a pod does with \`waxflow run\`. The module exports \`flow\`, a default export, or a dataflow (or a factory of one) named after a colon: PATH:NAME.

Use it to try a dataflow before \`waxctl df deploy\` sends it to Kubernetes.`;

  static override examples = [
    {
      description: "Count the words of the example file:",
      command: "<%= config.bin %> <%= command.id %> examples/wordcount.ts",
    },
    { description: "Run with 4 workers:", command: "<%= config.bin %> <%= command.id %> flow.ts -w 4" },
    {
      description: "Run the export named `pipeline`:",
      command: "<%= config.bin %> <%= command.id %> flow.ts:pipeline",
    },
  ];

  static override args = {
    path: Args.string({ description: "Dataflow module, optionally PATH:NAME for a named export.", required: true }),
  };

  static override flags = {
    workers: count({ char: "w", description: "Workers in this process.", default: 1, min: 1, max: MAX_WORKERS }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Run);
    const workers = flags.workers;
    const main = await runtimeMain();
    const code = await main(["run", args.path, "-w", String(workers)], process.env, process.cwd());
    // The runtime has already printed the one-line cause.
    if (code !== 0) this.exit(code);
  }
}
