// Which df deploy flags need another is declared on the flags (dependsOn); oclif refuses a
// stray one before any work, and waxctl says it in the one line deployOptions used to.
import { join } from "node:path";
import { expect, test } from "vitest";
import { cliRoot, waxctl } from "./waxctl.ts";

const wordcount = join(cliRoot, "..", "examples", "wordcount.ts");

test.each([
  [["--backup-bucket", "b"], "--backup-bucket only applies with --recovery; add --recovery"],
  [["--recovery-snapshot-interval", "5s"], "--recovery-snapshot-interval only applies with --recovery; add --recovery"],
  [["--from-savepoint", "sp-1"], "--from-savepoint only applies with --recovery; add --recovery"],
  [["--recovery", "--backup-prefix", "p"], "--backup-prefix only applies with --backup-bucket; add --backup-bucket"],
  [
    ["--recovery", "--backup-credentials-secret", "s3"],
    "--backup-credentials-secret only applies with --backup-bucket; add --backup-bucket",
  ],
  [
    ["--recovery", "--backup-bucket", "b", "--savepoint-prefix", "p"],
    "--savepoint-prefix only applies with --from-savepoint; add --from-savepoint",
  ],
])("df deploy %j is refused in one line naming the flag it needs, exit 2", async (flags, line) => {
  const { stderr, error } = await waxctl(["df", "deploy", wordcount, "-N", "ok", ...flags, "--dry-run"]);
  expect(stderr.trimEnd()).toBe(`error: ${line}`);
  expect(error?.oclif?.exit).toBe(2);
});

test("a typed flag's bad value is its own line once, without oclif's wrapping", async () => {
  const { stderr, error } = await waxctl(["df", "deploy", wordcount, "-N", "ok", "--timeout", "soon", "--dry-run"]);
  expect(stderr.trimEnd()).toBe('error: --timeout must be a duration such as 10s, 500ms or 1m30s, got "soon"');
  expect(error?.oclif?.exit).toBe(2);
});

test("--recovery-snapshot-interval below the runtime's floor is refused while oclif parses it", async () => {
  const { stderr, error } = await waxctl([
    "df",
    "deploy",
    wordcount,
    "-N",
    "ok",
    "--recovery",
    "--recovery-snapshot-interval",
    "50ms",
    "--dry-run",
  ]);
  expect(stderr.trimEnd()).toBe('error: --recovery-snapshot-interval must be at least 100ms, got "50ms"');
  expect(error?.oclif?.exit).toBe(2);
});

test("two stray flags are refused one at a time", async () => {
  const { stderr } = await waxctl([
    "df",
    "deploy",
    wordcount,
    "-N",
    "ok",
    "--recovery-size",
    "1Gi",
    "--backup-bucket",
    "b",
  ]);
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(stderr).toMatch(/^error: --(recovery-size|backup-bucket) only applies with --recovery; add --recovery\n$/);
});
