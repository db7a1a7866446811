// Applies and removes the install manifests: the thin shell around manifests.ts.
import { homedir } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
  RbacAuthorizationV1Api,
} from "@kubernetes/client-node";
import { apiStatus, CRD_NAME, GROUP, isCrdEstablished, PLURAL, VERSION } from "@waxflow/crds";
import { UserError } from "../errors.ts";
import { type ClusterFlags, FIELD_MANAGER, failureLine, loadKubeConfig } from "../kube.ts";
import { CONTROLLER, header, INSTALLED_BY, type InstallOptions, installManifests } from "./manifests.ts";

export interface ObjectResult {
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly result: "created" | "configured" | "unchanged" | "deleted" | "absent" | "kept";
}

export function describeObject(o: KubernetesObject): string {
  const { name = "", namespace } = o.metadata ?? {};
  return `${o.kind}/${name}${namespace === undefined ? "" : ` in ${namespace}`}`;
}

const statusCode = (err: unknown) => apiStatus(err)?.code;

/** client-node serializes by its typed models: load plain JSON into them first, or `default` in the CRD is dropped. */
function typed(o: KubernetesObject): KubernetesObject {
  return loadYaml<KubernetesObject>(JSON.stringify(o));
}

/** The Installer for the cluster the flags name. */
export async function installerFor(flags: ClusterFlags): Promise<Installer> {
  const kc = await loadKubeConfig(flags, process.env, homedir());
  if (kc === undefined) throw new UserError("no kubeconfig found; pass --kubeconfig PATH or set KUBECONFIG");
  return new Installer(kc);
}

export class Installer {
  readonly #kc: KubeConfig;
  readonly #objects: KubernetesObjectApi;
  readonly server: string;
  readonly context: string;

  constructor(kc: KubeConfig) {
    this.#kc = kc;
    this.#objects = KubernetesObjectApi.makeApiClient(kc);
    this.server = kc.getCurrentCluster()?.server ?? "(no server)";
    this.context = kc.getCurrentContext();
  }

