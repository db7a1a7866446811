import { defineConfig } from "vitest/config";

// The kind suite: one file, scenarios in order, minutes per scenario. `npm run e2e`
// brings the cluster and images up first (e2e/run.sh).
export default defineConfig({
  resolve: { conditions: ["waxflow-source"] },
  ssr: { resolve: { conditions: ["waxflow-source"] } },
  test: {
    include: ["e2e/**/*.e2e.test.ts"],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 300_000,
    reporters: ["verbose"],
  },
});
