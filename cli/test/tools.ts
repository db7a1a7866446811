// Where tests find helm (charts/tools.sh) and the registry (cli/install-tools.sh): the
// binaries cached by version (e2e/toolchain/lib.sh). Tests skip, saying so, when a binary
// has not been built.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export const repoRoot = join(import.meta.dirname, "..", "..");

/** A binary a tools script caches under $WAXFLOW_CACHE, by the versions in e2e/toolchain/lib.sh. */
function cachedTool(path: string): string | undefined {
  const file = execFileSync("bash", ["-c", `source e2e/toolchain/lib.sh && echo "${path}"`], {
    cwd: repoRoot,
    encoding: "utf8",
  }).trim();
  return existsSync(file) ? file : undefined;
}

export const helmBinary = (): string | undefined => cachedTool("$WAXFLOW_CACHE/helm/$HELM_VERSION/bin/helm");

/** The registry cli/install-tools.sh caches. */
export const registryBinary = (): string | undefined =>
  cachedTool("$WAXFLOW_CACHE/registry/$DISTRIBUTION_VERSION/bin/registry");
