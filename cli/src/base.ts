import { inspect, stripVTControlCharacters } from "node:util";
import { Command, Errors, Flags } from "@oclif/core";
import { OciError } from "@waxflow/oci";
import { UserError } from "./errors.ts";
import { dataflowNameArg } from "./flags.ts";

/** A failure with lines that explain it (pod events, log lines), printed before the error line. */
export class DetailedError extends UserError {
  override name = "DetailedError";
  readonly details: readonly string[];

  constructor(message: string, details: readonly string[]) {
    super(message);
    this.details = details;
  }
}

/** The NAME argument of every command that acts on one Dataflow, checked while oclif parses. */
export const nameArg = dataflowNameArg({ description: "Name of the Dataflow.", required: true });

/** `WAXFLOW_DEBUG=1` adds the stack (and causes) after the one line, as the runtime does. */
const debug = (): boolean => process.env.WAXFLOW_DEBUG === "1";

/** Straight to stderr: oclif's logToStderr is silent under --json, where a failure must still say why. */
const toStderr = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/**
 * Errors the user can act on printed as one unwrapped line (`error: <message>`, as the
 * runtime prints them) instead of oclif's boxed, width-wrapped block: exit code 2 for usage
 * (including oclif's own flag and argument errors, without the usage block), 1 for
 * everything else. No stack unless WAXFLOW_DEBUG=1.
 */
export abstract class WaxctlCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof Errors.ExitError) return super.catch(err);
    if (err instanceof DetailedError) for (const line of err.details) toStderr(line);
    // Before parsing succeeded every error is oclif's own about the flags and arguments.
    const [line, exitCode] =
      // A typed flag's own check (src/flags.ts) already says what to type.
      err instanceof UserError && !this.parsed
        ? [parseErrorLine(err), err.exitCode]
        : err instanceof UserError
          ? [err.message, err.exitCode]
          : err instanceof OciError
            ? [err.message, err.usage ? 2 : 1]
            : !this.parsed
              ? [parseErrorLine(err, `; see \`waxctl ${this.id?.replaceAll(":", " ") ?? ""} --help\``), 2]
              : [
                  `${err.name}: ${oneLine(err.message)} (a failure waxctl did not expect; WAXFLOW_DEBUG=1 shows where)`,
                  1,
                ];
    toStderr(`error: ${line}`);
    if (debug()) toStderr(inspect(err, { depth: 6 }));
    return this.exit(exitCode);
  }
}

/** oclif's flag and argument errors carry these (its parser's error classes are not exported). */
interface ParseError extends Error {
  readonly flags?: readonly string[];
  readonly args?: readonly (string | { readonly name: string; readonly description?: string })[];
}

/**
 * What oclif says over several lines (and then the whole usage), in one; `help` (where to
 * read more) ends a line that does not already say what to type.
 */
function parseErrorLine(err: ParseError, help = ""): string {
  const names = (err.args ?? []).map((a) => (typeof a === "string" ? JSON.stringify(a) : a.name.toUpperCase()));
  switch (err.constructor.name) {
    case "NonExistentFlagsError":
      return `unknown flag ${(err.flags ?? []).join(", ")}${help}`;
    case "UnexpectedArgsError":
      return `unexpected argument ${names.join(", ")}${help}`;
    case "RequiredArgsError": {
      const first = err.args?.[0];
      const what = typeof first === "object" && first.description ? ` (${first.description.replace(/\.$/, "")})` : "";
      return `missing argument ${names.join(", ")}${what}${help}`;
    }
  }
  // Of several failed flag relations, the first: one line, one thing to fix.
  const text = oneLine(
    stripVTControlCharacters(err.message)
      .replace(/\nSee more help with --help$/, "")
      .replace(/^The following errors? occurred:\s*\n\s*([^\n]*)[\s\S]*$/, "$1"),
  );
  // A declared dependsOn, as deployOptions used to say it by hand.
  const relation = /^All of the following must be provided when using (--\S+): (--\S+)$/.exec(text);
  if (relation !== null) return `${relation[1]} only applies with ${relation[2]}; add ${relation[2]}`;
  // A typed flag's check (src/flags.ts) names the flag itself and says what to type.
  const own = /^Parsing (--\S+) (\1 .*)$/.exec(text);
  if (own?.[2] !== undefined) return own[2];
  return `${text
    .replace(/^Missing required flag (\S+)/, "missing required flag --$1")
    .replace(/^Parsing (--\S+) /, "$1: ")}${help}`;
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, " ");
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
