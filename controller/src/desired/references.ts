// The Secrets and ConfigMaps a pod template needs before its containers can start: a pure
// function of the pod spec. A missing one leaves a pod in CreateContainerConfigError (env)
// or ContainerCreating (a volume) with no end; the reconciler names it.
import type { V1Container, V1PodSpec } from "@kubernetes/client-node";

export interface Reference {
  readonly kind: "Secret" | "ConfigMap";
  readonly name: string;
  /** Where the template uses it, as a reader finds it in the spec: `env DB_PASSWORD`, `volume creds`. */
  readonly where: string;
}

function containerReferences(c: V1Container): Reference[] {
  const out: Reference[] = [];
  for (const env of c.env ?? []) {
    const secret = env.valueFrom?.secretKeyRef;
    const map = env.valueFrom?.configMapKeyRef;
    if (secret?.name && secret.optional !== true)
      out.push({ kind: "Secret", name: secret.name, where: `env ${env.name}` });
    if (map?.name && map.optional !== true) out.push({ kind: "ConfigMap", name: map.name, where: `env ${env.name}` });
  }
  for (const from of c.envFrom ?? []) {
    if (from.secretRef?.name && from.secretRef.optional !== true)
      out.push({ kind: "Secret", name: from.secretRef.name, where: "envFrom" });
    if (from.configMapRef?.name && from.configMapRef.optional !== true)
      out.push({ kind: "ConfigMap", name: from.configMapRef.name, where: "envFrom" });
  }
  return out.map((r) => ({ ...r, where: `${r.where} of container ${c.name}` }));
}

/** Every non-optional Secret and ConfigMap `spec` refers to, once each (first use), except those named in `skip`. */
export function referencesOf(spec: V1PodSpec | undefined, skip: readonly string[] = []): Reference[] {
  if (spec === undefined) return [];
  const out: Reference[] = [...(spec.initContainers ?? []), ...spec.containers].flatMap(containerReferences);
  for (const v of spec.volumes ?? []) {
    if (v.secret?.secretName && v.secret.optional !== true)
      out.push({ kind: "Secret", name: v.secret.secretName, where: `volume ${v.name}` });
    if (v.configMap?.name && v.configMap.optional !== true)
      out.push({ kind: "ConfigMap", name: v.configMap.name, where: `volume ${v.name}` });
    for (const source of v.projected?.sources ?? []) {
      if (source.secret?.name && source.secret.optional !== true)
        out.push({ kind: "Secret", name: source.secret.name, where: `volume ${v.name}` });
      if (source.configMap?.name && source.configMap.optional !== true)
        out.push({ kind: "ConfigMap", name: source.configMap.name, where: `volume ${v.name}` });
    }
  }
  const seen = new Set<string>();
  return out.filter((r) => {
    const key = `${r.kind}/${r.name}`;
    if (seen.has(key) || (r.kind === "Secret" && skip.includes(r.name))) return false;
    seen.add(key);
    return true;
  });
}
