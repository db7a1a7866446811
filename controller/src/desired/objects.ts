// Pure functions: a Dataflow in, the objects that should exist for it out.
// Names, labels, ports and the volume layout are fixed by the Kubernetes contract.
import { createHash } from "node:crypto";
import type {
  V1Container,
  V1EnvVar,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodDisruptionBudget,
  V1PodTemplateSpec,
  V1Secret,
  V1Service,
  V1StatefulSet,
} from "@kubernetes/client-node";
import {
  API_PORT,
  API_VERSION,
  CLUSTER_PORT,
  CLUSTER_SECRET_KEY,
  CONTAINER,
  type Dataflow,
  type DefaultedDataflowSpec,
  dataflowLabels,
  durationMs,
  KIND,
  podSelector,
} from "@waxflow/crds";

export const FIELD_MANAGER = "waxflow-controller";
export const FINALIZER = "waxflow.io/volumes";
export const RECOVERY_VOLUME = "recovery";
const RECOVERY_PATH = "/var/lib/waxflow/recovery";
export const TEMPLATE_HASH = "waxflow.io/template-hash";
const APPLIED_HASH = "waxflow.io/applied-hash";
export const MANAGED_BY = "waxflow-controller";
const RUN_AS = 65532;
/** The cluster secret: random bytes every process of a Dataflow proves it holds (runtime/src/cluster/handshake.ts). */
export const CLUSTER_SECRET_BYTES = 32;
const CLUSTER_SECRET_VOLUME = "cluster-secret";
const CLUSTER_SECRET_DIR = "/var/run/waxflow/cluster";
export const clusterSecretName = (name: string) => `${name}-cluster-secret`;

