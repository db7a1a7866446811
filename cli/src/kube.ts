// Which kubeconfig, context and namespace a command uses, resolved as kubectl does:
// --kubeconfig, else $KUBECONFIG (a list of files, merged), else ~/.kube/config; and the
// cluster calls the df commands make, each failure turned into one line with a next step.

import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import type { Writable } from "node:stream";
import type { CoreV1Event, KubeConfig, V1Deployment, V1Pod } from "@kubernetes/client-node";
import {
  API_PORT,
  API_VERSION,
  apiStatus,
  CONTAINER,
  DATAFLOW_LABEL,
  type Dataflow,
  GROUP,
  PLURAL,
  podSelectorString,
  VERSION,
} from "@waxflow/crds";
import { networkReason } from "@waxflow/oci";
import { namespaceName } from "./deploy/options.ts";
import { UsageError, UserError } from "./errors.ts";

/** The most of a process's answer (a page of /state, /metrics) waxctl holds: a page of 1000 large values fits. */
export const MAX_POD_ANSWER_CHARS = 32 * 1024 * 1024;
export interface ClusterFlags {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace?: string;
}

/** The kubeconfig files the flags and environment name, in merge order; none when there is none. */
function kubeconfigFiles(
  flags: ClusterFlags,
  env: Readonly<Record<string, string | undefined>>,
  home: string,
): string[] {
  const files =
    flags.kubeconfig !== undefined
      ? [flags.kubeconfig]
      : env.KUBECONFIG
        ? env.KUBECONFIG.split(delimiter).filter((f) => f !== "")
        : [join(home, ".kube", "config")].filter((f) => existsSync(f));
  const missing = files.find((f) => !existsSync(f));
  if (missing !== undefined) {
    const source = flags.kubeconfig !== undefined ? "--kubeconfig" : "$KUBECONFIG";
    throw new UsageError(`${source} names ${missing}, which does not exist; point it at your cluster's kubeconfig`);
  }
  if (files.length === 0 && flags.context !== undefined) {
    throw new UsageError(`--context ${flags.context}: no kubeconfig found; pass --kubeconfig PATH or set KUBECONFIG`);
  }
  return files;
}

/**
 * The kubeconfig the flags and environment name; undefined when there is none at all.
 * The Kubernetes client is imported only here: loading it costs most of a second, which
 * `--help` and a dry run need not pay.
 */
export async function loadKubeConfig(
  flags: ClusterFlags,
  env: Readonly<Record<string, string | undefined>>,
  home: string,
): Promise<KubeConfig | undefined> {
  const files = kubeconfigFiles(flags, env, home);
  if (files.length === 0) return undefined;
  const { KubeConfig } = await import("@kubernetes/client-node");
  const source = flags.kubeconfig !== undefined ? "--kubeconfig" : env.KUBECONFIG ? "$KUBECONFIG" : "~/.kube/config";
  const read = (file: string): KubeConfig => {
    const config = new KubeConfig();
    try {
      config.loadFromFile(file);
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)).split("\n")[0];
      throw new UsageError(
        `${source} names ${file}, which is not a valid kubeconfig (${reason}); point it at your cluster's`,
      );
    }
    return config;
  };
  const [first, ...rest] = files as [string, ...string[]];
  const config = read(first);
  for (const file of rest) config.mergeConfig(read(file));
  const known = () =>
    config
      .getContexts()
      .map((c) => c.name)
      .join(", ") || "(none)";
  if (flags.context !== undefined) {
    if (config.getContextObject(flags.context) === null) {
      throw new UsageError(`--context ${flags.context} is not in the kubeconfig; known contexts: ${known()}`);
    }
    config.setCurrentContext(flags.context);
  }
  if (config.getCurrentCluster() === null) {
    const context = config.getCurrentContext();
    const problem =
      config.getContexts().length === 0
        ? "has no contexts"
        : context
          ? `names no cluster for context ${context}`
          : "has no current context";
    throw new UsageError(
      `the kubeconfig (${files.join(", ")}) ${problem}; choose a context with --context (known: ${known()}) or point --kubeconfig at your cluster's`,
    );
  }
  return config;
}

