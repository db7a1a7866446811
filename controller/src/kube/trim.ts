// What the watch caches keep of each object: the fields reconcile() and the work queue
// read, nothing more. managedFields, pod specs and foreign annotations made up most of a
// cached object; with 1000 Dataflows they were most of the controller's heap.
import type { KubernetesObject, V1ObjectMeta, V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import { DATAFLOW_LABEL } from "@waxflow/crds";

/** The object without its undefined fields, so a trimmed object equals one read in full and trimmed again. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function ours(annotations: Record<string, string> | undefined): Record<string, string> | undefined {
  if (annotations === undefined) return undefined;
  return Object.fromEntries(Object.entries(annotations).filter(([k]) => k.startsWith("waxflow.io/")));
}

function metadata(m: V1ObjectMeta | undefined): V1ObjectMeta {
  return defined({
    name: m?.name,
    namespace: m?.namespace,
    labels: m?.labels,
    annotations: ours(m?.annotations),
    generation: m?.generation,
    resourceVersion: m?.resourceVersion,
    deletionTimestamp: m?.deletionTimestamp,
    finalizers: m?.finalizers,
  });
}

const header = (obj: KubernetesObject) => defined({ apiVersion: obj.apiVersion, kind: obj.kind });

/** Claims and Services: reconcile reads their names, deletion and our annotations. */
export function trimToMetadata(obj: KubernetesObject): KubernetesObject {
  return { ...header(obj), metadata: metadata(obj.metadata) };
}

/** Dataflows: reconcile reads all of one but the field managers' bookkeeping. */
export function withoutManagedFields(obj: KubernetesObject): KubernetesObject {
  const { managedFields: _, ...rest } = obj.metadata ?? {};
  return { ...obj, metadata: rest };
}

export function trimStatefulSet(sts: V1StatefulSet): V1StatefulSet {
  const s = sts.spec;
  return {
    ...header(sts),
    metadata: metadata(sts.metadata),
    ...(s === undefined
      ? {}
      : {
          spec: defined({
            replicas: s.replicas,
            serviceName: s.serviceName,
            podManagementPolicy: s.podManagementPolicy,
            selector: s.selector,
            // Whole: reconcile compares what it set there with what runs (template drift).
            template: s.template,
            updateStrategy: s.updateStrategy,
            volumeClaimTemplates: s.volumeClaimTemplates?.map((c) => ({
              metadata: { name: c.metadata?.name },
              spec: c.spec,
            })),
          }),
        }),
    ...(sts.status === undefined
      ? {}
      : { status: defined({ observedGeneration: sts.status.observedGeneration, replicas: sts.status.replicas }) }),
  };
}

export function trimPod(pod: V1Pod): V1Pod {
  const st = pod.status;
  return {
    ...header(pod),
    // The UID tells a pod from its replacement of the same name (status.failures).
    metadata: defined({ ...metadata(pod.metadata), uid: pod.metadata?.uid }),
    spec: { containers: (pod.spec?.containers ?? []).map((c) => defined({ name: c.name, image: c.image })) },
    ...(st === undefined
      ? {}
      : {
          status: defined({
            phase: st.phase,
            startTime: st.startTime,
            conditions: st.conditions,
            containerStatuses: st.containerStatuses,
          }),
        }),
  };
}

/** The work queue key of the Dataflow an owned object belongs to. */
export function ownerKeyOf(obj: KubernetesObject): string | undefined {
  const name = obj.metadata?.labels?.[DATAFLOW_LABEL];
  return name === undefined ? undefined : `${obj.metadata?.namespace ?? ""}/${name}`;
}
