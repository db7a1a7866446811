// The typed flags as oclif's own parser runs them: a count is a number, a duration and a
// name are checked, and a bad value fails with the one line WaxctlCommand prints.
import { Parser } from "@oclif/core";
import { expect, test } from "vitest";
import { count, dataflowName, dataflowNameArg, duration } from "../src/flags.ts";

const flags = {
  processes: count({ char: "p", min: 1, max: 1000, default: 1 }),
  tail: count({ min: 0, max: 1_000_000 }),
  timeout: duration({ default: "5m" }),
  interval: duration({ minMs: 100 }),
  name: dataflowName({ char: "N" }),
};

test("counts become numbers, durations and names pass as typed, defaults apply", async () => {
  const { flags: parsed } = await Parser.parse(["-p", "3", "--tail", "0", "--interval", "1m30s", "-N", "orders"], {
    flags,
  });
  expect(parsed).toEqual({ processes: 3, tail: 0, timeout: "5m", interval: "1m30s", name: "orders" });
  expect((await Parser.parse([], { flags })).flags.processes).toBe(1);
});

test.each([
  [["-p", "0"], '--processes must be a whole number from 1 to 1000, got "0"; e.g. --processes 2'],
  [["-p", "1.5"], '--processes must be a whole number from 1 to 1000, got "1.5"; e.g. --processes 2'],
  [["-p", "abc"], '--processes must be a whole number from 1 to 1000, got "abc"; e.g. --processes 2'],
  [["--tail", "-5"], '--tail must be a whole number from 0 to 1000000, got "-5"; e.g. --tail 2'],
  [["--timeout", "soon"], '--timeout must be a duration such as 10s, 500ms or 1m30s, got "soon"'],
  [["--interval", "50ms"], '--interval must be at least 100ms, got "50ms"'],
  [["-N", "Bad_Name"], /^--name "Bad_Name" is not a DNS-1123 label: use at most 52/],
])("%j fails naming the flag and what to type", async (argv, message) => {
  const failure = await Parser.parse(argv, { flags }).then(
    () => undefined,
    (err: Error) => err.message,
  );
  // oclif wraps the flag's own line; WaxctlCommand.catch prints it alone (commands.test.ts).
  expect(failure).toMatch(/^Parsing --\S+ \n\t/);
  const line = failure?.split("\n\t")[1]?.split("\n")[0];
  if (typeof message === "string") expect(line).toBe(message);
  else expect(line).toMatch(message);
});

test("a Dataflow name argument passes as typed, or fails with the rule naming the argument, unwrapped", async () => {
  const args = { name: dataflowNameArg({ required: true }), src: dataflowNameArg() };
  expect((await Parser.parse(["orders", "orders-canary"], { args })).args).toEqual({
    name: "orders",
    src: "orders-canary",
  });
  const failure = (argv: string[]) =>
    Parser.parse(argv, { args }).then(
      () => undefined,
      (err: Error) => err.message,
    );
  expect(await failure(["Bad_Name"])).toMatch(/^NAME "Bad_Name" is not a DNS-1123 label: use at most 52 [^\n]*$/);
  expect(await failure(["orders", `a${"b".repeat(52)}`])).toMatch(/^SRC "ab+" is not a DNS-1123 label/);
});
