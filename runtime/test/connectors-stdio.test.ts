import { spawn } from "node:child_process";
import { afterEach, expect, test, vi } from "vitest";
import { Dataflow } from "waxflow";
import { StdInSource, StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";
import { clusterMain, runMain, TestingSource } from "waxflow/testing";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Captures every `process.stdout.write` call's text while `run` runs. */
async function captureStdout(run: () => Promise<void>): Promise<string[]> {
  const writes: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    writes.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    return true;
  });
  try {
    await run();
  } finally {
    vi.restoreAllMocks();
  }
  return writes;
}

test("StdOutSink prints strings as they are and other items on one line each", async () => {
  const flow = new Dataflow("print");
  const items: unknown[] = ["a", "b", 3, { k: "v", nested: { list: [1, 2, { deep: true }] } }, ["x", 1], null];
  op.output("out", op.input("inp", flow, new TestingSource(items, 10)), new StdOutSink());
  const writes = await captureStdout(() => runMain(flow));
  expect(writes.join("")).toBe(
    ["a", "b", "3", "{ k: 'v', nested: { list: [ 1, 2, { deep: true } ] } }", "[ 'x', 1 ]", "null", ""].join("\n"),
  );
});

test("StdOutSink on several workers writes whole lines only", async () => {
  const flow = new Dataflow("print");
  const items = Array.from({ length: 300 }, (_, i) => `item ${i}`);
  const s = op.redistribute("spread", op.input("inp", flow, new TestingSource(items, 7)));
  op.output("out", s, new StdOutSink());
  const writes = await captureStdout(() => clusterMain(flow, { workersPerProcess: 3 }));
  for (const text of writes) expect(text).toMatch(/^(item \d+\n)+$/);
  expect(writes.join("").split("\n").slice(0, -1).sort()).toEqual([...items].sort());
});

/** Runs a dataflow in a child process with `input` on its stdin; resolves its exit code and output. */
function runChild(script: string, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=waxflow-source", "--input-type=module", "-e", script], {
      cwd: process.cwd(),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

test("StdInSource reads stdin lines into a dataflow that prints to stdout (a shell pipeline)", async () => {
  const script = `
    import { Dataflow } from "waxflow";
    import * as op from "waxflow/operators";
    import { clusterMain } from "waxflow/testing";
    import { StdInSource, StdOutSink } from "waxflow/connectors/stdio";
    const flow = new Dataflow("pipe");
    const lines = op.input("inp", flow, new StdInSource({ batchSize: 2 }));
    const out = op.map("shout", lines, (line) => ({ line: line.toUpperCase(), length: line.length }));
    op.output("out", out, new StdOutSink());
    await clusterMain(flow, { workersPerProcess: 2 });
  `;
  const lines = ["hello", "wörld", "", "crlf line"];
  const { code, stdout, stderr } = await runChild(script, `${lines.slice(0, 3).join("\n")}\n${lines[3]}\r\n`);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  expect(stdout).toBe(
    [
      "{ line: 'HELLO', length: 5 }",
      "{ line: 'WÖRLD', length: 5 }",
      "{ line: '', length: 0 }",
      "{ line: 'CRLF LINE', length: 9 }",
      "",
    ].join("\n"),
  );
});

test("StdInSource validates its batch size", () => {
  expect(() => new StdInSource({ batchSize: 0 })).toThrow(/batchSize must be a whole number >= 1/);
});
