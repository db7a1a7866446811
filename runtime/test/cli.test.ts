import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, test } from "vitest";
import { type Output, output } from "./support/output.ts";
import { freePorts } from "./support/ports.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FIXTURES = "runtime/test/cli-fixtures";

/**
 * Runs the CLI as a real process from the repository root, with only the given variables.
 * `onFirstOutput` is called once the dataflow has printed something.
 */
function waxflow(
  args: string[],
  env: Record<string, string> = {},
  onFirstOutput?: (signal: (name: NodeJS.Signals) => void) => void,
): Promise<Output> {
  const child = spawn(process.execPath, ["--conditions=waxflow-source", CLI, ...args], {
    cwd: ROOT,
    // Port 0: the HTTP API on any free port, so parallel tests do not collide on 3030. Quiet:
    // these tests check output and failures; log.test.ts checks the log lines.
    env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: "0", WAXFLOW_QUIET: "true", ...env },
  });
  return output(child, () => onFirstOutput?.((name) => child.kill(name)));
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

describe("successful runs", () => {
  test("runs `flow` to EOF and exits 0", async () => {
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`]);
    expect(r).toEqual({
      code: 0,
      stdout: "numbers.out: 2\nnumbers.out: 4\nnumbers.out: 6\nnumbers.out: 8\nnumbers.out: 10\n",
      stderr: "",
    });
  });

  test("several workers in one process", async () => {
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-w", "3", "-s", "0.05"]);
    expect(r.code).toBe(0);
    expect(lines(r.stdout).sort()).toEqual(["2", "4", "6", "8", "10"].map((n) => `numbers.out: ${n}`).sort());
  });

  test("the default export, and a factory named after the colon", async () => {
    expect((await waxflow(["run", `${FIXTURES}/factory.ts`])).stdout).toBe(
      "default.out: 'from'\ndefault.out: 'default'\n",
    );
    expect((await waxflow(["run", `${FIXTURES}/factory.ts:makeFlow`])).stdout).toBe(
      "made.out: 'from'\nmade.out: 'factory'\n",
    );
  });

  test("--help teaches every flag with its variable", async () => {
    const r = await waxflow(["--help"]);
    expect(r.code).toBe(0);
    for (const flag of ["-w", "-i", "-a", "-r", "-s", "-b"]) expect(r.stdout).toContain(`  ${flag}, --`);
    for (const v of ["WORKERS_PER_PROCESS", "PROCESS_ID", "POD_NAME", "ADDRESSES", "HOSTFILE_PATH", "API_PORT"]) {
      expect(r.stdout).toContain(`WAXFLOW_${v}`);
    }
    expect(r.stdout).toContain("KAFKA_SASL_*");
    expect(r.stdout).toMatch(/Examples:\n {2}waxflow run /);
  });
});

describe("failures: one line on stderr", () => {
  test("a map that throws names the full step id and the item", async () => {
    const r = await waxflow(["run", `${FIXTURES}/throws.ts`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: step "flow.step" failed on item 'bad': Error: cannot handle this word\n`);
  });

  test("in a worker thread (-w 2) the same line; WAXFLOW_DEBUG=1 adds the thread's stack", async () => {
    const r = await waxflow(["run", `${FIXTURES}/throws.ts`, "-w", "2"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: step "flow.step" failed on item 'bad': Error: cannot handle this word\n`);
    const debug = await waxflow(["run", `${FIXTURES}/throws.ts`, "-w", "2"], { WAXFLOW_DEBUG: "1" });
    expect(lines(debug.stderr)[0]).toBe(`error: step "flow.step" failed on item 'bad': Error: cannot handle this word`);
    expect(debug.stderr).toMatch(/at .*throws\.ts/);
  });

  test("a worker thread that exits before its inputs end fails the process, naming the thread", async () => {
    const r = await waxflow(["run", `${FIXTURES}/exits.ts`, "-w", "2"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: worker thread [01] exited with code 3 before its inputs ended\n$/);
  });

  test("WAXFLOW_DEBUG=1 adds the stack after that line", async () => {
    const r = await waxflow(["run", `${FIXTURES}/throws.ts`], { WAXFLOW_DEBUG: "1" });
    expect(r.code).toBe(1);
    const [first, ...rest] = lines(r.stderr);
    expect(first).toBe(`error: step "flow.step" failed on item 'bad': Error: cannot handle this word`);
    expect(rest.join("\n")).toMatch(/at .*throws\.ts/);
  });

  test("a module without a Dataflow lists its exports", async () => {
    const r = await waxflow(["run", `${FIXTURES}/no-flow.ts`]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `error: ${FIXTURES}/no-flow.ts exports no Dataflow as \`flow\` or default ` +
        `(name another export with ${FIXTURES}/no-flow.ts:<name>); exports found: answer (number), helper (function)`,
    ]);
  });

  test("with -w 2 the threads, started while the process loads, end with it: the same one line", async () => {
    const r = await waxflow(["run", `${FIXTURES}/no-flow.ts`, "-w", "2"]);
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([
      `error: ${FIXTURES}/no-flow.ts exports no Dataflow as \`flow\` or default ` +
        `(name another export with ${FIXTURES}/no-flow.ts:<name>); exports found: answer (number), helper (function)`,
    ]);
  });

  test("a named export that is not a factory", async () => {
    const r = await waxflow(["run", `${FIXTURES}/no-flow.ts:helper`]);
    expect(r.stderr).toBe(`error: ${FIXTURES}/no-flow.ts:helper() returned string, not a Dataflow\n`);
    const missing = await waxflow(["run", `${FIXTURES}/no-flow.ts:nothing`]);
    expect(missing.stderr).toMatch(/has no export "nothing"; exports found: answer \(number\), helper \(function\)\n$/);
  });

  test("a module that does not exist", async () => {
    const r = await waxflow(["run", "nowhere/flow.ts"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^error: dataflow module "nowhere\/flow.ts" not found \(looked for .*\); pass the path .*\n$/,
    );
  });

  test.each([
    ["0", `error: -w/--workers-per-process must be a whole number >= 1, got "0"\n`],
    ["abc", `error: -w/--workers-per-process must be a whole number >= 1, got "abc"\n`],
  ])("-w %s exits 2", async (value, stderr) => {
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-w", value]);
    expect(r).toEqual({ code: 2, stdout: "", stderr });
  });

  test("a bad variable is named", async () => {
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`], { WAXFLOW_SNAPSHOT_INTERVAL: "-1" });
    expect(r).toEqual({
      code: 2,
      stdout: "",
      stderr: `error: WAXFLOW_SNAPSHOT_INTERVAL must be a number of seconds > 0, got "-1"\n`,
    });
  });
});

describe("environment variables", () => {
  test("WAXFLOW_WORKERS_PER_PROCESS runs several workers; -w overrides it", async () => {
    const good = await waxflow(["run", `${FIXTURES}/numbers.ts`], { WAXFLOW_WORKERS_PER_PROCESS: "2" });
    expect(good.code).toBe(0);
    expect(lines(good.stdout)).toHaveLength(5);
    const bad = await waxflow(["run", `${FIXTURES}/numbers.ts`], { WAXFLOW_WORKERS_PER_PROCESS: "zero" });
    expect(bad.stderr).toBe(`error: WAXFLOW_WORKERS_PER_PROCESS must be a whole number >= 1, got "zero"\n`);
    const overridden = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-w", "1"], {
      WAXFLOW_WORKERS_PER_PROCESS: "zero",
    });
    expect(overridden.code).toBe(0);
  });

  test("a one-replica StatefulSet is a single process and runs", async () => {
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`], {
      WAXFLOW_POD_NAME: "numbers-0",
      WAXFLOW_STATEFULSET_NAME: "numbers",
      WAXFLOW_REPLICAS: "1",
      WAXFLOW_SERVICE_NAME: "numbers",
      WAXFLOW_NAMESPACE: "default",
    });
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toHaveLength(5);
  });
});

