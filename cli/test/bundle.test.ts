import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { BundleError, bundleDataflow } from "../src/bundle.ts";

const repoRoot = join(import.meta.dirname, "..", "..");
// Inside the repository so that the bundle's `waxflow` import resolves as it does in the image.
mkdirSync(join(repoRoot, "node_modules", ".cache"), { recursive: true });
const dir = mkdtempSync(join(repoRoot, "node_modules", ".cache", "waxctl-bundle-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(join(dir, "shout.ts"), 'export const shout = (s: string): string => s.toUpperCase() + "!";\n');
writeFileSync(
  join(dir, "flow.ts"),
  `import { Dataflow } from "waxflow";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";
import { TestingSource } from "waxflow/testing";
import { shout } from "./shout.ts";

export const flow = new Dataflow("shout");
const words = op.input("inp", flow, new TestingSource(["hello", "world"]));
op.output("out", op.map("shout", words, (w: string) => shout(w)), new StdOutSink());
`,
);

test("the bundle inlines local imports, keeps waxflow external and runs under `waxflow run`", async () => {
  const bundle = await bundleDataflow(join(dir, "flow.ts"), dir);
  expect(bundle.entry).toBe("flow.js");
  const code = new TextDecoder().decode(bundle.code);
  expect(code).toMatch(/from "waxflow"/);
  expect(code).toMatch(/from "waxflow\/operators"/);
  expect(code).not.toContain("./shout");

  writeFileSync(join(dir, bundle.entry), bundle.code);
  const run = spawnSync(
    "node",
    ["--conditions=waxflow-source", join(repoRoot, "runtime", "src", "cli.ts"), "run", join(dir, bundle.entry)],
    // Quiet: only a failure may reach stderr; the runtime's log lines are tested in runtime/test/log.test.ts.
    { encoding: "utf8", env: { ...process.env, WAXFLOW_QUIET: "true" } },
  );
  expect(run.stderr).toBe("");
  expect(run.stdout).toBe("HELLO!\nWORLD!\n");
});

test("bundling the same source twice gives the same bytes", async () => {
  const a = await bundleDataflow(join(dir, "flow.ts"), dir);
  const b = await bundleDataflow(join(dir, "flow.ts"), dir);
  expect(Buffer.from(b.code).equals(Buffer.from(a.code))).toBe(true);
});

test("an unresolved import is reported at its file:line:col", async () => {
  writeFileSync(join(dir, "missing.ts"), 'export const x = 1;\nimport "./nowhere.ts";\n');
  await expect(bundleDataflow(join(dir, "missing.ts"), dir)).rejects.toThrow(
    new BundleError('missing.ts:2:8: Could not resolve "./nowhere.ts"; check the import\'s path'),
  );
});
