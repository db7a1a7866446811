// The pod template guard's controller half. The CRD's rules refuse a privileged pod
// template unless spec.allowPrivileged is set; whether the operator allows that at all is
// an operator-wide setting that only the controller knows, so it checks here, with the
// same fields and words (PRIVILEGED_FIELDS).
import type { V1Container, V1PodTemplateSpec } from "@kubernetes/client-node";
import { CONTAINER_LISTS, PRIVILEGED_FIELDS } from "@waxflow/crds";

function containerFindings(list: string, c: V1Container): string[] {
  const at = `spec.podTemplate.spec.${list}[name=${c.name}]`;
  const sc = c.securityContext;
  const found: (keyof typeof PRIVILEGED_FIELDS)[] = [];
  if (sc?.privileged === true) found.push("securityContext.privileged");
  if (sc?.allowPrivilegeEscalation === true) found.push("securityContext.allowPrivilegeEscalation");
  if ((sc?.capabilities?.add ?? []).length > 0) found.push("securityContext.capabilities.add");
  return found.map((field) => `${at}.${field}: ${PRIVILEGED_FIELDS[field]}`);
}

/** Each field of the template that reaches onto the node, with why; empty when there is none. */
export function privilegedFields(template: V1PodTemplateSpec | undefined): string[] {
  const spec = template?.spec;
  if (spec === undefined) return [];
  const hosts = (["hostNetwork", "hostPID", "hostIPC"] as const)
    .filter((field) => spec[field] === true)
    .map((field) => `spec.podTemplate.spec.${field}: ${PRIVILEGED_FIELDS[field]}`);
  const containers = CONTAINER_LISTS.flatMap((list) =>
    ((spec[list] ?? []) as V1Container[]).flatMap((c) => containerFindings(list, c)),
  );
  const volumes = (spec.volumes ?? [])
    .filter((v) => v.hostPath !== undefined)
    .map((v) => `spec.podTemplate.spec.volumes[name=${v.name}].hostPath: ${PRIVILEGED_FIELDS.hostPath}`);
  return [...hosts, ...containers, ...volumes];
}

/**
 * Throws, naming every field, when the template asks for what the operator does not allow.
 * With spec.allowPrivileged unset the CRD has refused these already; this covers the rest
 * (and a CRD installed without its rules).
 */
export function guardPodTemplate(
  template: V1PodTemplateSpec | undefined,
  allowPrivileged: boolean | undefined,
  operatorAllows: boolean,
): void {
  if (allowPrivileged === true && operatorAllows) return;
  const fields = privilegedFields(template);
  if (fields.length === 0) return;
  const why =
    allowPrivileged === true
      ? "this operator does not allow privileged Dataflows (chart value allowPrivilegedDataflows, waxctl install --allow-privileged-dataflows)"
      : "set spec.allowPrivileged if the operator allows privileged Dataflows";
  throw new Error(`${fields.join("; ")}; ${why}`);
}
