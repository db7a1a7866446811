// The operator's install manifests as pure functions of a few options: what `waxctl
// install` applies and what charts/waxflow-operator renders (a test holds the two equal).
// RBAC is derived from what the controller calls (controller/src/kube/*, dataflow-reconciler.ts).
import type {
  KubernetesObject,
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1Deployment,
  V1EnvVar,
  V1Namespace,
  V1PolicyRule,
  V1ResourceRequirements,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1ServiceAccount,
} from "@kubernetes/client-node";
import { crdManifest, GROUP, PLURAL } from "@waxflow/crds";

export const CONTROLLER = "waxflow-controller";
/** The controller's Lease (controller/src/main.ts). */
export const LEASE = "waxflow-controller";
export const METRICS_SERVICE = "waxflow-controller-metrics";
export const DEFAULT_NAMESPACE = "waxflow-system";
export const DEFAULT_IMAGE_REPOSITORY = "waxflow.local/waxflow-controller";
/** Serves /healthz and /metrics (the controller's PROBE_PORT). */
export const PROBE_PORT = 8080;
export const LEASE_DURATION_SECONDS = 15;
/** The distroless "nonroot" user: the image need not declare a numeric USER. */
const NONROOT = 65532;

export const SELECTOR = { "app.kubernetes.io/name": "waxflow-operator", "app.kubernetes.io/component": "controller" };
/** Marks what `waxctl install` applied; uninstall finds the RoleBindings in watched namespaces by it. */
export const INSTALLED_BY = { "app.kubernetes.io/name": "waxflow-operator", "app.kubernetes.io/managed-by": "waxctl" };

export const DEFAULT_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: "50m", memory: "64Mi" },
  limits: { memory: "256Mi" },
};

/**
 * Who besides the controller's namespace may reach the Dataflows' API port (3030), by
 * labels (say Prometheus): the controller writes them into each Dataflow's NetworkPolicy.
 */
export interface ApiClientLabels {
  readonly namespaceLabels: Readonly<Record<string, string>>;
  readonly podLabels: Readonly<Record<string, string>>;
}

export interface InstallOptions {
  readonly namespace: string;
  /** By digest: REPO@sha256:<64 hex>. */
  readonly image: string;
  /** Namespaces whose Dataflows the controller manages; all namespaces when empty. */
  readonly watchNamespaces: readonly string[];
  readonly replicas: number;
  readonly leaderElection: boolean;
  readonly resources: V1ResourceRequirements;
  readonly apiClients: ApiClientLabels;
  /** Run a Dataflow's privileged pod template when its spec.allowPrivileged asks for it. */
  readonly allowPrivilegedDataflows: boolean;
}

/** The controller image by digest, as `npm run images` names it. */
export function imageByDigest(digest: string): string {
  return `${DEFAULT_IMAGE_REPOSITORY}@${digest}`;
}

export function defaultInstallOptions(image: string): InstallOptions {
  return {
    namespace: DEFAULT_NAMESPACE,
    image,
    watchNamespaces: [],
    replicas: 1,
    leaderElection: true,
    resources: DEFAULT_RESOURCES,
    apiClients: { namespaceLabels: {}, podLabels: {} },
    allowPrivilegedDataflows: false,
  };
}