export interface DataflowRef {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

export function refOf(df: Dataflow): DataflowRef {
  const { name, namespace, uid } = df.metadata ?? {};
  if (name === undefined || namespace === undefined || uid === undefined) {
    throw new Error("Dataflow without metadata.name, namespace or uid: it was not read from the API server");
  }
  return { name, namespace, uid };
}

function labelsFor(name: string): Record<string, string> {
  return dataflowLabels(name, MANAGED_BY);
}

export const apiServiceName = (name: string) => `${name}-api`;

function ownerReference(ref: DataflowRef): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: ref.name,
    uid: ref.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function metadataFor(ref: DataflowRef, name: string) {
  return { name, namespace: ref.namespace, labels: labelsFor(ref.name), ownerReferences: [ownerReference(ref)] };
}

/** Go duration ("1m30s", "500ms") to seconds, as the runtime's -s/-b flags take them. */
export const durationSeconds = (text: string): number => durationMs(text) / 1000;

/**
 * `startFrom` is WAXFLOW_START_FROM (`fresh:<token>`, `savepoint:<id>`): where processes
 * start once per value, chosen by the roll that started them (reconcile/upgrade.ts).
 */
function runtimeEnv(ref: DataflowRef, spec: DefaultedDataflowSpec, startFrom: string | undefined): V1EnvVar[] {
  const env: V1EnvVar[] = [
    { name: "WAXFLOW_WORKERS_PER_PROCESS", value: String(spec.workersPerProcess) },
    { name: "WAXFLOW_STATEFULSET_NAME", value: ref.name },
    { name: "WAXFLOW_SERVICE_NAME", value: ref.name },
    { name: "WAXFLOW_REPLICAS", value: String(spec.processes) },
    { name: "WAXFLOW_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
    { name: "WAXFLOW_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
    { name: "WAXFLOW_API_PORT", value: String(API_PORT) },
    // A file, not a variable: the secret is raw bytes, and stays out of the pod's environment.
    { name: "WAXFLOW_CLUSTER_SECRET_FILE", value: `${CLUSTER_SECRET_DIR}/${CLUSTER_SECRET_KEY}` },
    // The mesh listens on the pod's own address, not on every interface.
    { name: "WAXFLOW_LISTEN", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
  ];
  env.push({ name: "WAXFLOW_SNAPSHOT_INTERVAL", value: String(durationSeconds(spec.recovery.snapshotInterval)) });
  if (spec.recovery.enabled) {
    env.push(
      { name: "WAXFLOW_RECOVERY_DIRECTORY", value: RECOVERY_PATH },
      { name: "WAXFLOW_BACKUP_INTERVAL", value: String(durationSeconds(spec.recovery.backupInterval)) },
      // Each pod's claim starts out empty; the runtime creates a store there only when told.
      { name: "WAXFLOW_RECOVERY_INIT", value: "true" },
    );
    if (spec.recovery.dropRemovedSteps === true) env.push({ name: "WAXFLOW_DROP_REMOVED_STEPS", value: "true" });
    env.push(...backupEnv(spec.recovery.backup), ...startFromEnv(startFrom, spec.restoreFrom));
  }
  // State is user data: /state answers only when the spec asks, and only with the Secret's token.
  if (spec.stateQuery === true) env.push({ name: "WAXFLOW_STATE_QUERY", value: "true" });
  return [...env, ...(spec.env ?? [])];
}

/**
 * Where processes start from: a start the rollout chose (an upgrade's savepoint, a stateless
 * roll's fresh start, a rollback) wins over spec.restoreFrom, the savepoint a new Dataflow
 * starts from. Each process applies a value once (the runtime's start-from marker).
 */
function startFromEnv(startFrom: string | undefined, restoreFrom: DefaultedDataflowSpec["restoreFrom"]): V1EnvVar[] {
  if (startFrom !== undefined) return [{ name: "WAXFLOW_START_FROM", value: startFrom }];
  if (restoreFrom === undefined) return [];
  const env: V1EnvVar[] = [{ name: "WAXFLOW_START_FROM", value: `savepoint:${restoreFrom.savepoint}` }];
  if (restoreFrom.prefix !== undefined) env.push({ name: "WAXFLOW_SAVEPOINT_PREFIX", value: restoreFrom.prefix });
  return env;
}

/** Backups to a bucket (spec.recovery.backup): its settings, and the access key from its Secret. */
function backupEnv(backup: DefaultedDataflowSpec["recovery"]["backup"]): V1EnvVar[] {
  if (backup === undefined) return [];
  const env: V1EnvVar[] = [{ name: "WAXFLOW_BACKUP_BUCKET", value: backup.bucket }];
  const optional: [string, string | number | undefined][] = [
    ["WAXFLOW_BACKUP_ENDPOINT", backup.endpoint],
    ["WAXFLOW_BACKUP_PREFIX", backup.prefix],
    ["WAXFLOW_BACKUP_REGION", backup.region],
    ["WAXFLOW_BACKUP_KEEP", backup.keep],
    ["WAXFLOW_BACKUP_KEEP_AGE", backup.keepAge === undefined ? undefined : durationSeconds(backup.keepAge)],
  ];
  for (const [name, value] of optional) if (value !== undefined) env.push({ name, value: String(value) });
  const secret = backup.credentialsSecret;
  if (secret !== undefined) {
    // From the Secret by reference: the key never appears in the StatefulSet.
    env.push(
      {
        name: "AWS_ACCESS_KEY_ID",
        valueFrom: { secretKeyRef: { name: secret.name, key: secret.accessKeyIdKey ?? "AWS_ACCESS_KEY_ID" } },
      },
      {
        name: "AWS_SECRET_ACCESS_KEY",
        valueFrom: { secretKeyRef: { name: secret.name, key: secret.secretAccessKeyKey ?? "AWS_SECRET_ACCESS_KEY" } },
      },
    );
  }
  return env;
}

function container(ref: DataflowRef, spec: DefaultedDataflowSpec, startFrom: string | undefined): V1Container {
  return {
    name: CONTAINER,
    image: spec.image,
    args: [spec.module],
    env: runtimeEnv(ref, spec, startFrom),
    ...(spec.envFrom === undefined ? {} : { envFrom: spec.envFrom }),
    ...(spec.resources === undefined ? {} : { resources: spec.resources }),
    ports: [
      { name: "cluster", containerPort: CLUSTER_PORT, protocol: "TCP" },
      { name: "api", containerPort: API_PORT, protocol: "TCP" },
    ],
    // A failed run's last log lines become its termination message, which the reconciler
    // reads from pod status to tell a crash loop and show its error line.
    terminationMessagePolicy: "FallbackToLogsOnError",
    readinessProbe: { httpGet: { path: "/readyz", port: "api" }, periodSeconds: 5, failureThreshold: 2 },
    livenessProbe: { httpGet: { path: "/livez", port: "api" }, periodSeconds: 10, failureThreshold: 6 },
    securityContext: {
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    },
    volumeMounts: [
      { name: "tmp", mountPath: "/tmp" },
      { name: CLUSTER_SECRET_VOLUME, mountPath: CLUSTER_SECRET_DIR, readOnly: true },
      ...(spec.recovery.enabled ? [{ name: RECOVERY_VOLUME, mountPath: RECOVERY_PATH }] : []),
    ],
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * The user's pod template overlay: labels/annotations are added, pod spec fields set,
 * the `waxflow` container merged field by field, other containers and volumes appended.
 * The contract's labels, the cluster ports and the recovery mount always win; so does the
 * container's hardened security context, unless the Dataflow was allowed privileges (its
 * spec.allowPrivileged passed the guard), where what it asks for wins.
 */
function mergePodTemplate(
  base: V1PodTemplateSpec,
  overlay: V1PodTemplateSpec | undefined,
  privileged: boolean,
): V1PodTemplateSpec {
  if (overlay === undefined) return base;
  const baseSpec = base.spec ?? { containers: [] };
  const { containers = [], initContainers, volumes = [], ...podFields } = overlay.spec ?? { containers: [] };
  const ours = baseSpec.containers[0];
  const theirs = containers.find((c) => c.name === CONTAINER);
  const merged: V1Container | undefined =
    ours === undefined
      ? undefined
      : {
          ...ours,
          ...theirs,
          name: CONTAINER,
          image: ours.image,
          args: ours.args,
          ports: ours.ports,
          env: [...(ours.env ?? []), ...(theirs?.env ?? [])],
          volumeMounts: [...(ours.volumeMounts ?? []), ...(theirs?.volumeMounts ?? [])],
          securityContext: privileged
            ? { ...ours.securityContext, ...theirs?.securityContext }
            : { ...theirs?.securityContext, ...ours.securityContext },
        };
  const sidecars = containers.filter((c) => c.name !== CONTAINER);
  const spec = {
    ...baseSpec,
    ...(isObject(podFields) ? podFields : {}),
    containers: [...(merged === undefined ? [] : [merged]), ...sidecars],
    volumes: [...(baseSpec.volumes ?? []), ...volumes],
    securityContext: { ...podFields.securityContext, ...baseSpec.securityContext },
    ...(initContainers === undefined ? {} : { initContainers }),
  };
  return {
    metadata: {
      labels: { ...overlay.metadata?.labels, ...base.metadata?.labels },
      annotations: { ...overlay.metadata?.annotations, ...base.metadata?.annotations },
    },
    spec,
  };
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (isObject(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function hashOf(value: unknown): string {
  return createHash("sha256").update(stableJson(value)).digest("hex").slice(0, 16);
}

/** `spec` is `withDefaults(df.spec)`, computed once by the caller. */
export function podTemplate(df: Dataflow, spec: DefaultedDataflowSpec, startFrom?: string): V1PodTemplateSpec {
  const ref = refOf(df);
  const base: V1PodTemplateSpec = {
    // The nonce is part of the template so that changing it changes the hash: a restart.
    metadata: {
      labels: labelsFor(ref.name),
      annotations: spec.restartNonce === undefined ? {} : { "waxflow.io/restart-nonce": String(spec.restartNonce) },
    },
    spec: {
      containers: [container(ref, spec, startFrom)],
      // The runtime never calls the API server: no token unless the spec names an account to use.
      ...(spec.serviceAccountName === undefined && spec.podTemplate?.spec?.serviceAccountName === undefined
        ? { automountServiceAccountToken: false }
        : {}),
      ...(spec.serviceAccountName === undefined ? {} : { serviceAccountName: spec.serviceAccountName }),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: RUN_AS,
        runAsGroup: RUN_AS,
        fsGroup: RUN_AS,
        seccompProfile: { type: "RuntimeDefault" },
      },
      volumes: [
        { name: "tmp", emptyDir: {} },
        // Group-readable: fsGroup makes the pod's user its group.
        { name: CLUSTER_SECRET_VOLUME, secret: { secretName: clusterSecretName(ref.name), defaultMode: 0o440 } },
      ],
    },
  };
  const merged = mergePodTemplate(base, spec.podTemplate, spec.allowPrivileged === true);
  return annotated(merged, TEMPLATE_HASH, hashOf(merged));
}

type Annotatable = { metadata?: { annotations?: Record<string, string> } };

function annotated<T extends Annotatable>(object: T, key: string, value: string): T {
  return {
    ...object,
    metadata: { ...object.metadata, annotations: { ...object.metadata?.annotations, [key]: value } },
  };
}

/**
 * Marks a desired object with the hash of its content, so the reconciler can skip a
 * server-side apply (the controller's most expensive request) when nothing changed.
 */
export function stamped<T extends Annotatable>(object: T): T {
  return annotated(object, APPLIED_HASH, hashOf(object));
}

export function appliedHashOf(object: Annotatable | undefined): string | undefined {
  return object?.metadata?.annotations?.[APPLIED_HASH];
}

export function templateHashOf(template: V1PodTemplateSpec | undefined): string | undefined {
  return template?.metadata?.annotations?.[TEMPLATE_HASH];
}

function recoveryClaim(ref: DataflowRef, spec: DefaultedDataflowSpec): V1PersistentVolumeClaim {
  const { size, storageClassName } = spec.recovery.storage;
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: RECOVERY_VOLUME, labels: labelsFor(ref.name) },
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: size } },
      ...(storageClassName === undefined ? {} : { storageClassName }),
    },
  };
}

/**
 * The worker cluster. `replicas` is decided by the reconciler (0 while stopping or
 * suspended, more than spec.processes while holders hand recovery data over). OnDelete:
 * the StatefulSet controller never replaces pods one by one, so old and new pods cannot
 * meet; the reconciler replaces them all together. whenScaled is always Retain because
 * every roll scales to zero; the reconciler deletes the claims of removed ordinals itself
 * when the spec asks for it, once their data is handed over.
 */
export function desiredStatefulSet(
  df: Dataflow,
  spec: DefaultedDataflowSpec,
  replicas: number,
  startFrom?: string,
): V1StatefulSet {
  const ref = refOf(df);
  return stamped<V1StatefulSet>({
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: metadataFor(ref, ref.name),
    spec: {
      replicas,
      serviceName: ref.name,
      podManagementPolicy: "Parallel",
      updateStrategy: { type: "OnDelete" },
      selector: { matchLabels: podSelector(ref.name) },
      template: podTemplate(df, spec, startFrom),
      ...(spec.recovery.enabled
        ? {
            volumeClaimTemplates: [recoveryClaim(ref, spec)],
            persistentVolumeClaimRetentionPolicy: {
              whenDeleted: spec.recovery.retention.whenDeleted,
              whenScaled: "Retain",
            },
          }
        : {}),
    },
  });
}

/** Fields of a StatefulSet the API server will not change in place. */
export function immutableShape(sts: V1StatefulSet | undefined): string {
  const s = sts?.spec;
  return hashOf({
    serviceName: s?.serviceName,
    podManagementPolicy: s?.podManagementPolicy,
    selector: s?.selector?.matchLabels,
    claims: (s?.volumeClaimTemplates ?? []).map((c) => ({
      name: c.metadata?.name,
      storage: c.spec?.resources?.requests?.storage,
      storageClassName: c.spec?.storageClassName,
    })),
  });
}

/** Marks the pre-flight pod: not a process of the cluster, so the operator counts it apart. */
export const PREFLIGHT_LABEL = "waxflow.io/preflight";
export const preflightPodName = (name: string) => `${name}-preflight`;

/**
 * One pod of the new template that only shows its image pulls and starts: the entrypoint
 * `waxflow run` with `--help` exits 0 at once, without data, peers, volumes or probes.
 * `app.kubernetes.io/name` says `waxflow-preflight`, so the StatefulSet's selector, the
 * Services and the PodDisruptionBudget (a pod stuck pulling would use up its one
 * disruption) never take it for a process.
 */
export function desiredPreflightPod(df: Dataflow, spec: DefaultedDataflowSpec, startFrom?: string): V1Pod {
  const ref = refOf(df);
  const template = podTemplate(df, spec, startFrom);
  const podSpec = template.spec ?? { containers: [] };
  const checked = (c: V1Container): V1Container => {
    if (c.name !== CONTAINER) return c;
    const { readinessProbe: _r, livenessProbe: _l, ...rest } = c;
    return {
      ...rest,
      args: ["--help"],
      volumeMounts: (c.volumeMounts ?? []).filter((m) => m.name !== RECOVERY_VOLUME),
    };
  };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      ...metadataFor(ref, preflightPodName(ref.name)),
      labels: { ...labelsFor(ref.name), "app.kubernetes.io/name": "waxflow-preflight", [PREFLIGHT_LABEL]: "true" },
      annotations: template.metadata?.annotations ?? {},
    },
    spec: {
      ...podSpec,
      // Only the waxflow container says whether the image works; sidecars wait for nothing here.
      containers: podSpec.containers.filter((c) => c.name === CONTAINER).map(checked),
      initContainers: undefined,
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 0,
    },
  };
}