/** -n, else the current context's namespace, else `default`, as kubectl picks it. */
export function targetNamespace(flags: ClusterFlags, config: KubeConfig | undefined): string {
  if (flags.namespace !== undefined) return namespaceName("-n/--namespace", flags.namespace);
  return config?.getContextObject(config.getCurrentContext())?.namespace ?? "default";
}

/** The contract's field manager for everything waxctl writes. */
export const FIELD_MANAGER = "waxctl";

type K8s = typeof import("@kubernetes/client-node");

export interface Connection {
  readonly cluster: Cluster;
  readonly namespace: string;
}

/** The cluster the flags name, checked to be reachable and to serve Dataflows. */
export async function connect(
  flags: ClusterFlags,
  env: Readonly<Record<string, string | undefined>> = process.env,
  home: string = homedir(),
): Promise<Connection> {
  const config = await loadKubeConfig(flags, env, home);
  if (config === undefined) {
    throw new UserError(
      "no kubeconfig found (no --kubeconfig, no $KUBECONFIG, no ~/.kube/config); point --kubeconfig at your cluster's, or create a cluster (kind create cluster writes one)",
    );
  }
  const namespace = targetNamespace(flags, config);
  const cluster = new Cluster(await import("@kubernetes/client-node"), config);
  await cluster.requireDataflowApi();
  return { cluster, namespace };
}

interface ErrorWhere {
  readonly server: string;
  readonly context: string;
}

/** One line for a failed API call: what failed, why, and what to do about it. */
export function failureLine(err: unknown, what: string, where: ErrorWhere): string {
  const status = apiStatus(err);
  if (status === undefined) {
    const reason = networkReason(err);
    return `cannot reach the cluster at ${where.server} (context ${where.context}): ${reason}; check that it is running, or choose another with --context or --kubeconfig`;
  }
  if (status.code === 401) {
    return `the cluster at ${where.server} rejected the credentials of context ${where.context} (401 Unauthorized); log in again or choose another context with --context`;
  }
  if (status.code === 403) {
    return `${what}: ${status.message}; ask the cluster's admin for access, or choose another context with --context`;
  }
  return `${what}: ${status.message}`;
}

/**
 * The API calls waxctl makes, each turned into one line the user can act on when it fails.
 * Reads return undefined for what does not exist; writes to Dataflows carry the contract's
 * field manager.
 */
export class Cluster {
  readonly server: string;
  readonly context: string;
  readonly #k8s: K8s;
  readonly #config: KubeConfig;
  readonly #custom: InstanceType<K8s["CustomObjectsApi"]>;
  readonly #core: InstanceType<K8s["CoreV1Api"]>;
  readonly #apps: InstanceType<K8s["AppsV1Api"]>;

  constructor(k8s: K8s, config: KubeConfig) {
    this.#k8s = k8s;
    this.#config = config;
    this.server = config.getCurrentCluster()?.server ?? "(no server)";
    this.context = config.getCurrentContext();
    this.#custom = config.makeApiClient(k8s.CustomObjectsApi);
    this.#core = config.makeApiClient(k8s.CoreV1Api);
    this.#apps = config.makeApiClient(k8s.AppsV1Api);
  }

