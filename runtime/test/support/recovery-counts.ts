/**
 * Checks for runs of fixtures/recovery-flow.ts, which writes one "key,count" line per
 * item: what a run that never failed writes, so a test can tell loss and duplicates.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import { KEYS, keyOf, PARTITIONS } from "../fixtures/recovery-flow.ts";
import type { Exit, Run } from "./processes.ts";

/** Every run exits 0; their exits, to read their stderr. */
export async function succeeds(runs: readonly Run[]): Promise<Exit[]> {
  const exits = await Promise.all(runs.map((r) => r.exit));
  for (const exit of exits) expect(exit, exit.stderr).toMatchObject({ code: 0 });
  return exits;
}

/** Every "key,count" line the sink wrote, by key, in file order. */
export function countsByKey(out: string): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  for (const file of readdirSync(out)) {
    for (const line of readFileSync(join(out, file), "utf8").split("\n")) {
      if (line === "") continue;
      const [key, n] = line.split(",") as [string, string];
      byKey.set(key, [...(byKey.get(key) ?? []), Number(n)]);
    }
  }
  return byKey;
}

/** What a run that never failed writes for offsets below `until`: each key counts 1..n in order. */
export function expectExactlyOnce(out: string, until: number): void {
  const expected = new Map<string, number>();
  for (let p = 0; p < PARTITIONS; p++) {
    for (let offset = 0; offset < until; offset++) {
      const key = keyOf(p * 1000 + offset);
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
  }
  const actual = countsByKey(out);
  expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
  expect(expected.size).toBe(KEYS);
  for (const [key, n] of expected) {
    // No loss, no duplicate, no restart from zero: exactly 1..n, in order, in one file.
    expect(actual.get(key), key).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  }
}
