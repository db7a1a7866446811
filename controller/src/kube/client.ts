// The controller's only contact with the API server: reads for observe, writes for the
// executor. Everything here is a thin call; decisions live in reconcile/.
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  NetworkingV1Api,
  PatchStrategy,
  PolicyV1Api,
  type RequestContext,
  setHeaderOptions,
  type V1NetworkPolicy,
  type V1PersistentVolumeClaim,
  type V1Pod,
  type V1PodDisruptionBudget,
  type V1Service,
  type V1StatefulSet,
} from "@kubernetes/client-node";
import {
  API_VERSION,
  DATAFLOW_LABEL,
  type Dataflow,
  type DataflowStatus,
  GROUP,
  KIND,
  PLURAL,
  podSelectorString,
  VERSION,
} from "@waxflow/crds";
import { FIELD_MANAGER } from "../desired/objects.ts";
import { statusCode } from "../log.ts";
import type { KubeEvent, ObjectRef } from "../reconcile/reconcile.ts";

const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const metadataOnly = setHeaderOptions("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1");
const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
const serverSideApply = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

function isStatefulSet(object: KubernetesObject): object is V1StatefulSet {
  return object.apiVersion === "apps/v1" && object.kind === "StatefulSet";
}

/**
 * client-node 2.0 builds a new undici Agent, so a new connection pool, for every request
 * to a cluster with TLS settings: each request paid a TLS handshake and left an idle socket
 * behind. With 1000 Dataflows that was most of the controller's latency and memory. This
 * KubeConfig gives every request the first Agent it built. (Client certificates are
 * therefore read once; tokens are still applied per request.)
 */
export class PooledKubeConfig extends KubeConfig {
  #dispatcher: ReturnType<RequestContext["getDispatcher"]>;

  static of(kc: KubeConfig): PooledKubeConfig {
    if (kc instanceof PooledKubeConfig) return kc;
    const pooled = new PooledKubeConfig();
    pooled.loadFromOptions({
      clusters: kc.clusters,
      contexts: kc.contexts,
      users: kc.users,
      currentContext: kc.currentContext,
    });
    return pooled;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const built = context.getDispatcher();
    if (built === undefined) return;
    this.#dispatcher ??= built;
    context.setDispatcher(this.#dispatcher);
  }
}

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (statusCode(err) === 404) return undefined;
    throw err;
  }
}

export class Kube {
  readonly objects: KubernetesObjectApi;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly extensions: ApiextensionsV1Api;
  readonly networking: NetworkingV1Api;
  readonly policy: PolicyV1Api;

