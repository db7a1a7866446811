/**
 * `waxflow run` supervising itself: the process a pod runs stays up and runs the dataflow
 * in a child process. When the child fails for a cause a restart cures (a peer lost, the
 * cluster not formed in time), the supervisor starts a new child after a short back-off,
 * which re-forms the cluster and resumes from the last committed epoch. Any other end of
 * the child (done, the user's error, a bad spec, a damaged store, a signal) is the
 * supervisor's own end, with the child's exit code.
 *
 * A child process rather than a second execution in this one: its exit releases all it
 * held (the store's lock, both ports, worker threads, timers the user's code left), so no
 * attempt can inherit a leak from the last one.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import type { Env } from "./config.ts";

/** The back-off between attempts: short, bounded, and forgotten after a good run. */
export const RESTART_BACKOFF = { firstMs: 500, maxMs: 5_000, resetAfterMs: 60_000 } as const;

/** The variable that tells a child it runs under a supervisor; internal. */
export const SUPERVISED_VARIABLE = "WAXFLOW_SUPERVISED";

/** What a supervised child tells its supervisor before it exits. */
export interface RestartRequest {
  readonly kind: "restart";
  /** The one line that says why the cluster failed. */
  readonly cause: string;
}

/**
 * How long to wait before the next attempt, given the last wait (undefined before the
 * first restart) and how long the attempt that just failed ran.
 */
export function restartDelay(lastMs: number | undefined, ranMs: number): number {
  if (lastMs === undefined || ranMs >= RESTART_BACKOFF.resetAfterMs) return RESTART_BACKOFF.firstMs;
  return Math.min(lastMs * 2, RESTART_BACKOFF.maxMs);
}

const SIGNAL_EXIT = { SIGINT: 128 + 2, SIGTERM: 128 + 15 } as const;
type StopSignal = keyof typeof SIGNAL_EXIT;
const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export interface SupervisorOptions {
  /** The program to run in the child (this CLI's own file) and the Node flags it needs. */
  readonly entry: string;
  readonly execArgv: readonly string[];
  /** `waxflow`'s own arguments; the child gets them with --no-supervise. */
  readonly argv: readonly string[];
  readonly env: Env;
  /** One line per restart; printed even when quiet: a restart is a fault. */
  readonly log: (line: string) => void;
}

interface ChildEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly restart: RestartRequest | undefined;
}

/** Runs children until one ends for good; resolves with the exit code for this process. */
export async function supervise(opts: SupervisorOptions): Promise<number> {
  let child: ChildProcess | undefined;
  let stopping: StopSignal | undefined;
  const stopped = new AbortController();
  const onSignal = (signal: StopSignal): void => {
    // A second Ctrl-C kills a child that will not stop, as it would kill an unsupervised run.
    if (stopping === "SIGINT" && signal === "SIGINT") child?.kill("SIGKILL");
    else child?.kill(signal);
    stopping ??= signal;
    stopped.abort();
  };
  const onInt = (): void => onSignal("SIGINT");
  const onTerm = (): void => onSignal("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  try {
    let lastDelay: number | undefined;
    for (let restarts = 0; ; restarts += 1) {
      const startedAt = Date.now();
      child = spawn(process.execPath, [...opts.execArgv, opts.entry, ...opts.argv, "--no-supervise"], {
        env: { ...opts.env, [SUPERVISED_VARIABLE]: "true" },
        stdio: ["inherit", "inherit", "inherit", "ipc"],
      });
      const end = await childEnd(child);
      child = undefined;
      if (stopping !== undefined) return exitCode(end) ?? SIGNAL_EXIT[stopping];
      if (end.restart === undefined) return exitCode(end) ?? 1;
      lastDelay = restartDelay(lastDelay, Date.now() - startedAt);
      opts.log(
        `the cluster failed: ${end.restart.cause}; re-forming it in ${lastDelay / 1000} s ` +
          `(restart ${restarts + 1}) and resuming from the last snapshot`,
      );
      await sleep(lastDelay, undefined, { signal: stopped.signal }).catch(() => undefined);
      if (stopping !== undefined) {
        process.stderr.write(`stopping on ${stopping}\n`);
        return SIGNAL_EXIT[stopping];
      }
    }
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
  }
}

function childEnd(child: ChildProcess): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    let restart: RestartRequest | undefined;
    child.on("message", (message: unknown) => {
      if (isRestartRequest(message)) restart = message;
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve({ code, signal, restart }));
  });
}

function exitCode(end: ChildEnd): number | undefined {
  if (end.code !== null) return end.code;
  return end.signal === null ? undefined : 128 + (SIGNAL_NUMBERS[end.signal] ?? 0);
}

function isRestartRequest(message: unknown): message is RestartRequest {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as { kind?: unknown }).kind === "restart" &&
    typeof (message as { cause?: unknown }).cause === "string"
  );
}

/** In a supervised child: whether this process has a supervisor to report to. */
export function supervised(env: Env): boolean {
  return env[SUPERVISED_VARIABLE] === "true" && process.send !== undefined;
}

/**
 * In a supervised child: dies with its supervisor. A supervisor killed outright (SIGKILL,
 * the OOM killer) must not leave a child holding the store's lock and the ports.
 */
export function dieWithSupervisor(): void {
  process.channel?.unref();
  process.once("disconnect", () => process.kill(process.pid, "SIGKILL"));
}

/** In a supervised child: asks for a new attempt; resolves once the request is sent. */
export function requestRestart(cause: string): Promise<void> {
  const request: RestartRequest = { kind: "restart", cause };
  return new Promise((resolve) => {
    if (process.send === undefined) resolve();
    else process.send(request, undefined, {}, () => resolve());
  });
}
