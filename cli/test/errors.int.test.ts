// Every bad input, for both CLIs, run as users run them (`npm run waxflow -- ...`,
// `npm run waxctl -- ...`: real processes from the repository root): exit code != 0 and one
// line on stderr that says what is wrong, where, and what to do; no stack trace. The cluster
// cases talk to a real kube-apiserver, first without the Dataflow CRD, then with it, and to
// a kubeconfig whose server is a closed local port.

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CustomObjectsApi } from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { Kube } from "../../controller/src/kube/client.ts";
import { installCrd } from "../../controller/src/kube/crd.ts";
import { freePort, startCluster, type TestCluster } from "../../controller/test/harness/apiserver.ts";
import { type Output, output } from "../../runtime/test/support/output.ts";

vi.setConfig({ testTimeout: 60_000 });

const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = { waxflow: "runtime/src/cli.ts", waxctl: "cli/bin/run.js" } as const;
type Cli = keyof typeof BIN;

const dir = mkdtempSync(join(tmpdir(), "waxflow-bad-inputs-"));
/** A home without ~/.kube/config. */
const home = join(dir, "home");
mkdirSync(home);
mkdirSync(join(dir, "a-directory"));
const file = (name: string, text: string): string => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const syntaxError = file("bad.ts", 'import { Dataflow } from "waxflow";\nconst n: number = ;\n');
// No import or export: Node loads it as CommonJS, whose namespace is not an export list.
const noExports = file("no-exports.ts", "const unused = 1;\n");
const throwsAtLoad = file("throws.ts", 'export const ready = false;\n\nthrow new Error("no config");\n');
const exitsAtLoad = file("exits.ts", "process.exit(3);\n");
const missingPackage = file(
  "imports.ts",
  'import { connect } from "not-installed-package";\nexport const flow = connect();\n',
);
const digest = `registry.example/flow@sha256:${"a".repeat(64)}`;
const wordcount = "examples/wordcount.ts";

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The cluster and kubeconfigs, known once beforeAll has run. */
const at = { kubeconfig: "", closed: "", closedServer: "" };

/** Runs a CLI as `npm run <cli> --` does, with a clean environment. */
function run(cli: Cli, args: readonly string[], env: Record<string, string> = {}): Promise<Output> {
  const child = spawn(process.execPath, ["--conditions=waxflow-source", BIN[cli], ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: home, WAXFLOW_API_PORT: "0", ...env },
  });
  return output(child);
}

interface Case {
  /** What is wrong, as the test's title. */
  readonly bad: string;
  /** What the case needs: nothing, a cluster without the CRD, or one with it. */
  readonly cluster?: "without CRD" | "with CRD";
  readonly cli: Cli;
  readonly args: () => string[];
  readonly env?: () => Record<string, string>;
  readonly code: 1 | 2;
  /** The whole line, or a pattern where it holds a temporary path. */
  readonly line: () => string | RegExp;
  /** A further check after the command, e.g. that nothing was applied. */
  readonly after?: () => Promise<void>;
}

const q = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const inCluster = (...args: string[]) => [...args, "--kubeconfig", at.kubeconfig];
const notFound = (name: string) => `error: dataflow ${name} not found in namespace default; see \`waxctl df list -A\``;
const noCrd = "error: the Dataflow CRD is not installed in this cluster (context test); run `waxctl install`";
const dns1123 = (label: string) =>
  `error: ${label} "Bad_Name" is not a DNS-1123 label: use at most 52 lowercase letters, digits and '-', starting and ending with a letter or digit`;

