import { Args, Flags } from "@oclif/core";
import { specSchema } from "@waxflow/crds";
import { WaxctlCommand } from "../base.ts";
import { wholeNumber } from "../deploy/options.ts";

type RuntimeMain = (
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  cwd: string,
) => Promise<number>;

/**
 * The runtime's own CLI, found next to the `waxflow` entry the current export conditions
 * pick: its TypeScript sources in this repository, its built dist/ once installed.
 */
async function runtimeMain(): Promise<RuntimeMain> {
  const index = import.meta.resolve("waxflow");
  const cli = new URL(index.endsWith(".ts") ? "./cli.ts" : "./cli.js", index);
  const mod = (await import(cli.href)) as { main: RuntimeMain };
  return mod.main;
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
    workers: Flags.string({ char: "w", description: "Workers in this process.", default: "1", helpValue: "N" }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Run);
    const workers = wholeNumber("workers", flags.workers, 1, MAX_WORKERS);
    const main = await runtimeMain();
    const code = await main(["run", args.path, "-w", String(workers)], process.env, process.cwd());
    // The runtime has already printed the one-line cause.
    if (code !== 0) this.exit(code);
  }
}