/** Rules the controller needs in every namespace it watches. */
export const DATAFLOW_RULES: V1PolicyRule[] = [
  // watch + get; patch sets the finalizer (Kube.setFinalizers)
  { apiGroups: [GROUP], resources: [PLURAL], verbs: ["get", "list", "watch", "patch"] },
  // Kube.writeStatus is a PUT of the status subresource
  { apiGroups: [GROUP], resources: [`${PLURAL}/status`], verbs: ["update"] },
  // owner references with blockOwnerDeletion need this where OwnerReferencesPermissionEnforcement runs
  { apiGroups: [GROUP], resources: [`${PLURAL}/finalizers`], verbs: ["update"] },
  // server-side apply is a patch, and also a create when the object is new; scale to zero is a merge patch
  { apiGroups: ["apps"], resources: ["statefulsets"], verbs: ["get", "list", "watch", "create", "patch", "delete"] },
  { apiGroups: [""], resources: ["services"], verbs: ["list", "watch", "create", "patch", "delete"] },
  // one per Dataflow, fencing its ports; the owner reference removes it
  {
    apiGroups: ["networking.k8s.io"],
    resources: ["networkpolicies"],
    verbs: ["get", "list", "watch", "create", "patch"],
  },
  // one per Dataflow, so a drain evicts one process at a time; the owner reference removes it
  {
    apiGroups: ["policy"],
    resources: ["poddisruptionbudgets"],
    verbs: ["get", "list", "watch", "create", "patch"],
  },
  // claims come from the StatefulSet's volumeClaimTemplate; the controller only removes them
  { apiGroups: [""], resources: ["persistentvolumeclaims"], verbs: ["list", "watch", "delete"] },
  // the one pre-flight pod of an image change (server-side apply), removed once it has started
  { apiGroups: [""], resources: ["pods"], verbs: ["list", "watch", "create", "patch", "delete"] },
  // upgradeMode savepoint: POST/GET /savepoints on process 0 (<name>-0, port api) before a roll stops it
  { apiGroups: [""], resources: ["pods/proxy"], verbs: ["create", "get"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create"] },
  // the cluster secret of each Dataflow, created once, never listed or changed; get: whether
  // a Secret or ConfigMap a waiting pod needs exists (asked for as metadata only), and, for
  // upgradeMode savepoint, the cluster secret's data: the token process 0's savepoint API asks for
  { apiGroups: [""], resources: ["secrets"], verbs: ["create", "get"] },
  { apiGroups: [""], resources: ["configmaps"], verbs: ["get"] },
];

/** Leader election (kube/leader.ts) in the controller's own namespace: create, then read and renew one Lease. */
export const LEASE_RULES: V1PolicyRule[] = [
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
  { apiGroups: ["coordination.k8s.io"], resources: ["leases"], resourceNames: [LEASE], verbs: ["get", "update"] },
];

function meta(name: string, namespace?: string) {
  return { name, ...(namespace === undefined ? {} : { namespace }), labels: { ...INSTALLED_BY } };
}

/** `k=v,...` in key order, as the chart's `range` writes a map. */
function labelList(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

/** The controller's environment (controller/src/main.ts reads these). */
export function controllerEnv(o: InstallOptions): V1EnvVar[] {
  return [
    { name: "WATCH_NAMESPACES", value: o.watchNamespaces.join(",") },
    { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    { name: "LEADER_ELECT", value: String(o.leaderElection) },
    { name: "LEASE_DURATION_SECONDS", value: String(LEASE_DURATION_SECONDS) },
    { name: "PROBE_PORT", value: String(PROBE_PORT) },
    // The CRD is installed with these manifests; the controller needs no rights on CRDs.
    { name: "INSTALL_CRD", value: "false" },
    { name: "API_CLIENT_NAMESPACE_LABELS", value: labelList(o.apiClients.namespaceLabels) },
    { name: "API_CLIENT_POD_LABELS", value: labelList(o.apiClients.podLabels) },
    { name: "ALLOW_PRIVILEGED_DATAFLOWS", value: String(o.allowPrivilegedDataflows) },
    // The chart's defaults (values.yaml log.level, log.format).
    { name: "LOG_LEVEL", value: "info" },
    { name: "LOG_FORMAT", value: "json" },
  ];
}

export function controllerDeployment(o: InstallOptions): V1Deployment {
  const probe = { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 10, failureThreshold: 3 };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(CONTROLLER, o.namespace),
    spec: {
      replicas: o.replicas,
      // Without a Lease two controllers would reconcile the same Dataflows: never overlap them.
      strategy: { type: o.leaderElection ? "RollingUpdate" : "Recreate" },
      selector: { matchLabels: { ...SELECTOR } },
      template: {
        metadata: { labels: { ...SELECTOR } },
        spec: {
          serviceAccountName: CONTROLLER,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: NONROOT,
            runAsGroup: NONROOT,
            seccompProfile: { type: "RuntimeDefault" },
          },
          containers: [
            {
              name: "controller",
              image: o.image,
              imagePullPolicy: "IfNotPresent",
              env: controllerEnv(o),
              ports: [{ name: "metrics", containerPort: PROBE_PORT, protocol: "TCP" }],
              livenessProbe: { ...probe, initialDelaySeconds: 5 },
              readinessProbe: probe,
              resources: o.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
            },
          ],
        },
      },
    },
  };
}

/** Every object, in apply order: what a later object needs exists before it. */
export function installManifests(o: InstallOptions): KubernetesObject[] {
  if (o.replicas > 1 && !o.leaderElection) {
    throw new Error(`${o.replicas} replicas need leader election: without it only one controller may run`);
  }
  const subject = { kind: "ServiceAccount", name: CONTROLLER, namespace: o.namespace };
  const roleRef = { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: CONTROLLER };
  const namespace: V1Namespace = { apiVersion: "v1", kind: "Namespace", metadata: meta(o.namespace) };
  const account: V1ServiceAccount = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: meta(CONTROLLER, o.namespace),
  };
  const clusterRole: V1ClusterRole = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: meta(CONTROLLER),
    rules: DATAFLOW_RULES,
  };
  // Watching all namespaces binds the rules cluster-wide; a list of namespaces binds them in each only.
  const bindings: (V1ClusterRoleBinding | V1RoleBinding)[] =
    o.watchNamespaces.length === 0
      ? [
          {
            apiVersion: "rbac.authorization.k8s.io/v1",
            kind: "ClusterRoleBinding",
            metadata: meta(CONTROLLER),
            roleRef,
            subjects: [subject],
          },
        ]
      : o.watchNamespaces.map((ns) => ({
          apiVersion: "rbac.authorization.k8s.io/v1",
          kind: "RoleBinding",
          metadata: meta(CONTROLLER, ns),
          roleRef,
          subjects: [subject],
        }));
  const leaseName = `${CONTROLLER}-leader-election`;
  const leaseRole: V1Role = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: meta(leaseName, o.namespace),
    rules: LEASE_RULES,
  };
  const leaseBinding: V1RoleBinding = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: meta(leaseName, o.namespace),
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: leaseName },
    subjects: [subject],
  };
  const metrics: V1Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(METRICS_SERVICE, o.namespace),
    spec: {
      selector: { ...SELECTOR },
      ports: [{ name: "metrics", port: PROBE_PORT, targetPort: "metrics", protocol: "TCP" }],
    },
  };
  return [
    crdManifest(),
    namespace,
    account,
    clusterRole,
    ...bindings,
    ...(o.leaderElection ? [leaseRole, leaseBinding] : []),
    controllerDeployment(o),
    metrics,
  ];
}

/** Enough of an object to name it in a read or delete. */
export function header(o: KubernetesObject): KubernetesObject {
  const { name, namespace } = o.metadata ?? {};
  return {
    apiVersion: o.apiVersion,
    kind: o.kind,
    metadata: { name, ...(namespace === undefined ? {} : { namespace }) },
  };
}

/**
 * What uninstall removes, the controller first (nothing then acts on half-removed RBAC) and
 * the CRD last, only when asked. `bindings` are the RoleBindings found in watched namespaces;
 * the Namespace stays, as `helm uninstall` leaves it.
 */
export function uninstallObjects(namespace: string, bindings: readonly KubernetesObject[], crds: boolean) {
  const all = installManifests({ ...defaultInstallOptions(imageByDigest("")), namespace }).filter(
    (o) => o.kind !== "Namespace" && (crds || o.kind !== "CustomResourceDefinition"),
  );
  const key = (o: KubernetesObject) => `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
  const known = new Set(all.map(key));
  const rank = (o: KubernetesObject) => (o.kind === "Deployment" ? 0 : o.kind === "CustomResourceDefinition" ? 2 : 1);
  return [...all, ...bindings.filter((b) => !known.has(key(b)))].map(header).sort((a, b) => rank(a) - rank(b));
}