  async #call<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      throw new UserError(failureLine(err, what, this));
    }
  }

  async #orUndefined<T>(what: string, request: () => Promise<T>): Promise<T | undefined> {
    try {
      return await request();
    } catch (err) {
      if (apiStatus(err)?.code === 404) return undefined;
      throw new UserError(failureLine(err, what, this));
    }
  }

  #headers(contentType: string) {
    return this.#k8s.setHeaderOptions("Content-Type", contentType);
  }

  /** Discovery, which every user may read: the cheapest call that proves both reachability and the CRD. */
  async requireDataflowApi(): Promise<void> {
    const resources = await this.#orUndefined(`reading the ${API_VERSION} API`, () =>
      this.#custom.getAPIResources({ group: GROUP, version: VERSION }),
    );
    if (!resources?.resources.some((r) => r.name === PLURAL)) {
      throw new UserError(
        `the Dataflow CRD is not installed in this cluster (context ${this.context}); run \`waxctl install\``,
      );
    }
  }

  async getDataflow(namespace: string, name: string): Promise<Dataflow | undefined> {
    return this.#orUndefined(`reading dataflow ${name}`, () =>
      this.#custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name }),
    ) as Promise<Dataflow | undefined>;
  }

  async mustGetDataflow(namespace: string, name: string): Promise<Dataflow> {
    const df = await this.getDataflow(namespace, name);
    if (df === undefined) throw notFound(namespace, name);
    return df;
  }

  /** Every Dataflow in the namespace, or in all namespaces when it is undefined. */
  async listDataflows(namespace: string | undefined): Promise<Dataflow[]> {
    const list = (await this.#call("listing dataflows", () =>
      namespace === undefined
        ? this.#custom.listCustomObjectForAllNamespaces({ group: GROUP, version: VERSION, resourcePlural: PLURAL })
        : this.#custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace }),
    )) as { items: Dataflow[] };
    return list.items;
  }

  /** Server-side apply as the `waxctl` field manager; `dryRun` returns what would be stored. */
  async applyDataflow(df: Dataflow, dryRun: boolean): Promise<Dataflow> {
    const { name = "", namespace = "" } = df.metadata ?? {};
    try {
      return (await this.#custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace,
          name,
          body: df,
          fieldManager: FIELD_MANAGER,
          // The user's deploy states what they want: take over fields a scale or an edit set.
          force: true,
          dryRun: dryRun ? "All" : undefined,
        },
        this.#headers(this.#k8s.PatchStrategy.ServerSideApply),
      )) as Dataflow;
    } catch (err) {
      const status = apiStatus(err);
      if (status?.code === 404 && /namespaces? .*not found/.test(status.message)) {
        throw new UserError(
          `namespace ${namespace} does not exist; add --create-namespace, or choose another with -n/--namespace`,
        );
      }
      throw new UserError(failureLine(err, `the API server rejected dataflow ${name}`, this));
    }
  }

  /**
   * A JSON merge patch as the `waxctl` field manager. Not an apply: fields set this way
   * (state, restartNonce) stay when a later deploy applies a spec that leaves them out.
   */
  async patchDataflow(namespace: string, name: string, patch: Record<string, unknown>): Promise<Dataflow> {
    try {
      return (await this.#custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: patch, fieldManager: FIELD_MANAGER },
        this.#headers(this.#k8s.PatchStrategy.MergePatch),
      )) as Dataflow;
    } catch (err) {
      const status = apiStatus(err);
      if (status?.code === 404) throw notFound(namespace, name);
      if (status?.code === 409) {
        throw new UserError(`dataflow ${name} changed while waxctl was updating it; run the command again`);
      }
      throw new UserError(failureLine(err, `the API server rejected the change to dataflow ${name}`, this));
    }
  }

  /** Through the scale subresource, as `kubectl scale` and autoscalers do. */
  async scaleDataflow(namespace: string, name: string, processes: number): Promise<void> {
    try {
      await this.#custom.patchNamespacedCustomObjectScale(
        {
          group: GROUP,
          version: VERSION,
          plural: PLURAL,
          namespace,
          name,
          body: { spec: { replicas: processes } },
          fieldManager: FIELD_MANAGER,
        },
        this.#headers(this.#k8s.PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (apiStatus(err)?.code === 404) throw notFound(namespace, name);
      throw new UserError(failureLine(err, `the API server rejected scaling dataflow ${name}`, this));
    }
  }

  async deleteDataflow(namespace: string, name: string): Promise<void> {
    const gone = await this.#orUndefined(`deleting dataflow ${name}`, () =>
      this.#custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name }),
    );
    if (gone === undefined) throw notFound(namespace, name);
  }

  /** The keys of a Secret (never its values); undefined when it does not exist. */
  async secretKeys(namespace: string, name: string): Promise<string[] | undefined> {
    const secret = await this.#orUndefined(`reading Secret ${name} in namespace ${namespace}`, () =>
      this.#core.readNamespacedSecret({ name, namespace }),
    );
    return secret === undefined
      ? undefined
      : [...Object.keys(secret.data ?? {}), ...Object.keys(secret.stringData ?? {})];
  }

  /** True when the namespace was created, false when it already existed. */
  async ensureNamespace(name: string): Promise<boolean> {
    const existing = await this.#orUndefined(`reading namespace ${name}`, () => this.#core.readNamespace({ name }));
    if (existing !== undefined) return false;
    await this.#call(`creating namespace ${name}`, () =>
      this.#core.createNamespace({ body: { metadata: { name } }, fieldManager: FIELD_MANAGER }),
    );
    return true;
  }

  async deleteNamespace(name: string): Promise<void> {
    await this.#orUndefined(`deleting namespace ${name}`, () => this.#core.deleteNamespace({ name }));
  }

  /** The Dataflow's processes (pods), oldest ordinal first; not the operator's pre-flight pod of an image change. */
  async pods(namespace: string, name: string): Promise<V1Pod[]> {
    const labelSelector = podSelectorString(name);
    const list = await this.#call(`listing the pods of dataflow ${name}`, () =>
      this.#core.listNamespacedPod({ namespace, labelSelector }),
    );
    return list.items.sort((a, b) => podOrder(a) - podOrder(b));
  }

  /** Objects the controller made for the Dataflow, as `kind/name`, in the order they matter to a user. */
  async owned(namespace: string, name: string): Promise<{ objects: string[]; volumes: string[] }> {
    const labelSelector = `${DATAFLOW_LABEL}=${name}`;
    const what = `listing the objects of dataflow ${name}`;
    const [sets, services, pods, claims] = await Promise.all([
      this.#call(what, () => this.#apps.listNamespacedStatefulSet({ namespace, labelSelector })),
      this.#call(what, () => this.#core.listNamespacedService({ namespace, labelSelector })),
      this.pods(namespace, name),
      this.#call(what, () => this.#core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector })),
    ]);
    const named = (kind: string, items: readonly { metadata?: { name?: string } }[]) =>
      items.map((o) => `${kind}/${o.metadata?.name ?? "?"}`);
    return {
      objects: [...named("statefulset", sets.items), ...named("service", services.items), ...named("pod", pods)],
      volumes: named("persistentvolumeclaim", claims.items),
    };
  }

  /** A process's /status (runtime/src/api/server.ts), through the API server's proxy to the pod's `api` port. */
  processStatus(namespace: string, pod: V1Pod): Promise<unknown> {
    return this.processApi(namespace, pod, "status");
  }

  /** A JSON answer of a process's HTTP API (`status`, `steps`), through the API server's proxy to the pod's `api` port. */
  async processApi(namespace: string, pod: V1Pod, path: string): Promise<unknown> {
    const body = await this.#processAnswer(namespace, pod, path);
    // The client parses a JSON answer itself, or hands back its text.
    return typeof body === "string" ? JSON.parse(body) : body;
  }

  /** A text answer of a process's HTTP API (`metrics`), through the same proxy. */
  async processText(namespace: string, pod: V1Pod, path: string): Promise<string> {
    const body = await this.#processAnswer(namespace, pod, path);
    return typeof body === "string" ? body : JSON.stringify(body);
  }

  async #processAnswer(namespace: string, pod: V1Pod, path: string): Promise<unknown> {
    const name = pod.metadata?.name ?? "";
    const container = pod.spec?.containers.find((c) => c.name === CONTAINER);
    const port = container?.ports?.find((p) => p.name === "api")?.containerPort ?? API_PORT;
    return this.#call(`reading /${path} of pod ${name}`, () =>
      this.#core.connectGetNamespacedPodProxyWithPath({ namespace, name: `${name}:${port}`, path }),
    );
  }

  /**
   * The metrics.k8s.io PodMetrics of the Dataflow's pods (what metrics-server measured);
   * undefined when the cluster does not serve that API or this user may not read it, so
   * the caller falls back to the processes' own figures.
   */
  async podMetrics(namespace: string, name: string): Promise<unknown[] | undefined> {
    try {
      const list = (await this.#custom.listNamespacedCustomObject({
        group: "metrics.k8s.io",
        version: "v1beta1",
        namespace,
        plural: "pods",
        labelSelector: `${DATAFLOW_LABEL}=${name}`,
      })) as { items?: unknown };
      return Array.isArray(list.items) ? list.items : undefined;
    } catch (err) {
      if (apiStatus(err) !== undefined) return undefined;
      throw new UserError(failureLine(err, `reading the metrics of dataflow ${name}'s pods`, this));
    }
  }

  /** The bytes of one key of a Secret; undefined when the Secret or the key does not exist. */
  async secretValue(namespace: string, name: string, key: string): Promise<Buffer | undefined> {
    const secret = await this.#orUndefined(`reading Secret ${name} in namespace ${namespace}`, () =>
      this.#core.readNamespacedSecret({ name, namespace }),
    );
    const data = secret?.data?.[key];
    return data === undefined ? undefined : Buffer.from(data, "base64");
  }

  /**
   * A request to a process's HTTP API through the API server's pod proxy (GET unless
   * `send` says otherwise, with its JSON body), with `headers` passed on to the process;
   * its status and body whatever the status (the process's one-line answers are the
   * user's to read). `pathAndQuery` is below the API root.
   */
  async processRequest(
    namespace: string,
    pod: V1Pod,
    pathAndQuery: string,
    headers: Readonly<Record<string, string>>,
    send: ProxySend = {},
  ): Promise<{ status: number; body: string }> {
    const name = pod.metadata?.name ?? "";
    const options: import("node:https").RequestOptions = proxyRequestOptions(
      this.server,
      namespace,
      pod,
      pathAndQuery,
      headers,
      send,
    );
    const base = new URL(this.server);
    const what = `asking pod ${name} through the API server's pod proxy`;
    try {
      await this.#config.applyToHTTPSOptions(options);
      const { request } = base.protocol === "https:" ? await import("node:https") : await import("node:http");
      return await new Promise((resolve, reject) => {
        const req = request(options, (res: import("node:http").IncomingMessage) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            body += chunk;
            // The pod runs the dataflow's code: its answer is read only up to a bound.
            if (body.length > MAX_POD_ANSWER_CHARS) {
              req.destroy(new Error(`pod ${name} answered with more than ${MAX_POD_ANSWER_CHARS} characters`));
            }
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end(send.body);
      });
    } catch (err) {
      throw new UserError(failureLine(err, what, this));
    }
  }

  /** Deletes the Dataflow's recovery volumes (PersistentVolumeClaims by its label); returns them as `persistentvolumeclaim/<name>`. */
  async deleteVolumes(namespace: string, name: string): Promise<string[]> {
    const labelSelector = `${DATAFLOW_LABEL}=${name}`;
    const claims = await this.#call(`listing the recovery volumes of dataflow ${name}`, () =>
      this.#core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector }),
    );
    const names = claims.items.map((c) => c.metadata?.name ?? "");
    for (const claim of names) {
      await this.#orUndefined(`deleting persistentvolumeclaim ${claim}`, () =>
        this.#core.deleteNamespacedPersistentVolumeClaim({ namespace, name: claim }),
      );
    }
    return names.map((n) => `persistentvolumeclaim/${n}`);
  }

  /** Events about one object, oldest first. */
  async events(namespace: string, kind: string, name: string): Promise<CoreV1Event[]> {
    const list = await this.#call(`reading the events of ${kind.toLowerCase()} ${name}`, () =>
      this.#core.listNamespacedEvent({
        namespace,
        fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
      }),
    );
    return list.items.sort((a, b) => eventTime(a) - eventTime(b));
  }

  /** The last lines the dataflow container wrote; undefined when it has not started yet. */
  async podLog(namespace: string, pod: string, tailLines?: number): Promise<string | undefined> {
    try {
      return await this.#core.readNamespacedPodLog({ namespace, name: pod, container: CONTAINER, tailLines });
    } catch (err) {
      if (apiStatus(err)?.code === 400) return undefined;
      // A pod with no node yet gets an empty 200 without a content type, which the client cannot parse.
      if (err instanceof Error && err.message === "Cannot parse content. No Content-Type defined.") return undefined;
      throw new UserError(failureLine(err, `reading the log of pod ${pod}`, this));
    }
  }

  /**
   * The Deployments labelled `selector` in every namespace (the operator may be installed in
   * any); undefined when the user may not list them.
   */
  async deploymentsEverywhere(selector: string): Promise<V1Deployment[] | undefined> {
    try {
      return (await this.#apps.listDeploymentForAllNamespaces({ labelSelector: selector })).items;
    } catch (err) {
      if (apiStatus(err)?.code === 403) return undefined;
      throw new UserError(failureLine(err, `listing deployments labelled ${selector}`, this));
    }
  }

  /** Streams a pod's log into `out` until the pod's container stops or `signal` aborts. */
  async followPodLog(
    namespace: string,
    pod: string,
    out: Writable,
    options: { tailLines?: number; signal: AbortSignal },
  ): Promise<void> {
    const log = new this.#k8s.Log(this.#config);
    const request = await this.#call(`following the log of pod ${pod}`, () =>
      log.log(namespace, pod, CONTAINER, out, { follow: true, tailLines: options.tailLines }),
    );
    options.signal.addEventListener("abort", () => request.abort(), { once: true });
  }
}

