import { configDefaults, defineConfig } from "vitest/config";
import type { ToolName } from "./e2e/toolchain/test-tools.ts";

// Test files that need more than Node, by project. Before a project's first test, the
// global setup installs its tools (built once, then cached under ~/.cache/waxflow), so
// `npm test` alone is enough on a fresh clone, and running only unit tests builds nothing.
const needsTools: { name: string; include: string[]; tools: ToolName[] }[] = [
  {
    // A real etcd and kube-apiserver; the chart rendered by helm; pushes to a real registry;
    // SeaweedFS for the savepoints df savepoint and df fork take through the pod proxy.
    name: "kubernetes",
    include: ["controller/test/**/*.int.test.ts", "cli/test/**/*.int.test.ts"],
    tools: ["etcd", "kubernetes", "helm", "registry", "skopeo", "seaweedfs"],
  },
  { name: "chart", include: ["cli/test/chart.test.ts"], tools: ["helm"] },
  // Backups to a real S3-compatible object store (SeaweedFS) and restore from it.
  { name: "object-store", include: ["runtime/test/backup*.test.ts"], tools: ["seaweedfs"] },
  {
    // The runtime and controller images built from runtime/dist, read by skopeo, run in
    // Docker; the SeaweedFS image holds the toolchain's weed.
    name: "images",
    include: ["images/test/**/*.test.ts"],
    tools: ["runtime", "dpkg-deb", "skopeo", "docker", "seaweedfs"],
  },
];

// Tests run against the TypeScript sources: the "waxflow-source" export condition
// resolves `waxflow/...` imports to src/ instead of the built dist/.
export default defineConfig({
  resolve: { conditions: ["waxflow-source"] },
  ssr: { resolve: { conditions: ["waxflow-source"] } },
  test: {
    testTimeout: 20_000,
    // Processes the tests start serve their HTTP API on any free port, not all on 3030.
    env: { WAXFLOW_API_PORT: "0" },
    projects: [
      {
        extends: true,
        test: {
          name: "node",
          include: [
            "runtime/test/**/*.test.ts",
            "examples/**/*.test.ts",
            "crds/test/**/*.test.ts",
            "controller/test/**/*.test.ts",
            "oci/test/**/*.test.ts",
            "cli/test/**/*.test.ts",
          ],
          exclude: [...configDefaults.exclude, ...needsTools.flatMap((p) => p.include)],
        },
      },
      ...needsTools.map(({ name, include, tools }) => ({
        extends: true,
        test: { name, include, globalSetup: ["e2e/toolchain/global-setup.ts"], provide: { tools } },
      })),
    ],
  },
});
