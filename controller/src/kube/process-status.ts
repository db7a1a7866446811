// The ProcessStatuses seam: the operator reads a process's /status through the API
// server's pod proxy (port api; /status needs no token) to learn what it restored its
// recovery store from. reconcile/restores.ts decides whom to ask and checks the answer.

import type { KubeConfig } from "@kubernetes/client-node";
import { API_PORT } from "@waxflow/crds";
import { podProxyRequest } from "./pod-proxy.ts";

export interface ProcessStatuses {
  /**
   * The `restore` field of the pod's /status as it came (undefined: it restored nothing);
   * throws when the pod could not be asked or did not answer a JSON object.
   */
  restoreOf(namespace: string, pod: string): Promise<unknown>;
}

export class PodProxyProcessStatuses implements ProcessStatuses {
  readonly #kc: KubeConfig;
  readonly #port: number;

  /** `port`: the processes' API port (the contract's `api`, 3030); another only for tests. */
  constructor(kc: KubeConfig, port = API_PORT) {
    this.#kc = kc;
    this.#port = port;
  }

  async restoreOf(namespace: string, pod: string): Promise<unknown> {
    const answer = await podProxyRequest(this.#kc, { namespace, pod, port: this.#port, method: "GET", path: "status" });
    if (answer.status !== 200) {
      throw new Error(`GET /status on pod ${namespace}/${pod} answered ${answer.status}: ${answer.body.slice(0, 200)}`);
    }
    let status: unknown;
    try {
      status = JSON.parse(answer.body);
    } catch {
      throw new Error(`GET /status on pod ${namespace}/${pod} answered no JSON`);
    }
    if (typeof status !== "object" || status === null || Array.isArray(status)) {
      throw new Error(`GET /status on pod ${namespace}/${pod} answered no JSON object`);
    }
    return (status as { restore?: unknown }).restore;
  }
}
