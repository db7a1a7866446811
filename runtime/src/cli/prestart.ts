/**
 * Starts `waxflow run`'s worker threads first thing. cli.ts imports this module before the
 * rest of the runtime, so its body runs before that is even compiled: the threads boot and
 * load the dataflow module while the process's thread loads the runtime, serves its API and
 * connects, instead of after (issue 18: with threads' start after the process's own, `-w 4`
 * took 2-4x as long as `-w 1` to its first output). It resolves the configuration as
 * `main` will; the process adopts the threads if its run uses them (`takePrestarted`), and
 * ends them otherwise. Whatever fails here is left to `main`, which reports it.
 */
import { readFileSync, realpathSync } from "node:fs";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread } from "node:worker_threads";
import { StartingThread, type ThreadModule, workersInThreads } from "../process/thread-start.ts";
import { type RunConfig, resolveCommand, unsupported } from "./config.ts";

/** cli.ts or cli.js, beside this directory: the program (which a supervisor runs again as its child). */
export const CLI = fileURLToPath(new URL(`../cli${extname(fileURLToPath(import.meta.url))}`, import.meta.url));

/** Whether `config` runs its workers as threads, as execute.ts will run them. */
export function runsThreads(config: RunConfig): boolean {
  return (
    !config.supervise &&
    !config.holder &&
    unsupported(config) === undefined &&
    workersInThreads(config.workersPerProcess, config.addresses.length)
  );
}

function sameModule(a: ThreadModule, b: ThreadModule): boolean {
  return a.path === b.path && a.exportName === b.exportName && a.cwd === b.cwd;
}

/** Only in the process that runs cli.ts as its program: not in a test or a tool that imports it. */
function isProgram(): boolean {
  const program = process.argv[1];
  if (!isMainThread || program === undefined) return false;
  try {
    return realpathSync(program) === realpathSync(CLI);
  } catch {
    return false;
  }
}

function prestart(): StartingThread[] {
  if (!isProgram()) return [];
  try {
    const command = resolveCommand(process.argv.slice(2), process.env, {
      readHostfile: (path) => readFileSync(path, "utf8"),
      readSecretFile: (path) => readFileSync(path),
    });
    if (command.kind !== "run" || !runsThreads(command.config)) return [];
    const { config } = command;
    const module: ThreadModule = { path: config.modulePath, exportName: config.exportName, cwd: process.cwd() };
    return Array.from({ length: config.workersPerProcess }, () => new StartingThread(module));
  } catch {
    return [];
  }
}

let prestarted = prestart();

/**
 * The threads started for `module` and `config`'s workers, if this process started them;
 * any that do not fit are ended. Each is taken once.
 */
export function takePrestarted(config: RunConfig, module: ThreadModule): StartingThread[] | undefined {
  const threads = prestarted;
  prestarted = [];
  const fits =
    threads.length > 0 &&
    runsThreads(config) &&
    threads.length === config.workersPerProcess &&
    threads.every((t) => sameModule(t.module, module));
  if (fits) return threads;
  for (const thread of threads) thread.release();
  return undefined;
}
