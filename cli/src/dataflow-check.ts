// Refuses a bundle whose entry exports no Dataflow before any image is built or anything
// applied: its pods would only crash-loop. The bundle is loaded as a pod loads it, in a
// worker thread (its code may leave timers or sockets open, or call process.exit), and
// judged by the runtime's own loader, the function `waxflow run` uses.
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { UserError } from "./errors.ts";

/** A dataflow module only builds the graph when loaded; one that takes longer is waiting on something. */
const LOAD_TIMEOUT_MS = 30_000;

export interface CheckRequest {
  /** The bundle's file name (`flow.js`), its code and its source map (sources relative to `cwd`). */
  readonly entry: string;
  readonly code: Uint8Array;
  readonly sourceMap: Uint8Array;
  /** The entry as the user named it, and the export after `:`, if any. */
  readonly shownAs: string;
  readonly exportName?: string;
  readonly cwd: string;
  /** Variables the pods get (`-e`), over this process's. */
  readonly env?: Readonly<Record<string, string>>;
}

/** What the worker answers: fine, or the runtime's one line about the module and, for WAXFLOW_DEBUG, the whole error. */
export type CheckAnswer =
  | { readonly ok: true }
  | { readonly ok: false; readonly line: string; readonly whileLoading: boolean; readonly stack?: string };

/** How to deploy a module that fails to load only here (its files, its variables). */
export const SKIP_CHECK = "--no-check";

/** Resolves when the entry exports a runnable Dataflow; else a UserError with the runtime's line. */
export async function checkDataflow(request: CheckRequest): Promise<void> {
  // The bundle imports `waxflow` as the image provides it; here a link to this CLI's own copy
  // plays the image's, so the runtime's loader recognises the Dataflow class.
  const dir = await mkdtemp(join(tmpdir(), "waxctl-check-"));
  try {
    const runtime = dirname(fileURLToPath(import.meta.resolve("waxflow/package.json")));
    await mkdir(join(dir, "node_modules"));
    await symlink(runtime, join(dir, "node_modules", "waxflow"), "dir");
    await writeFile(join(dir, "package.json"), '{"type":"module"}\n');
    const file = join(dir, request.entry);
    // Stack frames of a failure at load then point at the user's source, not the bundle.
    await writeFile(join(dir, `${request.entry}.map`), absoluteSources(request.sourceMap, request.cwd));
    await writeFile(file, Buffer.concat([request.code, Buffer.from(`\n//# sourceMappingURL=${request.entry}.map\n`)]));
    const answer = await inWorker(pathToFileURL(file).href, request);
    if (!answer.ok) {
      const cause =
        answer.stack === undefined ? undefined : Object.assign(new Error(answer.line), { stack: answer.stack });
      // A module that loads and has no Dataflow has none anywhere; one that fails to load
      // here may load in a pod, with its own files and variables.
      const skip = answer.whileLoading ? `; if it fails only on this machine, pass ${SKIP_CHECK}` : "";
      throw new UserError(`${answer.line.replace(/\s*\n\s*/g, " ")}${skip}`, { cause });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function inWorker(url: string, request: CheckRequest): Promise<CheckAnswer> {
  const worker = new Worker(new URL("./dataflow-check-worker.ts", import.meta.url), {
    workerData: { url, shownAs: request.shownAs, exportName: request.exportName, cwd: request.cwd },
    env: { ...process.env, ...request.env },
    stdout: true,
    stderr: true,
  });
  let timer: NodeJS.Timeout | undefined;
  return new Promise<CheckAnswer>((done) => {
    timer = setTimeout(
      () =>
        done({
          ok: false,
          whileLoading: true,
          line: `loading ${request.shownAs} took more than ${LOAD_TIMEOUT_MS / 1000} s; a dataflow module should only build the Dataflow when loaded, and connect when it runs`,
        }),
      LOAD_TIMEOUT_MS,
    );
    worker.once("message", (answer: CheckAnswer) => done(answer));
    worker.once("error", (err) =>
      done({
        ok: false,
        whileLoading: true,
        line: `${request.shownAs} failed while loading: ${err.name}: ${err.message.split("\n")[0]}`,
      }),
    );
    worker.once("exit", (code) =>
      done({
        ok: false,
        whileLoading: false,
        line: `${request.shownAs} ended the process while loading (exit code ${code}); remove the exit`,
      }),
    );
  }).finally(() => {
    // The first answer wins; then nothing of the user's code may keep running.
    clearTimeout(timer);
    void worker.terminate();
  });
}

/** esbuild names sources relative to the bundle's directory (`cwd`); the copy checked lives elsewhere. */
function absoluteSources(map: Uint8Array, cwd: string): string {
  const parsed = JSON.parse(Buffer.from(map).toString("utf8")) as { sources: string[] };
  parsed.sources = parsed.sources.map((s) => pathToFileURL(resolve(cwd, s)).href);
  return JSON.stringify(parsed);
}
