import { Args, Command, Flags } from "@oclif/core";
import { UserError } from "./errors.ts";

/** A failure with lines that explain it (pod events, log lines), printed before the error line. */
export class DetailedError extends UserError {
  override name = "DetailedError";
  readonly details: readonly string[];

  constructor(message: string, details: readonly string[]) {
    super(message);
    this.details = details;
  }
}

/** The NAME argument of every command that acts on one Dataflow. */
export const nameArg = Args.string({ description: "Name of the Dataflow.", required: true });

/**
 * Errors the user can act on printed as one unwrapped line (`error: <message>`, as the
 * runtime prints them) instead of oclif's boxed, width-wrapped block: exit code 2 for usage,
 * 1 for everything else the user can fix.
 */
export abstract class WaxctlCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof UserError) {
      if (err instanceof DetailedError) for (const line of err.details) this.logToStderr(line);
      this.logToStderr(`error: ${err.message}`);
      this.exit(err.exitCode);
    }
    return super.catch(err);
  }
}

/** The flags every command that talks to a cluster shares. */
export abstract class ClusterCommand extends WaxctlCommand {
  static override enableJsonFlag = true;

  static override baseFlags = {
    kubeconfig: Flags.string({
      description: "Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
      helpGroup: "CLUSTER",
      helpValue: "PATH",
    }),
    context: Flags.string({
      description: "Kubeconfig context to use (default: the current context).",
      helpGroup: "CLUSTER",
      helpValue: "NAME",
    }),
    namespace: Flags.string({
      char: "n",
      description: "Namespace of the dataflow (default: the context's namespace, else `default`).",
      helpGroup: "CLUSTER",
      helpValue: "NAME",
    }),
  };
}
