// What waxctl, the operator and the pods must agree on, each written once (the fixed names
// of ../shared/design/contract.md). Dependency-free: both sides import it.

/** The label on every object a Dataflow owns; its value is the Dataflow's name. */
export const DATAFLOW_LABEL = "waxflow.io/dataflow";
/** The dataflow container in each pod. */
export const CONTAINER = "waxflow";
/** The mesh's port between a Dataflow's processes. */
export const CLUSTER_PORT = 2101;
/** The runtime's HTTP API port (/healthz, /readyz, /metrics, /steps, /state). */
export const API_PORT = 3030;

/** The labels that select a Dataflow's pods: the StatefulSet's selector. */
export function podSelector(name: string): Record<string, string> {
  return { "app.kubernetes.io/name": "waxflow", [DATAFLOW_LABEL]: name };
}

const UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

/** Milliseconds of a Go duration such as "1m30s" or "500ms", the spec's duration fields' format. */
export function durationMs(text: string): number {
  const parts = [...text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) {
    throw new Error(`not a duration: "${text}" (write it as Go does: 500ms, 30s, 1m30s, 2h)`);
  }
  return parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * (UNIT_MS[unit as string] ?? 0), 0);
}

/** The labels of a Dataflow and of everything it owns; `managedBy` says who wrote the object. */
export function dataflowLabels(name: string, managedBy: string): Record<string, string> {
  return { ...podSelector(name), "app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": managedBy };
}

/** `podSelector` as a label selector string, for list and watch calls. */
export function podSelectorString(name: string): string {
  return Object.entries(podSelector(name))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** An object as far as its conditions go: structural, so any client's types fit. */
interface WithConditions {
  readonly status?: { readonly conditions?: readonly { readonly type: string; readonly status: string }[] };
}

const holds = (o: WithConditions, type: string): boolean =>
  o.status?.conditions?.some((c) => c.type === type && c.status === "True") === true;

/** Ready as the kubelet says it: for a process, its cluster formed and it serves. */
export const isPodReady = (pod: WithConditions): boolean => holds(pod, "Ready");

/** The API server serves the CRD's resources once it is Established. */
export const isCrdEstablished = (crd: WithConditions): boolean => holds(crd, "Established");

/** A savepoint's id: what its bucket keys, `spec.restoreFrom.savepoint` and the CLI's arguments hold. */
export const SAVEPOINT_ID_PATTERN = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$";
export const SAVEPOINT_ID = new RegExp(SAVEPOINT_ID_PATTERN);

/** A savepoint as process 0's `/savepoints` answers it (runtime/src/recovery/savepoint.ts). */
export interface SavepointRecord {
  readonly id: string;
  readonly state: "pending" | "complete" | "failed";
  readonly requestedAt: string;
  readonly createdAt?: string;
  readonly execution?: number;
  readonly epoch?: number;
  readonly processCount?: number;
  readonly bytes?: number;
  readonly sourceSet?: string;
  /** One line, when failed. */
  readonly error?: string;
}