  constructor(kc: KubeConfig) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.extensions = kc.makeApiClient(ApiextensionsV1Api);
    this.networking = kc.makeApiClient(NetworkingV1Api);
    this.policy = kc.makeApiClient(PolicyV1Api);
  }

  async readDataflow(namespace: string, name: string): Promise<Dataflow | undefined> {
    return orUndefined(
      this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name }),
    ) as Promise<Dataflow | undefined>;
  }

  async readStatefulSet(namespace: string, name: string): Promise<V1StatefulSet | undefined> {
    return orUndefined(this.apps.readNamespacedStatefulSet({ namespace, name }));
  }

  async listPods(namespace: string, name: string): Promise<V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector: podSelectorString(name) })).items;
  }

  async listServices(namespace: string, name: string): Promise<V1Service[]> {
    const list = await this.core.listNamespacedService({ namespace, labelSelector: `${DATAFLOW_LABEL}=${name}` });
    return list.items;
  }

  /**
   * Whether a Secret or ConfigMap exists. Asks for its metadata alone, so no Secret's data
   * ever reaches the controller (RBAC still calls it get).
   */
  async exists(kind: "Secret" | "ConfigMap", namespace: string, name: string): Promise<boolean> {
    const read =
      kind === "Secret"
        ? this.core.readNamespacedSecret({ namespace, name }, metadataOnly)
        : this.core.readNamespacedConfigMap({ namespace, name }, metadataOnly);
    return (await orUndefined(read)) !== undefined;
  }

  /**
   * One key of a Secret's data. Read only for the cluster Secret of a Dataflow in savepoint
   * upgrade mode: its token is what process 0's savepoint endpoint asks for.
   */
  async secretData(namespace: string, name: string, key: string): Promise<Buffer | undefined> {
    const secret = await orUndefined(this.core.readNamespacedSecret({ namespace, name }));
    const value = secret?.data?.[key];
    return value === undefined ? undefined : Buffer.from(value, "base64");
  }

  async readNetworkPolicy(namespace: string, name: string): Promise<V1NetworkPolicy | undefined> {
    return orUndefined(this.networking.readNamespacedNetworkPolicy({ namespace, name }));
  }

  async readDisruptionBudget(namespace: string, name: string): Promise<V1PodDisruptionBudget | undefined> {
    return orUndefined(this.policy.readNamespacedPodDisruptionBudget({ namespace, name }));
  }

  async listClaims(namespace: string, name: string): Promise<V1PersistentVolumeClaim[]> {
    const list = await this.core.listNamespacedPersistentVolumeClaim({
      namespace,
      labelSelector: `${DATAFLOW_LABEL}=${name}`,
    });
    return list.items;
  }

  /** Server-side apply; with dryRun the API server validates and admits it, and stores nothing. */
  async apply<T extends KubernetesObject>(object: T, options: { dryRun?: boolean } = {}): Promise<T> {
    const dryRun = options.dryRun === true ? "All" : undefined;
    if (isStatefulSet(object)) return (await this.#applyStrict(object, dryRun)) as T;
    return this.objects.patch(object, undefined, dryRun, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  /** Creates `object` unless it exists; an existing one is left as it is. */
  async createIfAbsent<T extends KubernetesObject>(object: T): Promise<void> {
    try {
      await this.objects.create(object, undefined, undefined, FIELD_MANAGER);
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
    }
  }

  /**
   * The StatefulSet carries the user's env, resources and podTemplate, which the CRD keeps
   * as they are: strict field validation refuses a typo in them (the Dataflow turns
   * Failed with the field's path) where the default would drop it with a warning.
   */
  async #applyStrict(set: V1StatefulSet, dryRun: string | undefined): Promise<V1StatefulSet> {
    return this.apps.patchNamespacedStatefulSet(
      {
        namespace: set.metadata?.namespace ?? "",
        name: set.metadata?.name ?? "",
        body: set,
        ...(dryRun === undefined ? {} : { dryRun }),
        fieldManager: FIELD_MANAGER,
        force: true,
        fieldValidation: "Strict",
      },
      serverSideApply,
    );
  }

  /**
   * Replaces the pod template and update strategy as a whole (JSON patch), so what another
   * field manager added there goes too; server-side apply would keep it.
   */
  async replaceTemplate(set: V1StatefulSet): Promise<void> {
    await this.apps.patchNamespacedStatefulSet(
      {
        namespace: set.metadata?.namespace ?? "",
        name: set.metadata?.name ?? "",
        body: [
          { op: "replace", path: "/spec/template", value: set.spec?.template },
          { op: "replace", path: "/spec/updateStrategy", value: set.spec?.updateStrategy },
        ],
        fieldManager: FIELD_MANAGER,
      },
      jsonPatch,
    );
  }

  async scaleToZero(target: ObjectRef): Promise<void> {
    await orUndefined(
      this.apps.patchNamespacedStatefulSet(
        {
          namespace: target.namespace,
          name: target.name,
          body: { spec: { replicas: 0 } },
          fieldManager: FIELD_MANAGER,
        },
        mergePatch,
      ),
    );
  }

  async delete(target: ObjectRef, propagationPolicy: "Background" | "Orphan"): Promise<void> {
    const header = {
      apiVersion: target.apiVersion,
      kind: target.kind,
      metadata: { name: target.name, namespace: target.namespace },
    };
    await orUndefined(this.objects.delete(header, undefined, undefined, undefined, undefined, propagationPolicy));
  }

  /** PUT with the observed resourceVersion: fails with 409 when someone wrote in between. */
  async writeStatus(df: Dataflow, status: DataflowStatus): Promise<Dataflow> {
    const { name = "", namespace = "" } = df.metadata ?? {};
    return (await this.custom.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
      namespace,
      name,
      body: { ...df, status },
    })) as Dataflow;
  }

  async setFinalizers(df: Dataflow, finalizers: string[]): Promise<Dataflow> {
    const { name = "", namespace = "", resourceVersion } = df.metadata ?? {};
    return (await this.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        namespace,
        name,
        body: { metadata: { finalizers, resourceVersion } },
        fieldManager: FIELD_MANAGER,
      },
      mergePatch,
    )) as Dataflow;
  }

  async event(df: Dataflow, event: KubeEvent): Promise<void> {
    const { name = "", namespace = "", uid, resourceVersion } = df.metadata ?? {};
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${name}.`, namespace },
        involvedObject: { apiVersion: API_VERSION, kind: KIND, name, namespace, uid, resourceVersion },
        type: event.type,
        reason: event.reason,
        message: event.message.slice(0, 1024),
        source: { component: FIELD_MANAGER },
        reportingComponent: FIELD_MANAGER,
        reportingInstance: process.env.HOSTNAME ?? FIELD_MANAGER,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}
