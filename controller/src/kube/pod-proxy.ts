// One request to a pod's port through the API server's pod proxy
// (/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>), as the operator's own
// credentials allow (pods/proxy). The pod runs user code: its answer is read only up to
// MAX_ANSWER_CHARS, and only for 10 s.
import type { IncomingMessage } from "node:http";
import type { RequestOptions } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";

/** A savepoint record or a /status is a few kilobytes; an API server's refusal a few kilobytes. */
export const MAX_ANSWER_CHARS = 64 * 1024;
export const POD_PROXY_TIMEOUT_MS = 10_000;

export interface Answer {
  readonly status: number;
  readonly body: string;
}

export interface PodRequest {
  readonly namespace: string;
  readonly pod: string;
  readonly port: number;
  readonly method: "GET" | "POST";
  /** Without the leading slash: `status`, `savepoints/<id>`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export async function podProxyRequest(kc: KubeConfig, req: PodRequest): Promise<Answer> {
  const { namespace, pod, port, method, path, body } = req;
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error("the operator's kubeconfig names no cluster");
  const base = new URL(cluster.server);
  const target = encodeURIComponent(`${pod}:${port}`);
  const options: RequestOptions = {
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: base.port,
    method,
    path: `${base.pathname.replace(/\/$/, "")}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${target}/proxy/${path}`,
    headers: {
      ...req.headers,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    timeout: POD_PROXY_TIMEOUT_MS,
  };
  await kc.applyToHTTPSOptions(options);
  const { request } = base.protocol === "https:" ? await import("node:https") : await import("node:http");
  return new Promise((resolve, reject) => {
    const outgoing = request(options, (res: IncomingMessage) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        // The pod runs user code: an answer is read only up to a bound, or the operator could be made to hold any amount.
        if (text.length > MAX_ANSWER_CHARS) {
          outgoing.destroy(
            new Error(`pod ${pod} answered ${method} /${path} with more than ${MAX_ANSWER_CHARS} characters`),
          );
        }
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on("error", reject);
    });
    outgoing.on("timeout", () =>
      outgoing.destroy(new Error(`no answer from pod ${pod} within ${POD_PROXY_TIMEOUT_MS / 1000}s`)),
    );
    outgoing.on("error", reject);
    outgoing.end(body);
  });
}
