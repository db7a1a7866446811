// Typed oclif flags and arguments for the values every command checks the same way: counts,
// Go durations and Dataflow names. oclif runs the check while it parses, so `flags.processes`
// is a number and a bad value fails before run() does any work. A failure is the UsageError
// of deploy/options.ts (one line naming the flag or argument and what to type); oclif wraps
// a flag's message as "Parsing --x \n\t<message>", which WaxctlCommand.catch unwraps again,
// and passes an argument's through as it is.

import { Args, Flags } from "@oclif/core";
import { durationMs } from "@waxflow/crds";
import { duration as checkedDuration, dataflowName as checkedName, wholeNumber } from "./deploy/options.ts";
import { UsageError } from "./errors.ts";

/** A whole number from `min` to `max` (-p, -w, --tail). */
export const count = Flags.custom<number, { min: number; max: number }>({
  helpValue: "N",
  parse: async (input, _ctx, opts) => wholeNumber(opts.name, input, opts.min, opts.max),
});

/** A Go duration (500ms, 30s, 1m30s) as the CRD accepts it, at least `minMs` when given. */
export const duration = Flags.custom<string, { minMs?: number }>({
  helpValue: "DURATION",
  parse: async (input, _ctx, opts) => {
    const text = checkedDuration(opts.name, input);
    if (opts.minMs !== undefined && durationMs(text) < opts.minMs) {
      throw new UsageError(`--${opts.name} must be at least ${opts.minMs}ms, got "${text}"`);
    }
    return text;
  },
});

/** A Dataflow's name: a DNS-1123 label short enough for the pod names made from it. */
export const dataflowName = Flags.custom<string>({
  helpValue: "NAME",
  parse: async (input, _ctx, opts) => checkedName(`--${opts.name}`, input),
});

/** A Dataflow's name as a positional argument (NAME, SRC), checked as `dataflowName` checks the flag. */
export const dataflowNameArg = Args.custom<string>({
  parse: async (input, _ctx, opts) => checkedName(opts.name.toUpperCase(), input),
});
