// The chart's pre-delete hook: `helm uninstall` is refused while Dataflows exist, because
// a Dataflow with recovery volumes carries a finalizer that only a running controller
// removes; deleted after the controller, it would hang.
import { CustomObjectsApi, type KubeConfig } from "@kubernetes/client-node";
import { type Dataflow, GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { log } from "./log.ts";

/** `namespace/name` of every Dataflow the controller manages (in `namespaces`, or all when empty). */
export async function managedDataflows(kc: KubeConfig, namespaces: readonly string[]): Promise<string[]> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const lists =
    namespaces.length === 0
      ? [await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })]
      : await Promise.all(
          namespaces.map((namespace) =>
            api.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace }),
          ),
        );
  return lists
    .flatMap((list) => (list as { items: Dataflow[] }).items)
    .map((df) => `${df.metadata?.namespace}/${df.metadata?.name}`)
    .sort();
}

/** Exit code of the hook: 0 when no Dataflow is left, 1 (naming them) otherwise. */
export async function uninstallCheck(kc: KubeConfig, namespaces: readonly string[]): Promise<number> {
  const left = await managedDataflows(kc, namespaces);
  if (left.length === 0) {
    log("info", "no Dataflows left: the operator may be uninstalled");
    return 0;
  }
  log(
    "error",
    `uninstall refused: ${left.length} Dataflow(s) still exist (${left.join(", ")}); delete them first (kubectl delete dataflows --all -n NAMESPACE) while the controller runs, or uninstall with --no-hooks and clear their finalizers yourself`,
    { dataflows: left },
  );
  return 1;
}