/**
 * The secret every pod of the Dataflow mounts to join its mesh, owned by the Dataflow so
 * it goes with it. `key` is random bytes chosen by the caller; once created it is never
 * replaced (immutable), so running pods and their restarts always agree on it.
 */
export function desiredClusterSecret(df: Dataflow, key: Uint8Array): V1Secret {
  const ref = refOf(df);
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: metadataFor(ref, clusterSecretName(ref.name)),
    type: "Opaque",
    immutable: true,
    data: { [CLUSTER_SECRET_KEY]: Buffer.from(key).toString("base64") },
  };
}

export function desiredHeadlessService(df: Dataflow): V1Service {
  const ref = refOf(df);
  return stamped<V1Service>({
    apiVersion: "v1",
    kind: "Service",
    metadata: metadataFor(ref, ref.name),
    spec: {
      clusterIP: "None",
      publishNotReadyAddresses: true,
      selector: podSelector(ref.name),
      ports: [{ name: "cluster", port: CLUSTER_PORT, targetPort: CLUSTER_PORT, protocol: "TCP" }],
    },
  });
}

export function desiredApiService(df: Dataflow): V1Service {
  const ref = refOf(df);
  return stamped<V1Service>({
    apiVersion: "v1",
    kind: "Service",
    metadata: metadataFor(ref, apiServiceName(ref.name)),
    spec: {
      selector: podSelector(ref.name),
      ports: [{ name: "api", port: API_PORT, targetPort: API_PORT, protocol: "TCP" }],
    },
  });
}

/**
 * The Dataflow's PodDisruptionBudget. A worker cluster is fixed-size: each voluntary
 * eviction stops the whole cluster until it re-forms around the evicted process's
 * replacement, which resumes from its volume. `maxUnavailable: 1` makes a drain move one
 * process at a time and wait until every process is Ready again before the next, instead
 * of evicting all of them at once; exactly-once holds either way, this bounds the outage.
 * (`minAvailable: N` would block every drain of a 1-process Dataflow.) A process that is
 * re-forming is not Ready, and every survivor of an eviction re-forms until the evicted
 * one is back: were not-Ready pods always evictable (`AlwaysAllow`), the next eviction
 * would go through seconds after the first and the budget would order nothing. So a
 * Dataflow that is not all Ready holds a drain up; `waxctl df suspend` releases it.
 */
export function desiredDisruptionBudget(df: Dataflow): V1PodDisruptionBudget {
  const ref = refOf(df);
  return stamped<V1PodDisruptionBudget>({
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: metadataFor(ref, ref.name),
    spec: {
      maxUnavailable: 1,
      selector: { matchLabels: podSelector(ref.name) },
      unhealthyPodEvictionPolicy: "IfHealthyBudget",
    },
  });
}
