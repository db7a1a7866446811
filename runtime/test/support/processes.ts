import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";

export interface Exit {
  readonly code: number | null;
  readonly stderr: string;
  readonly at: number;
}

export interface Run {
  readonly child: ChildProcess;
  readonly exit: Promise<Exit>;
  /** What the process has written to stderr so far. */
  readonly stderrSoFar: () => string;
}

/**
 * Node processes (run from the runtime's source) and temporary directories for the tests
 * of one file: call at the file's top level; whatever a test leaves is killed and removed
 * after it.
 */
export function childProcesses(): {
  start(args: readonly string[], options: SpawnOptions, onStderr?: (soFar: string) => void): Run;
  tempDir(prefix: string): string;
} {
  const children: Array<{ child: ChildProcess; args: readonly string[]; stderr: () => string }> = [];
  const dirs: string[] = [];
  afterEach((ctx) => {
    // A failed test shows what its processes said: a flake in CI is then diagnosable from the log.
    if (ctx.task.result?.state === "fail") {
      for (const { child, args, stderr } of children) {
        process.stderr.write(`--- stderr of pid ${child.pid} (${args.join(" ")}):\n${stderr().slice(-4000)}\n`);
      }
    }
    for (const { child } of children.splice(0)) child.kill("SIGKILL");
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return {
    start(args, options, onStderr) {
      const child = spawn(process.execPath, ["--conditions=waxflow-source", ...args], options);
      let stderr = "";
      children.push({ child, args, stderr: () => stderr });
      child.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
        onStderr?.(stderr);
      });
      const exit = new Promise<Exit>((done) => child.on("exit", (code) => done({ code, stderr, at: Date.now() })));
      return { child, exit, stderrSoFar: () => stderr };
    },
    tempDir(prefix) {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
  };
}
