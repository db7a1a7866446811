/**
 * The one line a failed run prints: our own errors by their message alone (it names the
 * step, file or peer), anything else with its class name. Shared by the CLI and worker
 * threads, which send their failure to the process as this line.
 */

import { PeerError, PeerLostError } from "./cluster/peer-errors.ts";
import { BuildError, StepError, UsageError } from "./errors.ts";
import { LoadError } from "./process/load.ts";
import { RecoveryError } from "./recovery/errors.ts";

/** A worker thread's failure, as the line it would have printed; `detail` has its stack. */
export class WorkerThreadError extends Error {
  override name = "WorkerThreadError";
  readonly detail: string;
  constructor(line: string, detail: string) {
    super(line);
    this.detail = detail;
  }
}

export function describeFailure(err: unknown): string {
  const ours =
    err instanceof StepError ||
    err instanceof LoadError ||
    err instanceof UsageError ||
    err instanceof BuildError ||
    err instanceof RecoveryError ||
    err instanceof PeerError ||
    err instanceof WorkerThreadError;
  const message = err instanceof Error ? (ours ? err.message : `${err.name}: ${err.message}`) : String(err);
  return message.replace(/\s*\n\s*/g, " ");
}

/**
 * Whether re-forming the cluster can cure this failure: a peer lost or not reached in time.
 * Everything else (the user's code, a bad spec or module, a damaged store, a refused peer
 * that runs another dataflow or secret) fails the same way again.
 */
export function curedByRestart(err: unknown): boolean {
  return err instanceof PeerLostError;
}
