// The Savepoints seam: the operator asks process 0 of a Dataflow for a savepoint through the
// API server's pod proxy (POST/GET /savepoints on pod <name>-0, port api), with the token
// derived from the Dataflow's cluster Secret. reconcile/ decides when; this only talks.
import type { KubeConfig } from "@kubernetes/client-node";
import {
  API_PORT,
  CLUSTER_SECRET_KEY,
  type Dataflow,
  type SavepointRecord,
  STATE_TOKEN_HEADER,
  stateQueryToken,
} from "@waxflow/crds";

export type { SavepointRecord };

import { clusterSecretName, refOf } from "../desired/objects.ts";
import type { Kube } from "./client.ts";
import { type Answer, MAX_ANSWER_CHARS, podProxyRequest } from "./pod-proxy.ts";

export interface Savepoints {
  /**
   * Requests savepoint `id` of the Dataflow's running processes; returns its id. The id is
   * chosen (and recorded in status) before the request, so a repeated request after a
   * restart finds the one already made instead of making another.
   */
  trigger(dataflow: Dataflow, id: string): Promise<string>;
  /** The savepoint as process 0 knows it; undefined when it knows none of that id. */
  get(dataflow: Dataflow, id: string): Promise<SavepointRecord | undefined>;
}

export { MAX_ANSWER_CHARS };

/** The process's one line, or the API server's own refusal (no pod, no access to pods/proxy). */
function refusal({ status, body }: Answer): string {
  try {
    const parsed = JSON.parse(body) as { kind?: string; message?: string; error?: string };
    if (parsed.kind === "Status") {
      const access = status === 403 ? " (the operator needs create and get on pods/proxy)" : "";
      return `the API server answered ${status}: ${parsed.message ?? ""}${access}`;
    }
    if (parsed.error !== undefined) return `${status}: ${parsed.error}`;
  } catch {
    // Not JSON: the first line as it came.
  }
  return `${status}: ${body.trim().split("\n")[0] ?? ""}`;
}

const fromApiServer = (body: string): boolean => {
  try {
    return (JSON.parse(body) as { kind?: string }).kind === "Status";
  } catch {
    return false;
  }
};

export class PodProxySavepoints implements Savepoints {
  readonly #kc: KubeConfig;
  readonly #kube: Kube;
  /** Tokens by Dataflow uid: the cluster Secret is immutable, so its token never changes. */
  readonly #tokens = new Map<string, string>();

  readonly #port: number;

  /** `port`: process 0's API port (the contract's `api`, 3030); another only for tests. */
  constructor(kc: KubeConfig, kube: Kube, port = API_PORT) {
    this.#kc = kc;
    this.#kube = kube;
    this.#port = port;
  }

  async trigger(dataflow: Dataflow, id: string): Promise<string> {
    const answer = await this.#request(dataflow, "POST", "savepoints", JSON.stringify({ id }));
    if (answer.status === 202 || answer.status === 200) return (JSON.parse(answer.body) as SavepointRecord).id;
    // 409 is also "already exists": asked before, by this operator before a restart.
    if (answer.status === 409 && (await this.get(dataflow, id)) !== undefined) return id;
    throw new Error(`savepoint ${id}: POST /savepoints on pod ${refOf(dataflow).name}-0 answered ${refusal(answer)}`);
  }

  async get(dataflow: Dataflow, id: string): Promise<SavepointRecord | undefined> {
    const answer = await this.#request(dataflow, "GET", `savepoints/${encodeURIComponent(id)}`);
    if (answer.status === 200) return JSON.parse(answer.body) as SavepointRecord;
    if (answer.status === 404 && !fromApiServer(answer.body)) return undefined;
    throw new Error(
      `savepoint ${id}: GET /savepoints/${id} on pod ${refOf(dataflow).name}-0 answered ${refusal(answer)}`,
    );
  }

  async #token(dataflow: Dataflow): Promise<string> {
    const { name, namespace, uid } = refOf(dataflow);
    const known = this.#tokens.get(uid);
    if (known !== undefined) return known;
    const secret = await this.#kube.secretData(namespace, clusterSecretName(name), CLUSTER_SECRET_KEY);
    if (secret === undefined) {
      throw new Error(
        `Secret ${namespace}/${clusterSecretName(name)} holds no key ${CLUSTER_SECRET_KEY}: no token for process 0`,
      );
    }
    const token = stateQueryToken(secret);
    this.#tokens.set(uid, token);
    return token;
  }

  async #request(dataflow: Dataflow, method: "GET" | "POST", path: string, body?: string): Promise<Answer> {
    const { name, namespace } = refOf(dataflow);
    const token = await this.#token(dataflow);
    return podProxyRequest(this.#kc, {
      namespace,
      pod: `${name}-0`,
      port: this.#port,
      method,
      path,
      headers: { [STATE_TOKEN_HEADER]: token },
      ...(body === undefined ? {} : { body }),
    });
  }
}
