// helm (charts/tools.sh) and the registry (cli/install-tools.sh), as the suite's global
// setup leaves them (e2e/toolchain/test-tools.ts); each call fails, naming the script,
// when the binary is missing.
import { tool } from "../../e2e/toolchain/test-tools.ts";

export { repoRoot } from "../../e2e/toolchain/test-tools.ts";

export const helmBinary = (): string => tool("helm");

export const registryBinary = (): string => tool("registry");
