import { describe, expect, test } from "vitest";
import { RecoveryError } from "waxflow/recovery";
import { decodeState, encodeState, storedBytes } from "../src/recovery/state-codec.ts";

describe("state codec", () => {
  test.each([0, 1, -3, 1.5, 2 ** 53 + 2, 2 ** 60, 1e308, 5e-324, "", "plain", "héllo ✓"])(
    "%s is stored as SQLite's own value",
    (state) => {
      expect(encodeState(state)).toBe(state);
    },
  );

  test.each([
    ["-0", -0],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["a lone surrogate", "a\uD800b"],
    ["null", null],
    ["a bigint", 12n],
    ["an object", { n: 1, at: new Date(5), seen: new Set(["x"]) }],
    ["a Map", new Map([["k", [1, 2]]])],
  ])("%s is V8-serialized and comes back exactly", (_name, state) => {
    const stored = encodeState(state);
    expect(stored).toBeInstanceOf(Uint8Array);
    const back = decodeState(stored, "part-0.sqlite3");
    if (typeof state === "number") expect(Object.is(back, state)).toBe(true);
    else expect(back).toEqual(state);
  });

  test("a value waxflow never writes is a named error", () => {
    expect(() => decodeState(7n, "/data/part-1.sqlite3")).toThrow(RecoveryError);
    expect(() => decodeState(7n, "/data/part-1.sqlite3")).toThrow(/part-1\.sqlite3: a snapshot holds a bigint/);
  });

  test("stored bytes count what each kind takes", () => {
    expect(storedBytes(null)).toBe(0);
    expect(storedBytes(2.5)).toBe(8);
    expect(storedBytes("é")).toBe(2);
    expect(storedBytes(encodeState({ a: 1 }))).toBeGreaterThan(2);
  });
});
