import { expect, test } from "vitest";
import { RESTART_BACKOFF, restartDelay } from "../src/cli/supervise.ts";

test("the back-off starts at 0.5 s, doubles up to 5 s, and starts over after a minute of running", () => {
  const waits: number[] = [];
  let last: number | undefined;
  for (let i = 0; i < 7; i++) {
    last = restartDelay(last, 2_000);
    waits.push(last);
  }
  expect(waits).toEqual([500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
  expect(restartDelay(5_000, RESTART_BACKOFF.resetAfterMs - 1)).toBe(5_000);
  expect(restartDelay(5_000, RESTART_BACKOFF.resetAfterMs)).toBe(500);
});
