import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, test } from "vitest";
import { type Output, output } from "../runtime/test/support/output.ts";
import { WORD_COUNTS } from "./data/wordcount.expected.ts";

const ROOT = resolve(import.meta.dirname, "..");

/** Runs an example through the CLI, from the repository root, as a user would. */
function run(example: string, ...flags: string[]): Promise<Output> {
  return output(
    spawn(
      process.execPath,
      ["--conditions=waxflow-source", "runtime/src/cli.ts", "run", `examples/${example}`, ...flags],
      // Quiet: what an example prints is checked; the runtime's log lines are checked in runtime/test/log.test.ts.
      { cwd: ROOT, env: { PATH: process.env.PATH ?? "", WAXFLOW_API_PORT: "0", WAXFLOW_QUIET: "true" } },
    ),
  );
}

// merge.ts takes ~10 s for now: an async sink write (StdOutSink) does not wake an idle
// worker (engine/ops.ts DynamicSinkOp), so the run ends at the next epoch close.
describe.concurrent("examples print what they promise", { timeout: 40_000 }, () => {
  test("anonymize: invalid lines dropped, user names masked", async () => {
    expect(await run("anonymize.ts")).toEqual({
      code: 0,
      stdout: "a**********@example.com\nb**@example.org\nc**********@waxflow.io\ne***@mail.example.net\n",
      stderr: "",
    });
  });

  test("window-average: windows close as event time passes, the rest at the end", async () => {
    // The same lines, in this order, as Bytewax 0.21.1 printed for the same CSV and windows:
    // the file is one batch, so alice's closed windows come before bob's.
    expect(await run("window-average.ts")).toEqual({
      code: 0,
      stdout: [
        "alice 12:00:00 average 4",
        "alice 12:00:05 average 4.5",
        "bob 12:00:00 average 15",
        "alice 12:00:10 average 4",
        "bob 12:00:05 average 30",
        "",
      ].join("\n"),
      stderr: "",
    });
  });

  test("merge: both servers' lines counted together", async () => {
    expect(await run("merge.ts")).toEqual({ code: 0, stdout: "ERROR: 2\nINFO: 7\nWARN: 2\n", stderr: "" });
  });

  test("join: only ids present on both sides", async () => {
    expect(await run("join.ts")).toEqual({
      code: 0,
      stdout: "1: Alice <alice@example.com>\n3: Carol <carol@example.com>\n4: Dave <dave@example.com>\n",
      stderr: "",
    });
  });

  test("wordcount", async () => {
    expect(await run("wordcount.ts")).toEqual({ code: 0, stdout: `${WORD_COUNTS.join("\n")}\n`, stderr: "" });
  });

  test("wordcount on 3 workers counts the same (each worker prints its own keys)", async () => {
    const r = await run("wordcount.ts", "-w", "3");
    expect(r.code).toBe(0);
    expect(
      r.stdout
        .split("\n")
        .filter((l) => l !== "")
        .sort(),
    ).toEqual(WORD_COUNTS);
  });
});
