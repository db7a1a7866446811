// Recovery stores on real files and real mounts: a full disk, a read-only directory, a
// file that is not a database, a path that is a file, a directory another live process
// holds, and a store with state of steps the dataflow no longer has. Each is one line
// on stderr naming the path (or the steps) and the way forward, and exit code 1.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { initRecoveryDirectory } from "waxflow/recovery";
import { type Output, output } from "./support/output.ts";
import { freePorts } from "./support/ports.ts";
import { childProcesses } from "./support/processes.ts";
import { TEST_SECRET } from "./support/secret.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const FIXTURES = "runtime/test/cli-fixtures";
const { start, tempDir } = childProcesses();

function waxflowArgs(args: readonly string[]): string[] {
  return [CLI, ...args];
}

// Quiet: the start and progress lines are not what these tests read.
const ENV = {
  PATH: process.env.PATH ?? "",
  WAXFLOW_API_PORT: "0",
  WAXFLOW_QUIET: "true",
  WAXFLOW_CLUSTER_SECRET: TEST_SECRET,
};

/** Runs `waxflow <args>` to its end. */
function waxflow(args: readonly string[], env: Record<string, string> = {}): Promise<Output> {
  const { child } = start(waxflowArgs(args), { cwd: ROOT, env: { ...ENV, ...env } });
  return output(child);
}

const mounts: string[] = [];
afterEach(() => {
  for (const dir of mounts.splice(0)) execFileSync("umount", ["-l", dir]);
});

/** A tmpfs of `size` at a new directory: a disk that fills, or that can be made read-only. */
function tmpfs(size: string): string {
  const dir = tempDir("waxflow-tmpfs-");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    const said = String((err as { stderr?: unknown }).stderr ?? err).trim();
    throw new Error(
      `this test mounts a tmpfs and needs root with CAP_SYS_ADMIN (as CI runs): run it as root, ` +
        `e.g. \`sudo npx vitest run runtime/test/recovery-storage.test.ts\`; mount said: ${said}`,
    );
  }
  mounts.push(dir);
  return dir;
}

function readOnly(mount: string): void {
  execFileSync("mount", ["-o", "remount,ro", mount], { stdio: "pipe" });
}

/** The run failed with exactly one line on stderr, which is returned. */
function oneLine(r: Output): string {
  expect(r.code).toBe(1);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  expect(lines).toHaveLength(1);
  return lines[0] as string;
}

describe("recovery store errors name the file and the cause", () => {
  test("a full disk says no space left and names the partition", async () => {
    const disk = tmpfs("1m");
    const dir = join(disk, "recovery");
    const r = await waxflow(["run", `${FIXTURES}/grows.ts`, "-r", dir, "--recovery-init", "-s", "0.05"]);
    const line = oneLine(r);
    expect(line).toMatch(`error: no space left on device writing recovery partition ${join(dir, "part-0.sqlite3")} (`);
    expect(line).toMatch(/free space on that volume or make it larger/);
    expect(line).not.toMatch(/rollback/);
  }, 60_000);

  test("a read-only directory is named, with or without --recovery-init", async () => {
    const disk = tmpfs("1m");
    const store = join(disk, "store");
    initRecoveryDirectory(store, 1);
    mkdirSync(join(disk, "empty"));
    readOnly(disk);
    for (const [dir, extra] of [
      [store, []],
      [join(disk, "empty"), ["--recovery-init"]],
    ] as const) {
      const r = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-r", dir, ...extra]);
      expect(oneLine(r)).toBe(
        `error: recovery directory ${dir} is not writable (read-only file system); ` +
          "snapshots are written there: mount it read-write",
      );
      expect(r.stdout).toBe("");
    }
    const missing = join(disk, "absent");
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-r", missing, "--recovery-init"]);
    expect(oneLine(r)).toBe(
      `error: cannot create recovery directory ${missing} (read-only file system); create it by hand`,
    );
  });

  test("a partition file that is not a database is named", async () => {
    const dir = tempDir("waxflow-notadb-");
    const file = join(dir, "part-0.sqlite3");
    writeFileSync(file, "these are not the bytes of a SQLite database, but long enough to have a header\n".repeat(20));
    const r = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-r", dir]);
    expect(oneLine(r)).toBe(
      `error: ${file} is not a usable SQLite database (file is not a database); it is not a recovery partition, ` +
        `or it is damaged: move it out of ${dir}, or restore the directory from a backup`,
    );
  });

  test("-r naming a file is refused, naming it", async () => {
    const file = join(tempDir("waxflow-file-"), "recovery.db");
    writeFileSync(file, "");
    for (const extra of [[], ["--recovery-init"]]) {
      const r = await waxflow(["run", `${FIXTURES}/numbers.ts`, "-r", file, ...extra]);
      expect(oneLine(r)).toBe(
        `error: recovery directory ${file} is a file, not a directory; ` +
          "point -r/--recovery-directory (WAXFLOW_RECOVERY_DIRECTORY) at a directory",
      );
    }
  });
});

