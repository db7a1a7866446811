import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Dataflow } from "@waxflow/crds";
import { load } from "js-yaml";
import { expect, test } from "vitest";
import { cliRoot, waxctl } from "./waxctl.ts";

const repoRoot = join(cliRoot, "..");
const wordcount = join(repoRoot, "examples", "wordcount.ts");

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

test.each(["deploy", "render", "list", "describe", "logs", "delete", "suspend", "resume", "scale", "restart"])(
  "df %s --help shows examples and the shared cluster flags",
  async (command) => {
    const { stdout } = await waxctl(["df", command, "--help"]);
    expect(stdout).toContain("EXAMPLES");
    expect(stdout).toContain(`$ waxctl df ${command}`);
    for (const flag of ["--kubeconfig=PATH", "--context=NAME", "-n, --namespace=NAME"]) expect(stdout).toContain(flag);
    // logs prints log lines, not a result.
    expect(stdout.includes("--json")).toBe(command !== "logs");
  },
);

test.each([
  [["-N", "My_Flow"], /^error: --name "My_Flow" is not a DNS-1123 label/],
  [["-N", "ok", "-p", "0"], /^error: --processes must be a whole number from 1 to 1000, got "0"/],
  [["-N", "ok", "-w", "-2"], /^error: --workers must be a whole number/],
  [["-N", "ok", "-e", "JUSTKEY"], /^error: -e\/--env takes KEY=VALUE/],
  [["-N", "ok", "--recovery-size", "2Gi"], /^error: --recovery-size only applies with --recovery; add --recovery/],
  [
    ["-N", "ok", "--upgrade-mode", "latest"],
    /^error: Expected --upgrade-mode=latest to be one of: stateless, last-state, savepoint; see `waxctl df deploy --help`/,
  ],
])("df deploy %j fails with one line naming the flag, exit 2", async (flags, message) => {
  const { stderr, error } = await waxctl(["df", "deploy", wordcount, ...flags, "--dry-run"]);
  expect(stderr).toMatch(message);
  expect(stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(error?.oclif?.exit).toBe(2);
});

const dns1123 = (label: string): string =>
  `error: ${label} "Bad_Name" is not a DNS-1123 label: use at most 52 lowercase letters, digits and '-', starting and ending with a letter or digit`;

// Checked while oclif parses (flags.ts dataflowNameArg): no kubeconfig is read, no cluster asked,
// and a bad name is told before a missing required flag (scale's -p, fork's --name), which
// oclif checks only once everything given has parsed.
test.each([
  [["describe", "Bad_Name"], "NAME"],
  [["logs", "Bad_Name"], "NAME"],
  [["delete", "Bad_Name", "--yes"], "NAME"],
  [["scale", "Bad_Name"], "NAME"],
  [["suspend", "Bad_Name"], "NAME"],
  [["resume", "Bad_Name"], "NAME"],
  [["restart", "Bad_Name"], "NAME"],
  [["top", "Bad_Name"], "NAME"],
  [["state", "Bad_Name", "count"], "NAME"],
  [["savepoint", "create", "Bad_Name"], "NAME"],
  [["savepoint", "list", "Bad_Name"], "NAME"],
  [["savepoint", "delete", "Bad_Name", "before-v2"], "NAME"],
  [["fork", "Bad_Name"], "SRC"],
  [["fork", "orders", "--name", "Bad_Name"], "--name"],
])("df %j fails at parse time with one line naming %s and the rule, exit 2", async (args, label) => {
  const { stdout, stderr, error } = await waxctl([
    "df",
    ...args,
    "--kubeconfig",
    join(tmpdir(), "waxctl-no-such-kubeconfig"),
  ]);
  expect(stderr).toBe(`${dns1123(label)}\n`);
  expect(stdout).toBe("");
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
});

test("without --image the dry run says the deploy builds the image", async () => {
  const { stdout } = await waxctl(["df", "deploy", wordcount, "-N", "wordcount", "--dry-run", "-o", "json"]);
  const df = JSON.parse(stdout) as Dataflow;
  expect(df.spec.image).toMatch(/^\(built by the deploy/);
  expect(df.spec.processes).toBe(1);
});

test("df deploy without PATH or --image says PATH is missing, exit 2", async () => {
  const { stderr, error } = await waxctl(["df", "deploy", "-N", "wordcount", "--dry-run"]);
  expect(stderr).toMatch(/^error: PATH is missing/);
  expect(error?.oclif?.exit).toBe(2);
});

test("df deploy --dry-run --image without PATH says the dry run needs the entry module, exit 2", async () => {
  const image = `registry.example/wordcount@sha256:${"b".repeat(64)}`;
  const { stderr, error } = await waxctl(["df", "deploy", "-N", "wordcount", "--image", image, "--dry-run"]);
  expect(stderr).toMatch(
    /^error: PATH is missing: --dry-run prints the whole Dataflow, so it needs the entry module even with --image/,
  );
  expect(stderr).not.toContain("only a deploy with --image");
  expect(error?.oclif?.exit).toBe(2);
});

test("df render --image prints a Dataflow that applies as is: the image given, the module inside it", async () => {
  const image = `registry.example/wordcount@sha256:${"b".repeat(64)}`;
  const { stdout, error } = await waxctl([
    "df",
    "render",
    wordcount,
    "-N",
    "wc",
    "-n",
    "streams",
    "--image",
    image,
    "-p",
    "2",
  ]);
  expect(error).toBeUndefined();
  const df = load(stdout) as Dataflow;
  expect(df.metadata?.namespace).toBe("streams");
  expect(df.spec).toEqual({ image, module: "/app/wordcount.js", processes: 2, workersPerProcess: 1 });
});

test("df render with nowhere to put the image says where it can go, in one line, exit 2", async () => {
  const dir = mkdtempSync(join(tmpdir(), "waxctl-"));
  const kubeconfig = join(dir, "config");
  writeFileSync(
    kubeconfig,
    "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts: [{name: prod, context: {cluster: prod, user: u}}]\nclusters: [{name: prod, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\n",
  );
  const { stderr, error } = await waxctl(["df", "render", wordcount, "-N", "wc", "--kubeconfig", kubeconfig]);
  expect(stderr).toMatch(/^error: render needs a place for the image the cluster can pull from: --kind CLUSTER/m);
  expect(stderr.trimEnd().split("\n").at(-1)).toMatch(/^error: /);
  expect(error?.oclif?.exit).toBe(2);
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
  // As in a pod: the runtime's lines on stderr, only the dataflow's output on stdout.
  expect(result.stderr).toMatch(/^\S+ process 0: waxflow \S+ starting dataflow "wordcount"/);
  expect(result.stderr).toMatch(/\S+ process 0: finished: every input reached its end .*\n$/);
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
