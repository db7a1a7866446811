/**
 * What users write: JSON lines from a file, keyed state, lines to a file. 1M lines.
 * `file-sum`: FileSource -> JSON.parse -> keyOn -> running sum (statefulMap) -> FileSink.
 * `file-join`: two such files (amounts and names) -> a running join -> FileSink.
 * Each runs beside a plain loop in this process that reads the same file(s), computes the
 * same output lines and writes them (target: engine >= 0.6 of the loop). Both sides check
 * their output file the same way, after writing it: its line count and each key's last line.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { Dataflow } from "waxflow";
import { FileSink, FileSource } from "waxflow/connectors/files";
import * as op from "waxflow/operators";
import { runMain } from "waxflow/testing";
import { type BenchCase, expectEqual, type Runners } from "../harness.ts";

const N = 1_000_000;
const KEYS = 10_000;
const dir = mkdtempSync(joinPath(tmpdir(), "waxflow-bench-files-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

interface Amount {
  readonly user: string;
  readonly amount: number;
}
interface Name {
  readonly user: string;
  readonly name: string;
}

let written: { amounts: string; names: string } | undefined;
function inputs(): { amounts: string; names: string } {
  if (written !== undefined) return written;
  const amounts = joinPath(dir, "amounts.jsonl");
  const names = joinPath(dir, "names.jsonl");
  const a: string[] = [];
  const b: string[] = [];
  for (let i = 0; i < N; i++) {
    a.push(JSON.stringify({ user: `u${i % KEYS}`, amount: i % 97 }));
    b.push(JSON.stringify({ user: `u${(i * 7) % KEYS}`, name: `name-${i % 1013}` }));
  }
  writeFileSync(amounts, `${a.join("\n")}\n`);
  writeFileSync(names, `${b.join("\n")}\n`);
  written = { amounts, names };
  return written;
}

/** Line count and each key's last line (the text before the first comma is the key). */
function summarize(path: string): { lines: number; last: Map<string, string> } {
  const last = new Map<string, string>();
  let lines = 0;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (line === "") continue;
    lines++;
    last.set(line.slice(0, line.indexOf(",")), line);
  }
  return { lines, last };
}

function check(name: string, path: string, lines: number, expectedLast: Map<string, string>): void {
  const got = summarize(path);
  expectEqual(`${name} output lines`, got.lines, lines);
  let differing = 0;
  for (const [key, line] of expectedLast) if (got.last.get(key) !== line) differing++;
  expectEqual(`${name} keys whose last line differs`, differing, 0);
}

// Each key's final sum, and the final join row: what every correct run ends with.
function expectedSums(): Map<string, string> {
  const sums = new Map<string, number>();
  for (let i = 0; i < N; i++) sums.set(`u${i % KEYS}`, (sums.get(`u${i % KEYS}`) ?? 0) + (i % 97));
  return new Map([...sums].map(([k, s]) => [k, `${k},${s}`]));
}

function expectedJoin(): Map<string, string> {
  const amount = new Map<string, number>();
  const name = new Map<string, string>();
  for (let i = 0; i < N; i++) {
    amount.set(`u${i % KEYS}`, i % 97);
    name.set(`u${(i * 7) % KEYS}`, `name-${i % 1013}`);
  }
  return new Map([...amount].map(([k, a]) => [k, `${k},${a},${name.get(k)}`]));
}

const sum = (state: number | undefined, value: Amount): readonly [number, number] => {
  const next = (state ?? 0) + value.amount;
  return [next, next];
};

export const fileSum: BenchCase = {
  title: "1M JSON lines: FileSource -> parse -> keyOn -> running sum -> FileSink; loop: read, parse, sum, write",
  targets: { minRatio: 0.6 },
  async prepare(): Promise<Runners> {
    const { amounts } = inputs();
    const expected = expectedSums();
    const out = joinPath(dir, "sum.out");
    return {
      async engine() {
        rmSync(out, { force: true });
        const flow = new Dataflow("bench_file_sum");
        const parsed = op.map("parse", op.input("inp", flow, new FileSource(amounts)), (l) => JSON.parse(l) as Amount);
        const sums = op.statefulMap(
          "sum",
          op.keyOn("key", parsed, (a) => a.user),
          sum,
        );
        op.output(
          "out",
          op.map("format", sums, ([k, s]): [string, string] => [k, `${k},${s}`]),
          new FileSink(out),
        );
        await runMain(flow);
        check("file-sum engine", out, N, expected);
        return N;
      },
      loop() {
        const sums = new Map<string, number>();
        const lines: string[] = [];
        for (const line of readFileSync(amounts, "utf8").split("\n")) {
          if (line === "") continue;
          const a = JSON.parse(line) as Amount;
          const [next, emit] = sum(sums.get(a.user), a);
          sums.set(a.user, next);
          lines.push(`${a.user},${emit}`);
        }
        writeFileSync(out, `${lines.join("\n")}\n`);
        check("file-sum loop", out, N, expected);
        return N;
      },
    };
  },
};

export const fileJoin: BenchCase = {
  title: "2 x 1M JSON lines: two FileSources -> parse -> keyOn -> running join -> FileSink; loop: the same by hand",
  targets: { minRatio: 0.6 },
  async prepare(): Promise<Runners> {
    const { amounts, names } = inputs();
    const expected = expectedJoin();
    const out = joinPath(dir, "join.out");
    return {
      async engine() {
        rmSync(out, { force: true });
        const flow = new Dataflow("bench_file_join");
        const left = op.keyOn(
          "key_amounts",
          op.map("parse_amounts", op.input("amounts", flow, new FileSource(amounts)), (l) => JSON.parse(l) as Amount),
          (a) => a.user,
        );
        const right = op.keyOn(
          "key_names",
          op.map("parse_names", op.input("names", flow, new FileSource(names)), (l) => JSON.parse(l) as Name),
          (n) => n.user,
        );
        const joined = op.join("join", left, right, { emitMode: "running" });
        op.output(
          "out",
          op.map("format", joined, ([k, row]): [string, string] => {
            const [a, n] = row as [Amount | null, Name | null];
            return [k, `${k},${a?.amount},${n?.name}`];
          }),
          new FileSink(out),
        );
        await runMain(flow);
        check("file-join engine", out, 2 * N, expected);
        return 2 * N;
      },
      loop() {
        // As the engine reads them: batches of 1000 lines, a batch of each file in turn.
        const a = readFileSync(amounts, "utf8").split("\n");
        const b = readFileSync(names, "utf8").split("\n");
        const rows = new Map<string, [Amount | undefined, Name | undefined]>();
        const lines: string[] = [];
        const emit = (key: string, row: [Amount | undefined, Name | undefined]): void => {
          lines.push(`${key},${row[0]?.amount},${row[1]?.name}`);
        };
        for (let start = 0; start < N; start += 1000) {
          for (let i = start; i < start + 1000 && i < N; i++) {
            const v = JSON.parse(a[i] as string) as Amount;
            const row = rows.get(v.user) ?? [undefined, undefined];
            row[0] = v;
            rows.set(v.user, row);
            emit(v.user, row);
          }
          for (let i = start; i < start + 1000 && i < N; i++) {
            const v = JSON.parse(b[i] as string) as Name;
            const row = rows.get(v.user) ?? [undefined, undefined];
            row[1] = v;
            rows.set(v.user, row);
            emit(v.user, row);
          }
        }
        writeFileSync(out, `${lines.join("\n")}\n`);
        check("file-join loop", out, 2 * N, expected);
        return 2 * N;
      },
    };
  },
};
