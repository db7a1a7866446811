import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { format } from "node:util";
import { runCommand } from "@oclif/test";
import type { Dataflow } from "@waxflow/crds";
import { load } from "js-yaml";
import { expect, test } from "vitest";

const cliRoot = join(import.meta.dirname, "..");
const repoRoot = join(cliRoot, "..");
const wordcount = join(repoRoot, "examples", "wordcount.ts");

type Outcome = { stdout: string; stderr: string; error?: Error & { oclif?: { exit?: number } } };

/**
 * Runs a command in this process. oclif prints through console.log, which vitest
 * intercepts before runCommand's capture of process.stdout sees it, so the console is
 * pointed back at the process streams for the duration.
 */
async function waxctl(args: string[]): Promise<Outcome> {
  const { log, error } = console;
  console.log = (...parts: unknown[]) => process.stdout.write(`${format(...parts)}\n`);
  console.error = (...parts: unknown[]) => process.stderr.write(`${format(...parts)}\n`);
  try {
    return await runCommand(args, { root: cliRoot });
  } finally {
    console.log = log;
    console.error = error;
  }
}

test("--help lists the topics and commands", async () => {
  const { stdout } = await waxctl(["--help"]);
  expect(stdout).toMatch(/^ {2}df +Deploy and manage dataflows/m);
  expect(stdout).toMatch(/^ {2}run +Run a dataflow here/m);
});

test.each([
  ["run", /\$ waxctl run examples\/wordcount\.ts/],
  ["df deploy", /\$ waxctl df deploy examples\/wordcount\.ts --name wordcount --dry-run -o/],
])("%s --help teaches by example", async (command, example) => {
  const { stdout } = await waxctl([...command.split(" "), "--help"]);
  expect(stdout).toContain("EXAMPLES");
  expect(stdout).toMatch(example);
});

test("df deploy --help shows the shared cluster flags", async () => {
  const { stdout } = await waxctl(["df", "deploy", "--help"]);
  for (const flag of ["--kubeconfig=PATH", "--context=NAME", "-n, --namespace=NAME", "--json"]) {
    expect(stdout).toContain(flag);
  }
});

test.each([
  [["-N", "My_Flow"], /^error: --name "My_Flow" is not a DNS-1123 label/],
  [["-N", "ok", "-p", "0"], /^error: --processes must be a whole number from 1 to 1000, got "0"/],
  [["-N", "ok", "-w", "-2"], /^error: --workers must be a whole number/],
  [["-N", "ok", "-e", "JUSTKEY"], /^error: -e\/--env takes KEY=VALUE/],
  [["-N", "ok", "--recovery-size", "2Gi"], /^error: --recovery-size only applies with --recovery; add --recovery/],
])("df deploy %j fails with one line naming the flag, exit 2", async (flags, message) => {
  const { stderr, error } = await waxctl(["df", "deploy", wordcount, ...flags, "--dry-run"]);
  expect(stderr).toMatch(message);
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(error?.oclif?.exit).toBe(2);
});

test("df deploy of a missing file says so before anything else", async () => {
  const { stderr, error } = await waxctl(["df", "deploy", "no-such-flow.ts", "-N", "ok", "--dry-run"]);
  expect(stderr).toMatch(/^error: no-such-flow\.ts: no such file/);
  expect(error?.oclif?.exit).toBe(2);
});

test("a TypeScript syntax error is shown as file:line:col from the bundler, exit 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "waxctl-"));
  const file = join(dir, "broken.ts");
  writeFileSync(
    file,
    'import { Dataflow } from "waxflow";\nexport const flow = new Dataflow("x");\nconst n: number = ;\n',
  );
  const { stderr, error } = await waxctl(["df", "deploy", file, "-N", "broken", "--dry-run"]);
  expect(stderr).toMatch(new RegExp(`^error: ${file.replaceAll("/", "\\/")}:3:19: Unexpected ";"`));
  expect(error?.oclif?.exit).toBe(1);
});

