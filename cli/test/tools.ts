// Where the chart tests find helm: the binary charts/tools.sh caches (version from
// e2e/toolchain/lib.sh). Tests skip, saying so, when it has not been built.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export const repoRoot = join(import.meta.dirname, "..", "..");

export function helmBinary(): string | undefined {
  const path = execFileSync(
    "bash",
    ["-c", 'source e2e/toolchain/lib.sh && echo "$WAXFLOW_CACHE/helm/$HELM_VERSION/bin/helm"'],
    { cwd: repoRoot, encoding: "utf8" },
  ).trim();
  return existsSync(path) ? path : undefined;
}
