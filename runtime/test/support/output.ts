// What a child process printed, for tests and benchmarks alike (no vitest here: the bench
// runs in plain Node).
import type { ChildProcess } from "node:child_process";

/** What a finished process printed, and its exit code. */
export interface Output {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Collects `child`'s stdout and stderr until it closes; `onFirstStdout` hears its first output. */
export function output(child: ChildProcess, onFirstStdout?: () => void): Promise<Output> {
  return new Promise((done, fail) => {
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      if (stdout === "") onFirstStdout?.();
      stdout += s;
    });
    child.stderr?.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}