/** What a proxied request sends besides a GET's nothing. */
export interface ProxySend {
  readonly method?: "GET" | "POST" | "DELETE";
  /** JSON, sent with its content type and length. */
  readonly body?: string;
}

/**
 * The request to the API server's pod proxy for `pathAndQuery` on the pod's `api` port:
 * pure, so its shape is tested without a pod (the test API server runs none).
 */
export function proxyRequestOptions(
  server: string,
  namespace: string,
  pod: V1Pod,
  pathAndQuery: string,
  headers: Readonly<Record<string, string>>,
  send: ProxySend = {},
): import("node:https").RequestOptions {
  const name = pod.metadata?.name ?? "";
  const container = pod.spec?.containers.find((c) => c.name === CONTAINER);
  const port = container?.ports?.find((p) => p.name === "api")?.containerPort ?? API_PORT;
  const base = new URL(server);
  const root = base.pathname.replace(/\/$/, "");
  const body =
    send.body === undefined
      ? {}
      : { "content-type": "application/json", "content-length": String(Buffer.byteLength(send.body)) };
  return {
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: base.port,
    method: send.method ?? "GET",
    path: `${root}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(`${name}:${port}`)}/proxy/${pathAndQuery}`,
    headers: { ...headers, ...body },
  };
}

export function notFound(namespace: string, name: string): UserError {
  return new UserError(`dataflow ${name} not found in namespace ${namespace}; see \`waxctl df list -A\``);
}

function podOrder(pod: V1Pod): number {
  const ordinal = /-(\d+)$/.exec(pod.metadata?.name ?? "");
  return ordinal === null ? Number.MAX_SAFE_INTEGER : Number(ordinal[1]);
}

export function eventTime(e: CoreV1Event): number {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata.creationTimestamp;
  return t === undefined ? 0 : new Date(t).getTime();
}
