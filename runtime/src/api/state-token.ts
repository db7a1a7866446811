/**
 * The token that state queries carry (`GET /state/...`): derived from the cluster
 * secret, so whoever may read a Dataflow's cluster Secret may query its state and nobody
 * else, with no second secret to create, mount or rotate. A header of its own, because the
 * API server's pod proxy keeps the caller's `Authorization` header to itself.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export const STATE_TOKEN_HEADER = "x-waxflow-state-token";

export function stateQueryToken(secret: Uint8Array): string {
  return createHmac("sha256", secret).update("waxflow state query token\0").digest("hex");
}

/** Compares in constant time: digests first, so the lengths match whatever was sent. */
export function tokenMatches(given: string, expected: string): boolean {
  const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();
  return timingSafeEqual(digest(given), digest(expected));
}