  async #call<T>(what: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw new UserError(failureLine(err, what, this));
    }
  }

  async #read(o: KubernetesObject): Promise<KubernetesObject | undefined> {
    try {
      const { name = "", namespace } = o.metadata ?? {};
      return await this.#objects.read({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name, namespace } });
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw err;
    }
  }

  /** Server-side apply of every object; the namespace is only created, never taken over. */
  async install(options: InstallOptions, onObject: (r: ObjectResult) => void): Promise<ObjectResult[]> {
    for (const name of options.watchNamespaces) {
      const found = await this.#call(`read Namespace/${name}`, () =>
        this.#read({ apiVersion: "v1", kind: "Namespace", metadata: { name } }),
      );
      if (found === undefined) throw new UserError(`--watch-namespace ${name}: no such namespace; create it first`);
    }
    const results: ObjectResult[] = [];
    for (const object of installManifests(options)) {
      const what = describeObject(object);
      const result = await this.#call(`apply ${what}`, async () => {
        const before = await this.#read(object);
        if (object.kind === "Namespace") {
          if (before === undefined) await this.#objects.create(typed(object), undefined, undefined, FIELD_MANAGER);
          return before === undefined ? "created" : "unchanged";
        }
        const after = await this.#objects.patch(
          typed(object),
          undefined,
          undefined,
          FIELD_MANAGER,
          true,
          PatchStrategy.ServerSideApply,
        );
        if (before === undefined) return "created";
        return before.metadata?.resourceVersion === after.metadata?.resourceVersion ? "unchanged" : "configured";
      });
      if (object.kind === "CustomResourceDefinition") await this.#established();
      const r = { ...ref(object), result } satisfies ObjectResult;
      onObject(r);
      results.push(r);
    }
    return results;
  }

  async #established(timeoutMs = 30_000): Promise<void> {
    const api = this.#kc.makeApiClient(ApiextensionsV1Api);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const crd = await this.#call(`read ${CRD_NAME}`, () => api.readCustomResourceDefinition({ name: CRD_NAME }));
      if (isCrdEstablished(crd)) return;
      await delay(100);
    }
    throw new UserError(
      `CRD ${CRD_NAME} not established after ${timeoutMs / 1000} s; see kubectl describe crd ${CRD_NAME}`,
    );
  }

  /** Waits for the controller Deployment to be Available; the error names what the pods say. */
  async waitAvailable(namespace: string, timeoutMs: number): Promise<void> {
    const apps = this.#kc.makeApiClient(AppsV1Api);
    const deadline = Date.now() + timeoutMs;
    let message = "no status yet";
    while (Date.now() < deadline) {
      const d = await this.#call(`read Deployment/${CONTROLLER}`, () =>
        apps.readNamespacedDeployment({ namespace, name: CONTROLLER }),
      );
      const available = d.status?.conditions?.find((c) => c.type === "Available");
      if (available?.status === "True") return;
      const progressing = d.status?.conditions?.find((c) => c.type === "Progressing");
      message = [available?.message, progressing?.message].filter((m) => m).join("; ") || message;
      await delay(500);
    }
    throw new UserError(
      `the controller is not available after ${timeoutMs / 1000} s (${message}); see kubectl -n ${namespace} describe pods -l app.kubernetes.io/component=controller`,
    );
  }

  /** Every Dataflow in the cluster; undefined without the CRD. */
  async dataflows(): Promise<KubernetesObject[] | undefined> {
    const custom = this.#kc.makeApiClient(CustomObjectsApi);
    const list = await this.#call("list Dataflows", () =>
      custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }).catch((err: unknown) => {
        if (statusCode(err) === 404) return undefined;
        throw err;
      }),
    );
    return (list as { items: KubernetesObject[] } | undefined)?.items;
  }

  /** RoleBindings `waxctl install` made, in whatever namespaces it was told to watch. */
  async installedRoleBindings(): Promise<KubernetesObject[]> {
    const rbac = this.#kc.makeApiClient(RbacAuthorizationV1Api);
    const labelSelector = Object.entries(INSTALLED_BY)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    const list = await this.#call("list RoleBindings", () => rbac.listRoleBindingForAllNamespaces({ labelSelector }));
    return list.items.map((b) => ({ ...b, apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding" }));
  }

  /** Deletes every Dataflow and waits until their finalizers (the controller) have let them go. */
  async deleteDataflows(timeoutMs: number): Promise<void> {
    for (const df of (await this.dataflows()) ?? []) {
      await this.#delete(header({ ...df, apiVersion: `${GROUP}/${VERSION}`, kind: "Dataflow" }));
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = (await this.dataflows()) ?? [];
      if (left.length === 0) return;
      if (Date.now() > deadline) {
        throw new UserError(
          `${left.length} Dataflows are still terminating after ${timeoutMs / 1000} s: their finalizers wait for the controller, which is still installed; check it runs (kubectl get df -A), then uninstall again`,
        );
      }
      await delay(500);
    }
  }

  async #delete(object: KubernetesObject): Promise<ObjectResult["result"]> {
    return this.#call(`delete ${describeObject(object)}`, async () => {
      try {
        await this.#objects.delete(object, undefined, undefined, undefined, undefined, "Background");
        return "deleted";
      } catch (err) {
        if (statusCode(err) === 404) return "absent";
        throw err;
      }
    });
  }

  async uninstall(objects: KubernetesObject[], onObject: (r: ObjectResult) => void): Promise<ObjectResult[]> {
    const results: ObjectResult[] = [];
    for (const object of objects) {
      const r = { ...ref(object), result: await this.#delete(object) } satisfies ObjectResult;
      onObject(r);
      results.push(r);
    }
    return results;
  }
}

function ref(o: KubernetesObject): Omit<ObjectResult, "result"> {
  const { name = "", namespace } = o.metadata ?? {};
  return { kind: o.kind ?? "", name, ...(namespace === undefined ? {} : { namespace }) };
}