describe("a recovery directory belongs to one live process", () => {
  test("a second process is refused at once naming the first; the first runs on; a killed one leaves no lock", async () => {
    const dir = tempDir("waxflow-inuse-");
    const args = ["run", `${FIXTURES}/endless.ts`, "-r", dir, "--recovery-init", "-s", "0.1"];
    const firstOutput = Promise.withResolvers<void>();
    // Unsupervised: the lock's holder named in the refusal is then the process the test started.
    const unsupervised = { ...ENV, WAXFLOW_SUPERVISE: "false" };
    const first = start(waxflowArgs(args), { cwd: ROOT, env: unsupervised });
    first.child.stdout?.once("data", () => firstOutput.resolve());
    await firstOutput.promise;

    const started = Date.now();
    const second = await waxflow(args);
    const line = oneLine(second);
    expect(line).toMatch(
      new RegExp(`^error: recovery directory ${dir} is in use by another process \\(pid ${first.child.pid} on host `),
    );
    expect(line).toMatch(/each process needs a directory of its own: stop that process first/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(second.stdout).toBe("");

    // The first never noticed: it still runs, and stops cleanly.
    await new Promise((done) => setTimeout(done, 300));
    expect(first.child.exitCode).toBeNull();
    first.child.kill("SIGKILL");
    await first.exit;

    // SIGKILL released the lock with the process: a restart on the same directory runs.
    const third = start(waxflowArgs(args), { cwd: ROOT, env: unsupervised });
    const thirdOutput = Promise.withResolvers<void>();
    third.child.stdout?.once("data", () => thirdOutput.resolve());
    await thirdOutput.promise;
    third.child.kill("SIGTERM");
    const end = await third.exit;
    expect(end).toMatchObject({ code: 143, stderr: "stopping on SIGTERM\n" });
  }, 60_000);
});

describe("state of a renamed or removed step is never dropped silently", () => {
  test("a store with state of a step the dataflow lacks is refused, listing it; --drop-removed-steps drops it", async () => {
    const dir = tempDir("waxflow-steps-");
    const run = (env: Record<string, string>, ...extra: string[]) =>
      waxflow(["run", `${FIXTURES}/counts.ts`, "-r", dir, "--recovery-init", "-s", "0.05", ...extra], env);

    const first = await run({});
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout).toBe("a 1\nb 1\nc 1\na 2\nb 2\na 3\n");

    const renamed = await run({ COUNT_STEP: "total" });
    expect(oneLine(renamed)).toBe(
      `error: cannot resume: the recovery store in ${dir} holds state of step(s) "counts.count.stateful_batch" (3 keys) that the ` +
        "dataflow no longer has (renamed or removed), while its other steps would resume; give the steps their old ids " +
        "back, or drop that state deliberately with --drop-removed-steps (WAXFLOW_DROP_REMOVED_STEPS=true)",
    );

    // The step's old id back: it resumes (the source is at its end, so nothing more is read).
    expect(await run({})).toEqual({ code: 0, stdout: "", stderr: "" });

    const dropped = await run({ COUNT_STEP: "total", WAXFLOW_DROP_REMOVED_STEPS: "true" });
    expect(dropped).toEqual({
      code: 0,
      stdout: "",
      stderr: `recovery: dropped the state of removed step(s) "counts.count.stateful_batch" (3 keys) from ${dir}, as asked\n`,
    });
    // Dropped for good: the next start has nothing to refuse.
    expect(await run({ COUNT_STEP: "total" })).toEqual({ code: 0, stdout: "", stderr: "" });
  }, 60_000);

  test("in a cluster of two processes every process refuses, and both drop with the flag", async () => {
    const dirs = [tempDir("waxflow-steps-0-"), tempDir("waxflow-steps-1-")];
    const addresses = (await freePorts(2)).map((p) => `127.0.0.1:${p}`).join(";");
    const cluster = (env: Record<string, string>): Promise<Output[]> =>
      Promise.all(
        dirs.map((dir, i) =>
          waxflow(
            [
              "run",
              `${FIXTURES}/counts.ts`,
              "-i",
              String(i),
              "-a",
              addresses,
              "-r",
              dir,
              "--recovery-init",
              "-s",
              "0.05",
            ],
            env,
          ),
        ),
      );
    const first = await cluster({});
    expect(first.map((r) => r.code)).toEqual([0, 0]);
    expect(
      first
        .map((r) => r.stdout)
        .join("")
        .split("\n")
        .filter(Boolean)
        .sort(),
    ).toEqual(["a 1", "a 2", "a 3", "b 1", "b 2", "c 1"].sort());

    const renamed = await cluster({ COUNT_STEP: "total" });
    for (const r of renamed) {
      // A process whose store holds none of the step's keys reports its peer's reason.
      expect(oneLine(r)).toMatch(
        /cannot resume: the recovery store in \S+ holds state of step\(s\) "counts\.count\.stateful_batch" \(\d keys?\)/,
      );
    }

    const dropped = await cluster({ COUNT_STEP: "total", WAXFLOW_DROP_REMOVED_STEPS: "true" });
    expect(dropped.map((r) => r.code)).toEqual([0, 0]);
    expect(dropped.map((r) => r.stdout)).toEqual(["", ""]);
    const again = await cluster({ COUNT_STEP: "total" });
    expect(again.map((r) => [r.code, r.stderr])).toEqual([
      [0, ""],
      [0, ""],
    ]);
  }, 90_000);
});
