// Vitest global setup: before a project's tests run, installs the tools its config lists
// in `provide.tools` (vitest.config.ts), one progress line per tool, so a first run on a
// fresh machine builds what it needs and later runs find it cached. A tool that cannot be
// had is reported here and left to the tests that need it, which fail naming the command.
import { spawn } from "node:child_process";
import { appendFileSync, closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { TestProject } from "vitest/node";
import { installLog, repoRoot, type ToolName, toolbox } from "./test-tools.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** The tools a project's test files need (e2e/toolchain/test-tools.ts). */
    tools: ToolName[];
  }
}

/** While a build runs longer than this, a line says it still does. */
const HEARTBEAT_MS = 5 * 60_000;

const say = (line: string) => process.stderr.write(`[test setup] ${line}\n`);

function elapsed(since: number): string {
  const s = Math.round((Date.now() - since) / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

/** Runs `command` from the repository root with its output in `log`; resolves to its exit code. */
function run(command: readonly string[], log: string): Promise<number> {
  mkdirSync(dirname(log), { recursive: true });
  const out = openSync(log, "w");
  const [file = "", ...args] = command;
  return new Promise<number>((resolve) => {
    const child = spawn(file, args, { cwd: repoRoot, stdio: ["ignore", out, out] });
    child.once("error", (err) => {
      appendFileSync(out, `${String(err)}\n`);
      resolve(127);
    });
    child.once("close", (code) => resolve(code ?? 1));
  }).finally(() => closeSync(out));
}

function lastLine(file: string): string {
  return readFileSync(file, "utf8").trim().split("\n").at(-1)?.trim() ?? "";
}

export default async function setup(project: TestProject): Promise<void> {
  const { tools } = toolbox();
  for (const name of project.getProvidedContext().tools) {
    const { title, install, cold, ready, everyRun } = tools[name];
    if (everyRun !== true && ready()) {
      say(`${title}: ready`);
      continue;
    }
    const command = install.join(" ");
    say(`${title}: ${command}${cold === undefined ? "" : ` (first run only: about ${cold})`} ...`);
    const started = Date.now();
    const heartbeat = setInterval(() => say(`${title}: still at it, ${elapsed(started)} so far`), HEARTBEAT_MS);
    const log = installLog(name);
    const code = await run(install, log).finally(() => clearInterval(heartbeat));
    if (code === 0 && ready()) say(`${title}: ready after ${elapsed(started)}`);
    else
      say(
        `${title}: FAILED (exit ${code}): ${lastLine(log)}; the tests that need it will fail. Retry: ${command} (full output: ${log})`,
      );
  }
}
