/**
 * Finds the Dataflow in a user's module: the named export (a Dataflow or a factory
 * returning one), else `flow`, else the default export. When none fits, the error lists
 * what the module does export, since the usual cause is a misspelt or unexported name.
 * `waxflow run` and `waxctl df deploy` (on its bundle, before anything is built) share it,
 * so a module that one refuses the other refuses too.
 */
import { statSync } from "node:fs";
import { extname, isAbsolute, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Dataflow } from "../dataflow.ts";

/** The module could not be loaded or holds no runnable Dataflow. */
export class LoadError extends Error {
  override name = "LoadError";
}

/** Loads `modulePath` (relative to `cwd`) and returns its Dataflow; errors name the module as given. */
export async function loadDataflow(modulePath: string, exportName: string | undefined, cwd: string): Promise<Dataflow> {
  const file = resolve(cwd, modulePath);
  const stat = statSync(file, { throwIfNoEntry: false });
  if (stat === undefined) {
    throw new LoadError(
      `dataflow module ${JSON.stringify(modulePath)} not found (looked for ${file}); pass the path of the .ts or .js file that exports the Dataflow`,
    );
  }
  if (!stat.isFile()) {
    throw new LoadError(
      `dataflow module ${JSON.stringify(modulePath)} is a directory, not a file; pass the .ts or .js file in it that exports the Dataflow`,
    );
  }
  if (!MODULE_EXTENSIONS.includes(extname(file))) {
    throw new LoadError(
      `dataflow module ${JSON.stringify(modulePath)} is not a TypeScript or JavaScript module (${MODULE_EXTENSIONS.join(", ")}); pass the module that exports the Dataflow`,
    );
  }
  const mod = await importModule(pathToFileURL(file).href, { shownAs: modulePath, cwd });
  return pickDataflow(mod, modulePath, exportName);
}

/** What Node runs as a module, TypeScript by stripping its types. */
export const MODULE_EXTENSIONS: readonly string[] = [".ts", ".mts", ".cts", ".js", ".mjs", ".cjs"];

export interface ImportOptions {
  /** How errors name the module: the path the user gave. */
  readonly shownAs: string;
  /** Locations in errors are shown relative to it. */
  readonly cwd: string;
}

/**
 * Imports the module at `url`. A failure says where: file:line:col of a syntax error, or of
 * the line in the user's code that threw.
 */
export async function importModule(url: string, options: ImportOptions): Promise<Record<string, unknown>> {
  try {
    return await import(url);
  } catch (err) {
    throw loadFailure(err, options);
  }
}

function loadFailure(err: unknown, { shownAs, cwd }: ImportOptions): LoadError {
  if (!(err instanceof Error))
    return new LoadError(`cannot load dataflow module ${JSON.stringify(shownAs)}: ${String(err)}`);
  const reason = `${err.name}: ${err.message.split("\n")[0]}`;
  if (err.name === "SyntaxError") {
    const at = syntaxErrorAt(err.stack ?? "", cwd);
    if (at !== undefined) return new LoadError(`${at}: ${reason}; fix the module, then run it again`, { cause: err });
  }
  const missing = /^Cannot find package '([^']+)'/.exec(err.message);
  if (missing !== null) {
    return new LoadError(
      `cannot load dataflow module ${JSON.stringify(shownAs)}: ${reason}; install it where the module is (npm install ${missing[1]})`,
      { cause: err },
    );
  }
  const at = userFrame(err.stack ?? "", cwd);
  return new LoadError(
    `cannot load dataflow module ${JSON.stringify(shownAs)}: ${reason}${at === undefined ? "" : ` (at ${at})`}`,
    { cause: err },
  );
}

/**
 * Node marks a syntax error's stack with the file and line, then the source line and a
 * caret under the column: `/path/flow.ts:3\n<source>\n      ^\n\nSyntaxError: ...`.
 */
function syntaxErrorAt(stack: string, cwd: string): string | undefined {
  const lines = stack.split("\n");
  const head = /^(.+):(\d+)$/.exec(lines[0] ?? "");
  const caret = lines.findIndex((l) => /^\s*\^/.test(l));
  if (head === null || caret < 1) return undefined;
  const column = (lines[caret] as string).indexOf("^") + 1;
  return `${shownPath(head[1] as string, cwd)}:${head[2]}:${column}`;
}

