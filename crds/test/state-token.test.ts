// The operator's copy of the state token must be the runtime's: a process refuses any other.
import { randomBytes } from "node:crypto";
import { expect, test } from "vitest";
import * as runtime from "../../runtime/src/api/state-token.ts";
import { STATE_TOKEN_HEADER, stateQueryToken } from "../src/index.ts";

test("the state token derived here is the one the runtime checks", () => {
  for (const secret of [randomBytes(32), randomBytes(32), new Uint8Array(32)]) {
    expect(stateQueryToken(secret)).toBe(runtime.stateQueryToken(secret));
    expect(runtime.tokenMatches(stateQueryToken(secret), runtime.stateQueryToken(secret))).toBe(true);
  }
  expect(stateQueryToken(randomBytes(32))).not.toBe(stateQueryToken(randomBytes(32)));
  expect(STATE_TOKEN_HEADER).toBe(runtime.STATE_TOKEN_HEADER);
});
