// Bundles a dataflow entry and its imports into one ES module with esbuild. `waxflow` stays
// an import: the runtime image provides it, and a second copy would split its classes.
// A bundle whose entry exports no Dataflow is refused here, before any image is built.
import { existsSync, statSync } from "node:fs";
import { basename, extname, isAbsolute, relative, resolve } from "node:path";
import { build, type Message } from "esbuild";
import { MODULE_EXTENSIONS } from "waxflow/load";
import { checkDataflow } from "./dataflow-check.ts";
import { UsageError, UserError } from "./errors.ts";

export interface Bundle {
  /** File name of the bundle inside the image's /app, e.g. `wordcount.js`. */
  readonly entry: string;
  readonly code: Uint8Array;
}

/** The bundler rejected the source: the first error, as `file:line:col: message`. */
export class BundleError extends UserError {
  override name = "BundleError";
}

export interface BundleOptions {
  /** The export the pods run (PATH:NAME), else `flow` or the default export. */
  readonly exportName?: string;
  /** Variables the pods get, for a module that reads them when loaded. */
  readonly env?: Readonly<Record<string, string>>;
  /** False skips loading the bundle here (`--no-check`): for a module that loads only in its pods. */
  readonly check?: boolean;
}

export async function bundleDataflow(path: string, cwd: string, options: BundleOptions = {}): Promise<Bundle> {
  const absolute = resolve(cwd, path);
  if (!existsSync(absolute))
    throw new UsageError(`${path}: no such file; pass the path of the dataflow's entry module`);
  if (!statSync(absolute).isFile()) throw new UsageError(`${path} is not a file; pass the dataflow's entry module`);
  if (!MODULE_EXTENSIONS.includes(extname(absolute))) {
    throw new UsageError(
      `${path} is not a TypeScript or JavaScript module (${MODULE_EXTENSIONS.join(", ")}); pass the dataflow's entry module`,
    );
  }
  const entry = `${basename(absolute, extname(absolute))}.js`;
  let bundle: Bundle & { sourceMap: Uint8Array };
  try {
    const result = await build({
      entryPoints: [absolute],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node24",
      external: ["waxflow", "waxflow/*"],
      outfile: entry,
      write: false,
      // For the check only: it maps a failure at load back to the user's source.
      sourcemap: "external",
      sourcesContent: false,
      logLevel: "silent",
      // Relative paths in comments keep the output the same wherever the project lives.
      absWorkingDir: cwd,
    });
    const code = result.outputFiles.find((f) => f.path.endsWith(".js"))?.contents;
    const sourceMap = result.outputFiles.find((f) => f.path.endsWith(".js.map"))?.contents;
    if (code === undefined || sourceMap === undefined) throw new BundleError(`${path}: esbuild produced no output`);
    bundle = { entry, code, sourceMap };
  } catch (err) {
    const first = (err as { errors?: Message[] }).errors?.[0];
    if (first === undefined) throw err;
    const where =
      first.location === null
        ? path
        : `${shown(cwd, first.location.file)}:${first.location.line}:${first.location.column + 1}`;
    throw new BundleError(`${where}: ${first.text}${nextStep(first.text)}`);
  }
  if (options.check !== false) {
    await checkDataflow({ ...bundle, shownAs: path, exportName: options.exportName, cwd, env: options.env });
  }
  return { entry: bundle.entry, code: bundle.code };
}

/** What to do about the bundler's commonest complaint, an import it cannot find. */
function nextStep(text: string): string {
  const unresolved = /^Could not resolve "([^"]+)"/.exec(text)?.[1];
  if (unresolved === undefined) return "";
  if (unresolved.startsWith(".") || unresolved.startsWith("/")) return "; check the import's path";
  const name = unresolved.startsWith("@") ? unresolved.split("/").slice(0, 2).join("/") : unresolved.split("/")[0];
  return `; install it where the module is (npm install ${name})`;
}

/** A path as the user would type it: relative inside the working directory, else absolute. */
function shown(cwd: string, file: string): string {
  const rel = relative(cwd, resolve(cwd, file));
  return rel.startsWith("..") || isAbsolute(rel) ? resolve(cwd, file) : rel;
}