const CASES: readonly Case[] = [
  // The module.
  {
    bad: "a syntax error",
    cli: "waxflow",
    args: () => ["run", syntaxError],
    code: 1,
    line: () => `error: ${syntaxError}:2:19: SyntaxError: Expression expected; fix the module, then run it again`,
  },
  {
    bad: "a syntax error",
    cli: "waxctl",
    args: () => ["df", "deploy", syntaxError, "-N", "bad", "--dry-run"],
    code: 1,
    line: () => `error: ${syntaxError}:2:19: Unexpected ";"`,
  },
  {
    bad: "a module with no exports",
    cli: "waxflow",
    args: () => ["run", noExports],
    code: 1,
    line: () =>
      `error: ${noExports} exports no Dataflow as \`flow\` or default (name another export with ${noExports}:<name>); it has no exports: add \`export const flow = new Dataflow(...)\``,
  },
  {
    bad: "a module with no exports (dry run)",
    cli: "waxctl",
    args: () => ["df", "deploy", noExports, "-N", "empty", "--dry-run"],
    code: 1,
    line: () =>
      `error: ${noExports} exports no Dataflow as \`flow\` or default (name another export with ${noExports}:<name>); it has no exports: add \`export const flow = new Dataflow(...)\``,
  },
  {
    bad: "a module with no exports, deployed: nothing is applied",
    cluster: "with CRD",
    cli: "waxctl",
    args: () => inCluster("df", "deploy", noExports, "-N", "empty", "--image", digest, "--no-wait"),
    code: 1,
    line: () => new RegExp(`^error: ${q(noExports)} exports no Dataflow as \`flow\` or default`),
    after: async () => {
      const custom = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
      const read = custom.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace: "default",
        name: "empty",
      });
      await expect(read).rejects.toMatchObject({ code: 404 });
    },
  },
  {
    bad: "an export that is not there",
    cli: "waxctl",
    args: () => ["df", "deploy", `${wordcount}:pipeline`, "-N", "wc", "--dry-run"],
    code: 1,
    line: () => `error: ${wordcount} has no export "pipeline"; exports found: flow (Dataflow)`,
  },
  {
    bad: "a module that throws while loading",
    cli: "waxflow",
    args: () => ["run", throwsAtLoad],
    code: 1,
    line: () => `error: cannot load dataflow module "${throwsAtLoad}": Error: no config (at ${throwsAtLoad}:3:7)`,
  },
  {
    bad: "a module that throws while loading",
    cli: "waxctl",
    args: () => ["df", "deploy", throwsAtLoad, "-N", "throws", "--dry-run"],
    code: 1,
    // The bundle's source map leads back to the user's file and line.
    line: () =>
      `error: cannot load dataflow module "${throwsAtLoad}": Error: no config (at ${throwsAtLoad}:3:7); if it fails only on this machine, pass --no-check`,
  },
  {
    bad: "a module that exits while loading",
    cli: "waxctl",
    // Loaded in a worker thread: the exit ends the check, not waxctl.
    args: () => ["df", "deploy", exitsAtLoad, "-N", "exits", "--dry-run"],
    code: 1,
    line: () => `error: ${exitsAtLoad} ended the process while loading (exit code 3); remove the exit`,
  },
  {
    bad: "a package that is not installed",
    cli: "waxflow",
    args: () => ["run", missingPackage],
    code: 1,
    line: () =>
      `error: cannot load dataflow module "${missingPackage}": Error: Cannot find package 'not-installed-package' imported from ${missingPackage}; install it where the module is (npm install not-installed-package)`,
  },
  {
    bad: "a package that is not installed",
    cli: "waxctl",
    args: () => ["df", "deploy", missingPackage, "-N", "imports", "--dry-run"],
    code: 1,
    line: () =>
      `error: ${missingPackage}:1:25: Could not resolve "not-installed-package"; install it where the module is (npm install not-installed-package)`,
  },
  {
    bad: "a missing file",
    cli: "waxflow",
    args: () => ["run", "examples/missing.ts"],
    code: 1,
    line: () =>
      `error: dataflow module "examples/missing.ts" not found (looked for ${ROOT}/examples/missing.ts); pass the path of the .ts or .js file that exports the Dataflow`,
  },
  {
    bad: "a missing file",
    cli: "waxctl",
    args: () => ["df", "deploy", "examples/missing.ts", "-N", "missing", "--dry-run"],
    code: 2,
    line: () => "error: examples/missing.ts: no such file; pass the path of the dataflow's entry module",
  },
  {
    bad: "a directory",
    cli: "waxflow",
    args: () => ["run", join(dir, "a-directory")],
    code: 1,
    line: () =>
      `error: dataflow module "${dir}/a-directory" is a directory, not a file; pass the .ts or .js file in it that exports the Dataflow`,
  },
  {
    bad: "a directory",
    cli: "waxctl",
    args: () => ["df", "deploy", join(dir, "a-directory"), "-N", "dir", "--dry-run"],
    code: 2,
    line: () => `error: ${dir}/a-directory is not a file; pass the dataflow's entry module`,
  },
  {
    bad: "a file that is not a module",
    cli: "waxflow",
    args: () => ["run", "README.md"],
    code: 1,
    line: () =>
      'error: dataflow module "README.md" is not a TypeScript or JavaScript module (.ts, .mts, .cts, .js, .mjs, .cjs); pass the module that exports the Dataflow',
  },
  {
    bad: "a file that is not a module",
    cli: "waxctl",
    args: () => ["df", "deploy", "README.md", "-N", "readme", "--dry-run"],
    code: 2,
    line: () =>
      "error: README.md is not a TypeScript or JavaScript module (.ts, .mts, .cts, .js, .mjs, .cjs); pass the dataflow's entry module",
  },
  // Flags.
  {
    bad: "-s -1",
    cli: "waxflow",
    args: () => ["run", wordcount, "-s", "-1"],
    code: 2,
    line: () => 'error: -s/--snapshot-interval must be a number of seconds > 0, got "-1"',
  },
  {
    bad: "-s without its value",
    cli: "waxflow",
    args: () => ["run", wordcount, "-s"],
    code: 2,
    line: () => "error: -s/--snapshot-interval needs a value: seconds between snapshots (> 0), e.g. -s 10",
  },
  {
    bad: "-w 0",
    cli: "waxflow",
    args: () => ["run", wordcount, "-w", "0"],
    code: 2,
    line: () => 'error: -w/--workers-per-process must be a whole number >= 1, got "0"',
  },
  {
    bad: "-w 0",
    cli: "waxctl",
    args: () => ["run", wordcount, "-w", "0"],
    code: 2,
    line: () => 'error: --workers must be a whole number from 1 to 256, got "0"; e.g. --workers 2',
  },
  {
    bad: "-p 0",
    cli: "waxctl",
    args: () => ["df", "deploy", wordcount, "-N", "wc", "-p", "0", "--dry-run"],
    code: 2,
    line: () => 'error: --processes must be a whole number from 1 to 1000, got "0"; e.g. --processes 2',
  },
  {
    bad: "-p abc",
    cli: "waxctl",
    args: () => ["df", "deploy", wordcount, "-N", "wc", "-p", "abc", "--dry-run"],
    code: 2,
    line: () => 'error: --processes must be a whole number from 1 to 1000, got "abc"; e.g. --processes 2',
  },
  {
    bad: "an unknown flag",
    cli: "waxflow",
    args: () => ["run", wordcount, "--bogus"],
    code: 2,
    line: () => "error: unknown flag --bogus; see `waxflow --help`",
  },
  {
    bad: "an unknown flag",
    cli: "waxctl",
    args: () => ["df", "deploy", wordcount, "-N", "wc", "--bogus"],
    code: 2,
    line: () => "error: unknown flag --bogus; see `waxctl df deploy --help`",
  },
  {
    bad: "an unknown command",
    cli: "waxflow",
    args: () => ["runn", wordcount],
    code: 2,
    line: () => 'error: unknown command "runn": the commands are `run`, `graph` and `recovery init`',
  },
  {
    bad: "an unknown command",
    cli: "waxctl",
    args: () => ["df", "deploi", wordcount],
    code: 2,
    // The list grows with the df commands; it always holds deploy.
    line: () =>
      /^error: unknown command "df deploi"; the commands are [a-z, ]*\bdeploy\b[a-z, ]* \(see `waxctl df --help`\)$/,
  },
  {
    bad: "an unknown flag before any command",
    cli: "waxctl",
    args: () => ["--bogus"],
    code: 2,
    line: () => "error: unknown flag --bogus; name a command first (see `waxctl --help`)",
  },
  {
    bad: "a missing argument",
    cli: "waxctl",
    args: () => ["df", "describe"],
    code: 2,
    line: () => "error: missing argument NAME (Name of the Dataflow); see `waxctl df describe --help`",
  },
  {
    bad: "a missing required flag",
    cli: "waxctl",
    args: () => ["df", "deploy", wordcount, "--dry-run"],
    code: 2,
    line: () => "error: missing required flag --name; see `waxctl df deploy --help`",
  },
  {
    bad: "a name that is not DNS-1123",
    cli: "waxctl",
    args: () => ["df", "deploy", wordcount, "-N", "Bad_Name", "--dry-run"],
    code: 2,
    line: () => dns1123("--name"),
  },
  {
    bad: "a name that is not DNS-1123",
    cli: "waxctl",
    args: () => ["df", "describe", "Bad_Name"],
    code: 2,
    line: () => dns1123("NAME"),
  },
  // Kubeconfig and cluster.
  {
    bad: "no kubeconfig",
    cli: "waxctl",
    args: () => ["df", "list"],
    code: 1,
    line: () =>
      "error: no kubeconfig found (no --kubeconfig, no $KUBECONFIG, no ~/.kube/config); point --kubeconfig at your cluster's, or create a cluster (kind create cluster writes one)",
  },
  {
    bad: "$KUBECONFIG naming a missing file",
    cli: "waxctl",
    args: () => ["df", "deploy", wordcount, "-N", "wc", "--image", digest],
    env: () => ({ KUBECONFIG: join(dir, "nope") }),
    code: 2,
    line: () => `error: $KUBECONFIG names ${dir}/nope, which does not exist; point it at your cluster's kubeconfig`,
  },
  {
    bad: "a kubeconfig that is not one",
    cli: "waxctl",
    args: () => ["df", "list", "--kubeconfig", syntaxError],
    code: 2,
    line: () => new RegExp(`^error: --kubeconfig names ${q(syntaxError)}, which is not a valid kubeconfig \\(.+\\); `),
  },
  {
    bad: "a kubeconfig whose cluster is not reachable",
    cli: "waxctl",
    args: () => ["df", "describe", "wc", "--kubeconfig", at.closed],
    code: 1,
    line: () =>
      `error: cannot reach the cluster at ${at.closedServer} (context closed): connection refused (ECONNREFUSED); check that it is running, or choose another with --context or --kubeconfig`,
  },
  {
    bad: "no operator installed (CRD missing), deploy",
    cluster: "without CRD",
    cli: "waxctl",
    args: () => inCluster("df", "deploy", wordcount, "-N", "wc", "--image", digest, "--no-wait"),
    code: 1,
    line: () => noCrd,
  },
  {
    bad: "no operator installed (CRD missing), list",
    cluster: "without CRD",
    cli: "waxctl",
    args: () => inCluster("df", "list"),
    code: 1,
    line: () => noCrd,
  },
  ...(["describe", "logs", "delete"] as const).map(
    (command): Case => ({
      bad: `df ${command} of a dataflow that does not exist`,
      cluster: "with CRD",
      cli: "waxctl",
      args: () => inCluster("df", command, "nope"),
      code: 1,
      line: () => notFound("nope"),
    }),
  ),
  {
    bad: "df describe --json of a dataflow that does not exist (the line is not silenced by --json)",
    cluster: "with CRD",
    cli: "waxctl",
    args: () => inCluster("df", "describe", "nope", "--json"),
    code: 1,
    line: () => notFound("nope"),
  },
];