// The runtime's own code (src/ or dist/): a frame there is where waxflow noticed the mistake, not where the user made it.
const RUNTIME_CODE = fileURLToPath(new URL("../", import.meta.url));

/** The first stack frame in the user's code (not Node's, not a package's, not waxflow's), as file:line:col. */
function userFrame(stack: string, cwd: string): string | undefined {
  for (const m of stack.matchAll(/^\s+at (?:.*\()?((?:file:\/\/)?\/[^():]+):(\d+):(\d+)\)?$/gm)) {
    const path = (m[1] as string).startsWith("file:") ? fileURLToPath(m[1] as string) : (m[1] as string);
    if (path.startsWith(RUNTIME_CODE) || path.split(sep).includes("node_modules")) continue;
    return `${shownPath(path, cwd)}:${m[2]}:${m[3]}`;
  }
  return undefined;
}

/** A path as the user would type it: relative inside the working directory, else absolute. */
function shownPath(pathOrUrl: string, cwd: string): string {
  const path = pathOrUrl.startsWith("file:") ? fileURLToPath(pathOrUrl) : pathOrUrl;
  const rel = relative(cwd, path);
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

/** The Dataflow a loaded module offers: `exportName` (a Dataflow or a factory of one), else `flow`, else default. */
export async function pickDataflow(
  mod: Record<string, unknown>,
  modulePath: string,
  exportName: string | undefined,
): Promise<Dataflow> {
  if (exportName !== undefined) {
    if (!exportNames(mod).includes(exportName)) {
      throw new LoadError(`${modulePath} has no export ${JSON.stringify(exportName)}; ${exportsFound(mod)}`);
    }
    const value = mod[exportName];
    if (value instanceof Dataflow) return value;
    if (typeof value !== "function") {
      throw new LoadError(
        `${modulePath}:${exportName} is ${kind(value)}, not a Dataflow or a function returning one; ${exportsFound(mod)}`,
      );
    }
    let made: unknown;
    try {
      made = await value();
    } catch (err) {
      const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new LoadError(`${modulePath}:${exportName}() failed: ${reason}`, { cause: err });
    }
    if (made instanceof Dataflow) return made;
    throw new LoadError(`${modulePath}:${exportName}() returned ${kind(made)}, not a Dataflow`);
  }
  for (const name of ["flow", "default"]) {
    const value = mod[name];
    if (value instanceof Dataflow) return value;
  }
  if (Object.values(mod).some(isForeignDataflow)) {
    throw new LoadError(
      `${modulePath} exports a Dataflow built with another copy of waxflow than this CLI's: both must import the same ` +
        "waxflow (running the CLI from its .ts sources needs node --conditions=waxflow-source)",
    );
  }
  throw new LoadError(
    `${modulePath} exports no Dataflow as \`flow\` or default (name another export with ${modulePath}:<name>); ${exportsFound(mod)}`,
  );
}

/**
 * What the module exports. Node loads a file without import or export as CommonJS and
 * shows its `module.exports` object twice, as `default` and `module.exports`; an empty
 * one is no export at all.
 */
function exportNames(mod: Record<string, unknown>): string[] {
  const names = Object.keys(mod);
  if (!names.includes("module.exports")) return names;
  const exported = mod["module.exports"];
  const plain =
    typeof exported === "object" && exported !== null && Object.getPrototypeOf(exported) === Object.prototype;
  return names.filter((n) => n !== "module.exports" && !(plain && n === "default"));
}

function exportsFound(mod: Record<string, unknown>): string {
  const names = exportNames(mod).sort();
  if (names.length === 0) return "it has no exports: add `export const flow = new Dataflow(...)`";
  return `exports found: ${names.map((n) => `${n} (${kind(mod[n])})`).join(", ")}`;
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (value instanceof Dataflow) return "Dataflow";
  if (typeof value === "function") return "function";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

/** Two installs of waxflow (say, one bundled into the module) make two Dataflow classes. */
function isForeignDataflow(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    !(value instanceof Dataflow) &&
    value.constructor?.name === "Dataflow"
  );
}
