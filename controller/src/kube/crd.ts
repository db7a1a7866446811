// The CRD is server-side applied at start-up (as uds-core does), so the schema the
// controller was built with is the schema the API server enforces.
import { setTimeout as delay } from "node:timers/promises";
import { loadYaml, type V1CustomResourceDefinition } from "@kubernetes/client-node";
import { crdManifest, isCrdEstablished } from "@waxflow/crds";
import type { Kube } from "./client.ts";

export async function installCrd(kube: Kube, timeoutMs = 30_000): Promise<void> {
  const crd = crdManifest();
  // client-node serializes by its typed models (`default` is `_default` there): load the
  // plain JSON into the model first or the apply silently drops defaults and CEL rules.
  await kube.apply(loadYaml<V1CustomResourceDefinition>(JSON.stringify(crd)));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const live = await kube.extensions.readCustomResourceDefinition({ name: crd.metadata.name });
    if (isCrdEstablished(live)) return;
    await delay(100);
  }
  throw new Error(`CRD ${crd.metadata.name} not established after ${timeoutMs} ms`);
}