async function expectOneLine(c: Case): Promise<void> {
  const r = await run(c.cli, c.args(), c.env?.());
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  const line = c.line();
  expect(lines, r.stderr).toHaveLength(1);
  if (typeof line === "string") expect(lines[0]).toBe(line);
  else expect(lines[0]).toMatch(line);
  expect(r.code).toBe(c.code);
  await c.after?.();
}

const title = "%s: %s";
const named = (c: Case): [Cli, string, Case] => [c.cli, c.bad, c];

describe("no cluster needed", () => {
  beforeAll(async () => {
    // A port nothing listens on: connecting is refused at once.
    at.closedServer = `https://127.0.0.1:${await freePort()}`;
    at.closed = file(
      "closed.kubeconfig",
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "closed", cluster: { server: at.closedServer, "insecure-skip-tls-verify": true } }],
        users: [{ name: "me", user: { token: "t" } }],
        contexts: [{ name: "closed", context: { cluster: "closed", user: "me" } }],
        "current-context": "closed",
      }),
    );
  });

  test.concurrent.each(CASES.filter((c) => c.cluster === undefined).map(named))(title, async (_cli, _bad, c) => {
    await expectOneLine(c);
  });

  test("a dry run needs no cluster and reads no kubeconfig, even one $KUBECONFIG names that is missing", async () => {
    const r = await run("waxctl", ["df", "deploy", wordcount, "-N", "wc", "--dry-run", "-o", "json"], {
      KUBECONFIG: join(dir, "nope"),
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const df = JSON.parse(r.stdout) as { metadata: { name: string; namespace?: string } };
    // No -n: the Dataflow goes to whatever namespace `kubectl apply` uses.
    expect(df.metadata).toMatchObject({ name: "wc" });
    expect(df.metadata.namespace).toBeUndefined();
  });

  test("--no-check deploys a module that fails to load here, for its pods to load", async () => {
    const r = await run("waxctl", ["df", "deploy", throwsAtLoad, "-N", "throws", "--dry-run", "--no-check", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { spec: { module: string } }).spec.module).toBe("/app/throws.js");
  });

  test.each([
    ["waxflow", ["run", syntaxError]],
    ["waxctl", ["df", "list", "--bogus"]],
  ] as const)("%s: WAXFLOW_DEBUG=1 adds the stack after the line", async (cli, args) => {
    const plain = await run(cli, args);
    const debug = await run(cli, args, { WAXFLOW_DEBUG: "1" });
    expect(debug.stderr.startsWith(plain.stderr)).toBe(true);
    expect(debug.stderr.slice(plain.stderr.length)).toMatch(/^\s+at /m);
    expect(plain.stderr).not.toMatch(/^\s+at /m);
  });
});

let cluster: TestCluster;

describe("a cluster", () => {
  beforeAll(async () => {
    cluster = await startCluster();
    at.kubeconfig = cluster.kubeconfigPath;
  }, 3_600_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  describe("without the Dataflow CRD", () => {
    test.each(CASES.filter((c) => c.cluster === "without CRD").map(named))(title, async (_cli, _bad, c) => {
      await expectOneLine(c);
    });
  });

  describe("with the Dataflow CRD", () => {
    beforeAll(async () => {
      await installCrd(new Kube(cluster.kubeConfig()));
    }, 60_000);

    test.each(CASES.filter((c) => c.cluster === "with CRD").map(named))(title, async (_cli, _bad, c) => {
      await expectOneLine(c);
    });
  });
});