test("df deploy --dry-run -o yaml prints the Dataflow that would be applied", async () => {
  const digest = `sha256:${"b".repeat(64)}`;
  const { stdout, error } = await waxctl([
    "df",
    "deploy",
    wordcount,
    "--name",
    "wordcount",
    "-n",
    "streams",
    "-p",
    "3",
    "-w",
    "2",
    "-e",
    "LOG_LEVEL=debug",
    "--image",
    `registry.example/wordcount@${digest}`,
    "--recovery",
    "--recovery-size",
    "2Gi",
    "--recovery-snapshot-interval",
    "5s",
    "--dry-run",
    "-o",
    "yaml",
  ]);
  expect(error).toBeUndefined();
  const df = load(stdout) as Dataflow;
  expect(df.apiVersion).toBe("waxflow.io/v1alpha1");
  expect(df.kind).toBe("Dataflow");
  expect(df.metadata?.name).toBe("wordcount");
  expect(df.metadata?.namespace).toBe("streams");
  expect(df.metadata?.labels).toEqual({
    "app.kubernetes.io/name": "waxflow",
    "app.kubernetes.io/instance": "wordcount",
    "app.kubernetes.io/managed-by": "waxctl",
    "waxflow.io/dataflow": "wordcount",
  });
  expect(df.spec).toEqual({
    image: `registry.example/wordcount@${digest}`,
    module: "/app/wordcount.js",
    processes: 3,
    workersPerProcess: 2,
    env: [{ name: "LOG_LEVEL", value: "debug" }],
    recovery: { enabled: true, snapshotInterval: "5s", storage: { size: "2Gi" } },
  });
  expect(df.metadata?.annotations?.["waxflow.io/app-layer"]).toMatch(/^sha256:[0-9a-f]{64}$/);
});

test("without --image the dry run says the image is not built, and the same code gives the same layer digest", async () => {
  const args = ["df", "deploy", wordcount, "-N", "wordcount", "--dry-run", "-o", "json"];
  const first = JSON.parse((await waxctl(args)).stdout) as Dataflow;
  const second = JSON.parse((await waxctl(args)).stdout) as Dataflow;
  expect(first.spec.image).toMatch(/not built/);
  expect(first.spec.processes).toBe(1);
  expect(first.metadata?.annotations).toEqual(second.metadata?.annotations);
});

test("df deploy without --dry-run says what is missing instead of half-applying", async () => {
  const { stderr, error } = await waxctl(["df", "deploy", wordcount, "-N", "wordcount"]);
  expect(stderr).toMatch(/not implemented.*--dry-run/);
  expect(error?.oclif?.exit).toBe(1);
});

// Spawned through the real bin, as `npm run waxctl` does: this also checks that oclif loads
// the TypeScript commands with Node's type stripping alone.
function bin(args: string[]) {
  return spawnSync("node", ["--conditions=waxflow-source", join(cliRoot, "bin", "run.js"), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
  });
}

test("waxctl run examples/wordcount.ts prints the word counts", () => {
  const result = bin(["run", "examples/wordcount.ts", "-w", "2"]);
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  const lines = result.stdout.trim().split("\n").sort();
  expect(lines).toContain("the: 7");
  expect(lines).toContain("river: 3");
  expect(lines).toContain("sea: 2");
});

test("waxctl run passes the runtime's one-line error and exit code through", () => {
  const result = bin(["run", "examples/missing.ts"]);
  expect(result.status).toBe(1);
  expect(result.stderr).toMatch(/^error: dataflow module "examples\/missing\.ts" not found/);
});

test("--json prints only the Dataflow, for scripts", async () => {
  const { stdout } = await waxctl(["df", "deploy", wordcount, "-N", "wordcount", "-n", "jobs", "--dry-run", "--json"]);
  const df = JSON.parse(stdout) as Dataflow;
  expect(df.metadata?.namespace).toBe("jobs");
  expect(df.spec.module).toBe("/app/wordcount.js");
});

test("PATH:NAME keeps the export name in the module the pods run", async () => {
  const { stdout } = await waxctl(["df", "deploy", `${wordcount}:flow`, "-N", "wc", "-n", "x", "--dry-run", "--json"]);
  expect((JSON.parse(stdout) as Dataflow).spec.module).toBe("/app/wordcount.js:flow");
});

test("a --kubeconfig that does not exist is named before anything is bundled", async () => {
  const { stderr, error } = await waxctl([
    "df",
    "deploy",
    wordcount,
    "-N",
    "x",
    "--kubeconfig",
    "/nonexistent/kc",
    "--dry-run",
  ]);
  expect(stderr).toMatch(/^error: --kubeconfig names \/nonexistent\/kc, which does not exist/);
  expect(error?.oclif?.exit).toBe(2);
});
