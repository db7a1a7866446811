// suspend, resume, scale and restart: small writes to a live Dataflow. They are merge patches
// (or the scale subresource), not applies, so a later `df deploy` leaves what they set alone.
import type { Dataflow } from "@waxflow/crds";
import type { Cluster } from "../kube.ts";

export interface Change {
  readonly dataflow: Dataflow;
  /** False when the dataflow already was as asked: nothing was written. */
  readonly changed: boolean;
}

export async function setState(
  cluster: Cluster,
  namespace: string,
  name: string,
  state: "running" | "suspended",
): Promise<Change> {
  const live = await cluster.mustGetDataflow(namespace, name);
  if ((live.spec.state ?? "running") === state) return { dataflow: live, changed: false };
  return { dataflow: await cluster.patchDataflow(namespace, name, { spec: { state } }), changed: true };
}

export async function scale(cluster: Cluster, namespace: string, name: string, processes: number): Promise<Change> {
  const live = await cluster.mustGetDataflow(namespace, name);
  if ((live.spec.processes ?? 1) === processes) return { dataflow: live, changed: false };
  await cluster.scaleDataflow(namespace, name, processes);
  return { dataflow: await cluster.mustGetDataflow(namespace, name), changed: true };
}

/** Bumps spec.restartNonce; the resourceVersion makes a concurrent bump fail instead of merging into one. */
export async function restart(cluster: Cluster, namespace: string, name: string): Promise<Dataflow> {
  const live = await cluster.mustGetDataflow(namespace, name);
  return cluster.patchDataflow(namespace, name, {
    metadata: { resourceVersion: live.metadata?.resourceVersion },
    spec: { restartNonce: (live.spec.restartNonce ?? 0) + 1 },
  });
}
