// The controller image `waxctl install` defaults to: the one `npm run images` built last,
// by digest, so what runs is exactly what was built (a tag can be moved or reused).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "@waxflow/oci";
import { UsageError } from "../errors.ts";

export function builtControllerImage(env: NodeJS.ProcessEnv = process.env): string {
  const summary = join(cacheDir(env), "images", "current", "images.json");
  let reference: unknown;
  try {
    reference = (JSON.parse(readFileSync(summary, "utf8")) as { controller?: { reference?: unknown } }).controller
      ?.reference;
  } catch {
    reference = undefined;
  }
  if (typeof reference !== "string" || !/@sha256:[0-9a-f]{64}$/.test(reference)) {
    throw new UsageError(
      `no controller image built here (${summary}): pass --image REPO@sha256:<digest>, or build it with npm run images`,
    );
  }
  return reference;
}
