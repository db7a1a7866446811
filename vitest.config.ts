import { defineConfig } from "vitest/config";

// Tests run against the TypeScript sources: the "waxflow-source" export condition
// resolves `waxflow/...` imports to src/ instead of the built dist/.
export default defineConfig({
  resolve: { conditions: ["waxflow-source"] },
  ssr: { resolve: { conditions: ["waxflow-source"] } },
  test: {
    include: [
      "runtime/test/**/*.test.ts",
      "examples/**/*.test.ts",
      "crds/test/**/*.test.ts",
      "controller/test/**/*.test.ts",
      "cli/test/**/*.test.ts",
      "images/test/**/*.test.ts",
    ],
    testTimeout: 20_000,
    // Processes the tests start serve their HTTP API on any free port, not all on 3030.
    env: { WAXFLOW_API_PORT: "0" },
  },
});
