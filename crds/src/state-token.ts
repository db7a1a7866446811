// The token a Dataflow's processes expect on their state and savepoint endpoints: the
// runtime derives it from the cluster secret (runtime/src/api/state-token.ts, which the
// runtime keeps to itself); the operator derives it the same way here, since it shares
// only this package with the pods. crds/test/state-token.test.ts keeps the two equal.
import { createHmac } from "node:crypto";

export const STATE_TOKEN_HEADER = "x-waxflow-state-token";
/** The key of the cluster Secret (`<name>-cluster-secret`) that holds the secret's bytes. */
export const CLUSTER_SECRET_KEY = "secret";

export function stateQueryToken(secret: Uint8Array): string {
  return createHmac("sha256", secret).update("waxflow state query token\0").digest("hex");
}
