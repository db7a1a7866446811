/**
 * Finds the Dataflow in a user's module: the named export (a Dataflow or a factory
 * returning one), else `flow`, else the default export. When none fits, the error lists
 * what the module does export, since the usual cause is a misspelt or unexported name.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Dataflow } from "../dataflow.ts";

/** The module could not be loaded or holds no runnable Dataflow. */
export class LoadError extends Error {
  override name = "LoadError";
}

export async function loadDataflow(modulePath: string, exportName: string | undefined, cwd: string): Promise<Dataflow> {
  const file = resolve(cwd, modulePath);
  if (!existsSync(file))
    throw new LoadError(`dataflow module ${JSON.stringify(modulePath)} not found (looked for ${file})`);
  let mod: Record<string, unknown>;
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new LoadError(`cannot load dataflow module ${JSON.stringify(modulePath)}: ${reason}`, { cause: err });
  }
  return pickDataflow(mod, modulePath, exportName);
}

async function pickDataflow(
  mod: Record<string, unknown>,
  modulePath: string,
  exportName: string | undefined,
): Promise<Dataflow> {
  if (exportName !== undefined) {
    if (!(exportName in mod)) {
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

function exportsFound(mod: Record<string, unknown>): string {
  const names = Object.keys(mod).sort();
  if (names.length === 0) return "it has no exports";
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
