// The retention rule of backups (recovery/backup.ts), a pure decision over a bucket listing;
// savepoint ids and start-from values.
import { expect, test } from "vitest";
import { boundaryOf, type ListedObject, retentionVictims, setName, setProgress } from "../src/recovery/backup.ts";
import { generateSavepointId, SAVEPOINT_ID } from "../src/recovery/savepoint.ts";
import { parseStartFrom } from "../src/recovery/start-from.ts";

const PREFIX = "p/sets/";
const MIN = 60_000;

/** A complete set (manifest and two processes' objects) or an incomplete one, written `ago` ms before now. */
function set(name: string, ago: number, complete = true): ListedObject[] {
  const at = 10 * 60 * MIN - ago;
  const keys = [`${PREFIX}${name}/process-0/part-0.sqlite3`, `${PREFIX}${name}/process-0.json`];
  if (complete) keys.push(`${PREFIX}${name}/process-1/part-0.sqlite3`, `${PREFIX}${name}/process-1.json`);
  if (complete) keys.push(`${PREFIX}${name}/manifest.json`);
  return keys.map((key) => ({ key, bytes: 1, modified: at }));
}

const now = 10 * 60 * MIN;

test("keeps the newest K complete sets, deletes older ones manifest first, and incomplete leftovers past their age", () => {
  const objects = [
    ...set("a", 5 * MIN),
    ...set("b", 4 * MIN),
    ...set("c", 3 * MIN),
    ...set("d", 2 * MIN, false),
    ...set("e", 10_000, false),
  ];
  const victims = retentionVictims(objects, PREFIX, { keep: 2, keepAgeMs: 0, leftoverAgeMs: MIN, now });
  // "a" is the third newest complete set: it goes, its manifest first so no reader sees it half deleted.
  expect(victims.slice(0, 5)).toEqual([
    `${PREFIX}a/manifest.json`,
    ...set("a", 0)
      .map((o) => o.key)
      .filter((k) => !k.endsWith("manifest.json")),
  ]);
  // "d" is incomplete and older than the leftover age; "e" may still be uploading.
  expect(victims.slice(5).sort()).toEqual(
    set("d", 0, false)
      .map((o) => o.key)
      .sort(),
  );
});

test("complete sets younger than the keep age stay whatever their number", () => {
  const objects = [...set("a", 5 * MIN), ...set("b", 4 * MIN), ...set("c", 3 * MIN)];
  expect(retentionVictims(objects, PREFIX, { keep: 1, keepAgeMs: 4.5 * MIN, leftoverAgeMs: MIN, now })).toEqual(
    set("a", 0)
      .map((o) => o.key)
      .sort((x, y) => Number(y.endsWith("manifest.json")) - Number(x.endsWith("manifest.json"))),
  );
});

test("set names order by execution, then epoch; boundaries are multiples of the lag", () => {
  expect([setName(2, 5, 10), setName(1, 1, 900), setName(2, 5, 9)].sort()).toEqual([
    setName(1, 1, 900),
    setName(2, 5, 9),
    setName(2, 5, 10),
  ]);
  expect([boundaryOf(9, 5), boundaryOf(10, 5), boundaryOf(14, 5)]).toEqual([5, 10, 10]);
});

test("process 0 stops waiting for a set's records once each missing process has objects in a newer set", () => {
  const [older, waited, newer] = [setName(1, 0, 5), setName(1, 0, 10), setName(1, 0, 15)];
  const listed = (...keys: string[]): ListedObject[] => keys.map((key) => ({ key, bytes: 1, modified: now }));
  const records = (set: string, count: number): string[] =>
    Array.from({ length: count }, (_, i) => `${PREFIX}${set}/process-${i}.json`);
  const objects = listed(
    `${PREFIX}${older}/process-1.json`,
    `${PREFIX}${waited}/process-0.json`,
    `${PREFIX}${waited}/process-2/part-0.sqlite3.zst`,
    `${PREFIX}${newer}/process-1/part-0.sqlite3.zst`,
    `${PREFIX}${newer}/process-10.json`,
  );
  // Every record there: complete.
  expect(setProgress(listed(...records(waited, 3)), PREFIX, waited, 3)).toBe("complete");
  // Process 1 skipped the set: its partition of the newer one is up.
  expect(setProgress(objects, PREFIX, waited, 2)).toBe("skipped");
  // Process 2 is still uploading this set; process 3 has nothing anywhere yet.
  expect(setProgress(objects, PREFIX, waited, 3)).toBe("waiting");
  expect(setProgress([...objects, ...listed(`${PREFIX}${waited}/process-2.json`)], PREFIX, waited, 4)).toBe("waiting");
  // Process 10's record is not process 1's; a record alone in a newer set counts.
  const onlyTen = listed(`${PREFIX}${waited}/process-0.json`, `${PREFIX}${newer}/process-10.json`);
  expect(setProgress(onlyTen, PREFIX, waited, 2)).toBe("waiting");
  expect(setProgress([...listed(...records(waited, 10)), ...onlyTen], PREFIX, waited, 11)).toBe("skipped");
  // An older set says nothing about this one.
  expect(setProgress(objects, PREFIX, newer, 2)).toBe("waiting");
});

test("generated savepoint ids are UTC time and 4 hex digits, and valid ids; start-from values parse or say what they should be", () => {
  const id = generateSavepointId(new Date("2026-12-05T10:35:00.123Z"), "3f9a");
  expect(id).toBe("sp-20261205-103500-3f9a");
  expect(SAVEPOINT_ID.test(id)).toBe(true);
  expect(SAVEPOINT_ID.test(generateSavepointId(new Date()))).toBe(true);
  for (const bad of ["", "-a", "a-", "A", "a_b", "a".repeat(64)]) expect(SAVEPOINT_ID.test(bad), bad).toBe(false);
  expect(parseStartFrom("savepoint:sp-1")).toEqual({ kind: "savepoint", id: "sp-1", value: "savepoint:sp-1" });
  expect(parseStartFrom("fresh:2026-12-05.1")).toEqual({
    kind: "fresh",
    token: "2026-12-05.1",
    value: "fresh:2026-12-05.1",
  });
  expect(parseStartFrom("latest")).toEqual({ error: 'expected fresh:<token> or savepoint:<id>, got "latest"' });
});
