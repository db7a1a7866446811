// The controller's command line: flags for what a person tunes by hand (the log), the
// environment for what the chart sets. A flag wins over its environment variable.
import { parseArgs } from "node:util";
import { FORMATS, type Format, LEVELS, type Level } from "./log.ts";

export const USAGE = `Usage: waxflow-controller [--log-level LEVEL] [--log-format FORMAT]

Installs the Dataflow CRD, wins the Lease, then reconciles Dataflows into worker clusters.

Flags:
  --log-level LEVEL    debug, info, warn or error (env LOG_LEVEL; default info). info logs one
                       line per reconcile that changed something; debug also those that did not.
  --log-format FORMAT  json or text (env LOG_FORMAT; default json)
  -h, --help           show this help

Environment:
  WATCH_NAMESPACES         comma-separated namespaces; all when empty
  POD_NAMESPACE            where the Lease lives (default "default")
  LEADER_ELECT             "false" to run without a Lease (one replica only)
  LEASE_DURATION_SECONDS   how long a dead leader blocks the others (default 15)
  PROBE_PORT               /healthz and /metrics (default 8080)
  WORKERS                  Dataflows reconciled concurrently (default 32)
  INSTALL_CRD              "false" when the chart installs the CRD
  API_CLIENT_NAMESPACE_LABELS, API_CLIENT_POD_LABELS
                           k=v,... : who besides the controller's namespace may reach the API port
  ALLOW_PRIVILEGED_DATAFLOWS  "true": a Dataflow with spec.allowPrivileged gets its pod template
  UNINSTALL_CHECK          "true": only check that no Dataflow is left
`;

export type Options =
  | { readonly help: true }
  | { readonly help: false; readonly level: Level; readonly format: Format };

function oneOf<T extends string>(allowed: readonly T[], value: string, what: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined) throw new Error(`${what} must be one of ${allowed.join(", ")}, not "${value}"`);
  return found;
}

/** Throws one line naming the flag or variable that was wrong. */
export function parseOptions(
  argv: readonly string[],
  env: { readonly LOG_LEVEL?: string | undefined; readonly LOG_FORMAT?: string | undefined },
): Options {
  let values: { "log-level"?: string; "log-format"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)} (see --help)`);
  }
  if (values.help === true) return { help: true };
  const level =
    values["log-level"] !== undefined
      ? oneOf(LEVELS, values["log-level"], "--log-level")
      : oneOf(LEVELS, env.LOG_LEVEL || "info", "LOG_LEVEL");
  const format =
    values["log-format"] !== undefined
      ? oneOf(FORMATS, values["log-format"], "--log-format")
      : oneOf(FORMATS, env.LOG_FORMAT || "json", "LOG_FORMAT");
  return { help: false, level, format };
}
