// The README's "On Kubernetes" commands, read from README.md at test time and run line by
// line in one bash, as a user pastes them: the README and the test cannot drift apart.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";

/** The lines of the `sh` block under `heading` that holds `marker`, as written. */
export function readmeBlock(markdown: string, heading: string, marker: string): string[] {
  const section = markdown.split(/^## /m).find((s) => s.startsWith(`${heading}\n`));
  if (section === undefined) throw new Error(`README.md has no "## ${heading}" section`);
  const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? "");
  const block = blocks.find((b) => b.includes(marker));
  if (block === undefined) throw new Error(`no sh block with "${marker}" under "## ${heading}" in README.md`);
  return block.split("\n").filter((l) => l.trim() !== "");
}

export function readReadmeBlock(file: string, heading: string, marker: string): string[] {
  return readmeBlock(readFileSync(file, "utf8"), heading, marker);
}

export interface LineResult {
  readonly line: string;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/**
 * One bash that keeps its variables (and `eval`'d exports) from line to line. Each line's
 * output goes to files; only an exit-code marker comes back on the pipe.
 */
export class Shell {
  readonly #bash: ChildProcessWithoutNullStreams;
  readonly #codes: AsyncIterator<string>;
  readonly #dir = mkdtempSync(join(tmpdir(), "waxflow-readme-"));
  #n = 0;

  constructor(cwd: string, env: NodeJS.ProcessEnv) {
    this.#bash = spawn("bash", ["--noprofile", "--norc"], { cwd, env });
    this.#codes = createInterface({ input: this.#bash.stdout })[Symbol.asyncIterator]();
  }

  async run(line: string): Promise<LineResult> {
    const i = this.#n++;
    const out = join(this.#dir, `${i}.out`);
    const err = join(this.#dir, `${i}.err`);
    const started = Date.now();
    this.#bash.stdin.write(`{ ${line}\n} >'${out}' 2>'${err}' </dev/null; echo "rc=$?"\n`);
    const next = await this.#codes.next();
    if (next.done) throw new Error(`bash ended while running: ${line}`);
    const code = Number(/^rc=(\d+)$/.exec(next.value)?.[1] ?? Number.NaN);
    return {
      line,
      code,
      stdout: readFileSync(out, "utf8"),
      stderr: readFileSync(err, "utf8"),
      ms: Date.now() - started,
    };
  }

  close(): void {
    this.#bash.stdin.end();
  }
}

/** The environment of a new shell: no KUBECONFIG and no kind on PATH, which the README's own lines must set. */
export function newcomerEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { KUBECONFIG: _, ...rest } = env;
  const path = (env.PATH ?? "")
    .split(delimiter)
    .filter((p) => p !== "" && !existsSync(join(p, "kind")))
    .join(delimiter);
  return { ...rest, PATH: path, CI: "true" };
}