describe("clusters and recovery", () => {
  test("two processes over TCP, addresses by flag", async () => {
    const [a, b] = await freePorts(2);
    const addresses = `127.0.0.1:${a};127.0.0.1:${b}`;
    const runs = await Promise.all(
      ["0", "1"].map((i) =>
        waxflow(["run", `${FIXTURES}/numbers.ts`, "-a", addresses, "-i", i, "-w", "2"], {
          WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
        }),
      ),
    );
    for (const r of runs) expect(r, r.stderr).toMatchObject({ code: 0, stderr: "" });
    // The source's one partition is read on one worker; the map runs where it is read.
    const printed = runs.flatMap((r) => lines(r.stdout)).sort();
    expect(printed).toEqual(["2", "4", "6", "8", "10"].map((n) => `numbers.out: ${n}`).sort());
  });

  test("a process of a cluster without a cluster secret refuses to start, saying how to set one", async () => {
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-a", "127.0.0.1:1;127.0.0.1:2", "-i", "1"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^error: this process connects to other processes, so it needs a cluster secret: .*WAXFLOW_CLUSTER_SECRET.*--insecure-cluster.*\n$/,
    );
    expect(r.stderr.split("\n")).toHaveLength(2);
  });

  test("recovery: init, run, and a second run resumes after the end of the input", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waxflow-cli-recovery-"));
    try {
      const init = await waxflow(["recovery", "init", dir, "2"]);
      expect(init).toEqual({ code: 0, stdout: `created 2 recovery partitions in ${dir}\n`, stderr: "" });
      const first = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-r", dir, "-s", "0.05"]);
      expect(first).toMatchObject({ code: 0, stderr: "" });
      expect(lines(first.stdout)).toHaveLength(5);
      // The source's position was snapshotted at its end: nothing is read twice.
      const second = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-r", dir, "-s", "0.05"]);
      expect(second).toEqual({ code: 0, stdout: "", stderr: "" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an uninitialized recovery directory is refused with the command that fixes it", async () => {
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`], { WAXFLOW_RECOVERY_DIRECTORY: "/nonexistent/recovery" });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: recovery directory /nonexistent/recovery has no partitions; create them with `waxflow recovery init /nonexistent/recovery <count>`, " +
        "or run with --recovery-init (WAXFLOW_RECOVERY_INIT=true) to create them when the directory is empty\n",
    );
  });

  test("WAXFLOW_RECOVERY_INIT=true creates the store in an empty directory, then resumes from it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waxflow-cli-recovery-"));
    try {
      const env = { WAXFLOW_RECOVERY_DIRECTORY: dir, WAXFLOW_RECOVERY_INIT: "true" };
      const first = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-s", "0.05"], env);
      expect(first).toMatchObject({ code: 0, stderr: "" });
      expect(lines(first.stdout)).toHaveLength(5);
      expect(readdirSync(dir)).toContain("part-0.sqlite3");
      const second = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-s", "0.05"], env);
      expect(second).toEqual({ code: 0, stdout: "", stderr: "" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("signals stop the run cleanly", () => {
  test.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)("%s exits %i", async (signal, code) => {
    const r = await waxflow(["run", `${FIXTURES}/endless.ts`, "-w", "2"], {}, (kill) => {
      setTimeout(() => kill(signal), 300);
    });
    expect(r.code).toBe(code);
    expect(r.stdout).toMatch(/^endless\.tick: 0\n(endless\.tick: \d+\n)+$/);
    expect(r.stderr).toBe(`stopping on ${signal}\n`);
  });

  test("a worker thread stuck in user code is terminated, so SIGTERM still ends the process", async () => {
    const started = Date.now();
    const r = await waxflow(["run", `${FIXTURES}/spins.ts`, "-w", "2"], {}, (kill) => kill("SIGTERM"));
    expect(r.code).toBe(143);
    expect(r.stdout).toBe("spinning\n");
    expect(r.stderr).toBe("stopping on SIGTERM\n");
    // 10 s of grace for the thread to stop by itself, then it is terminated.
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 40_000);
});
