// The NetworkPolicy that fences a Dataflow's pods: the cluster port only from the same
// Dataflow's pods, the API port only from the controller's namespace and from the
// clients the operator names (Prometheus). Everything else is refused.
import type { V1LabelSelector, V1NetworkPolicy, V1NetworkPolicyPeer } from "@kubernetes/client-node";
import {
  API_PORT,
  CLUSTER_PORT,
  type Dataflow,
  LABEL_KEY_PATTERN,
  LABEL_VALUE_PATTERN,
  podSelector,
} from "@waxflow/crds";
import { metadataFor, refOf, stamped } from "./objects.ts";

/** Who may reach a Dataflow's API port (3030) besides the controller. */
export interface ApiClients {
  /** The controller's own namespace; every pod in it is let in. */
  readonly controllerNamespace: string;
  /** Namespaces whose pods are let in (say, Prometheus'); with `podLabels`, only those pods there. */
  readonly namespaceLabels?: Readonly<Record<string, string>>;
  /** Pods let in: in any namespace, or in the namespaces `namespaceLabels` selects. */
  readonly podLabels?: Readonly<Record<string, string>>;
}

/** Where `waxctl install` and the chart put the controller by default. */
export const DEFAULT_API_CLIENTS: ApiClients = { controllerNamespace: "waxflow-system" };

/** Set on every namespace by the API server (since Kubernetes 1.22). */
const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

const nonEmpty = (labels: Readonly<Record<string, string>> | undefined): labels is Record<string, string> =>
  labels !== undefined && Object.keys(labels).length > 0;

/**
 * An empty selector in a peer selects everything, so a peer is only built from labels
 * that were given: no labels at all means no extra peer, never "every pod".
 */
function apiClientPeer(clients: ApiClients): V1NetworkPolicyPeer | undefined {
  const { namespaceLabels, podLabels } = clients;
  if (!nonEmpty(podLabels) && !nonEmpty(namespaceLabels)) return undefined;
  const namespaceSelector: V1LabelSelector = nonEmpty(namespaceLabels) ? { matchLabels: { ...namespaceLabels } } : {};
  return {
    namespaceSelector,
    ...(nonEmpty(podLabels) ? { podSelector: { matchLabels: { ...podLabels } } } : {}),
  };
}

export function desiredNetworkPolicy(df: Dataflow, clients: ApiClients): V1NetworkPolicy {
  const ref = refOf(df);
  const extra = apiClientPeer(clients);
  return stamped<V1NetworkPolicy>({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: metadataFor(ref, ref.name),
    spec: {
      podSelector: { matchLabels: podSelector(ref.name) },
      policyTypes: ["Ingress"],
      // `_from` is client-node's name for `from` (it serializes it as `from`).
      ingress: [
        {
          // A peer podSelector alone means the policy's own namespace.
          _from: [{ podSelector: { matchLabels: podSelector(ref.name) } }],
          ports: [{ protocol: "TCP", port: CLUSTER_PORT }],
        },
        {
          _from: [
            { namespaceSelector: { matchLabels: { [NAMESPACE_NAME_LABEL]: clients.controllerNamespace } } },
            ...(extra === undefined ? [] : [extra]),
          ],
          ports: [{ protocol: "TCP", port: API_PORT }],
        },
      ],
    },
  });
}

const LABEL_KEY = new RegExp(LABEL_KEY_PATTERN);
const LABEL_VALUE = new RegExp(LABEL_VALUE_PATTERN);

/** `k=v,k2=v2` (the controller's API_CLIENT_*_LABELS) to labels; the error names `source`. */
export function parseLabels(text: string, source: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(",").map((p) => p.trim())) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const [key, value] = eq < 0 ? [pair, undefined] : [pair.slice(0, eq), pair.slice(eq + 1)];
    if (value === undefined || !LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) {
      throw new Error(`${source}: "${pair}" is not a label key=value; write key=value pairs separated by commas`);
    }
    labels[key] = value;
  }
  return labels;
}
