import { classifySpecDiff, type Dataflow, withDefaults } from "@waxflow/crds";
import { expect, test } from "vitest";
import { DEFAULT_API_CLIENTS, desiredNetworkPolicy, parseLabels } from "../src/desired/network-policy.ts";
import {
  desiredApiService,
  desiredClusterSecret,
  desiredDisruptionBudget,
  desiredHeadlessService,
  desiredStatefulSet,
  durationSeconds,
  podTemplate,
  TEMPLATE_HASH,
} from "../src/desired/objects.ts";
import { privilegedFields } from "../src/desired/pod-guard.ts";
import { dataflow, IMAGE } from "./fixtures.ts";

const contractLabels = {
  "app.kubernetes.io/name": "waxflow",
  "app.kubernetes.io/instance": "wc",
  "app.kubernetes.io/managed-by": "waxflow-controller",
  "waxflow.io/dataflow": "wc",
};

test("StatefulSet follows the contract: names, labels, ports, env, security, recovery volume", () => {
  const df = dataflow({
    processes: 3,
    workersPerProcess: 2,
    recovery: { enabled: true, snapshotInterval: "5s", backupInterval: "1m", retention: { whenDeleted: "Delete" } },
    env: [{ name: "LOG", value: "debug" }],
  });
  const sts = desiredStatefulSet(df, withDefaults(df.spec), 3);
  expect(sts.metadata?.name).toBe("wc");
  expect(sts.metadata?.labels).toEqual(contractLabels);
  expect(sts.metadata?.ownerReferences?.[0]).toMatchObject({
    kind: "Dataflow",
    name: "wc",
    uid: "uid-1",
    controller: true,
  });
  expect(sts.spec?.podManagementPolicy).toBe("Parallel");
  expect(sts.spec?.updateStrategy?.type).toBe("OnDelete");
  expect(sts.spec?.serviceName).toBe("wc");
  expect(sts.spec?.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: "Delete", whenScaled: "Retain" });
  expect(sts.spec?.volumeClaimTemplates?.[0]?.metadata?.name).toBe("recovery");
  const c = sts.spec?.template.spec?.containers[0];
  expect(c?.ports?.map((p) => [p.name, p.containerPort])).toEqual([
    ["cluster", 2101],
    ["api", 3030],
  ]);
  expect(c?.volumeMounts).toContainEqual({ name: "recovery", mountPath: "/var/lib/waxflow/recovery" });
  expect(c?.securityContext).toEqual({
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ["ALL"] },
  });
  const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
  expect(env).toMatchObject({
    WAXFLOW_WORKERS_PER_PROCESS: "2",
    WAXFLOW_REPLICAS: "3",
    WAXFLOW_STATEFULSET_NAME: "wc",
    WAXFLOW_SERVICE_NAME: "wc",
    WAXFLOW_NAMESPACE: "metadata.namespace",
    WAXFLOW_POD_NAME: "metadata.name",
    WAXFLOW_RECOVERY_DIRECTORY: "/var/lib/waxflow/recovery",
    WAXFLOW_SNAPSHOT_INTERVAL: "5",
    WAXFLOW_BACKUP_INTERVAL: "60",
    WAXFLOW_RECOVERY_INIT: "true",
    LOG: "debug",
  });
});

test("recovery.dropRemovedSteps sets WAXFLOW_DROP_REMOVED_STEPS; unset, the runtime refuses a store with removed steps", () => {
  const envOf = (recovery: { enabled: boolean; dropRemovedSteps?: boolean }) => {
    const df = dataflow({ recovery });
    const sts = desiredStatefulSet(df, withDefaults(df.spec), 1);
    return sts.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === "WAXFLOW_DROP_REMOVED_STEPS")?.value;
  };
  expect(envOf({ enabled: true, dropRemovedSteps: true })).toBe("true");
  expect(envOf({ enabled: true, dropRemovedSteps: false })).toBeUndefined();
  expect(envOf({ enabled: true })).toBeUndefined();
  expect(envOf({ enabled: false, dropRemovedSteps: true })).toBeUndefined();
  // Setting it changes what the processes run with: every process restarts with it.
  const before = withDefaults(dataflow({ recovery: { enabled: true } }).spec);
  const after = withDefaults(dataflow({ recovery: { enabled: true, dropRemovedSteps: true } }).spec);
  expect(classifySpecDiff(before, after)).toEqual({ class: "upgrade", fields: ["recovery.dropRemovedSteps"] });
});

test("spec.stateQuery sets WAXFLOW_STATE_QUERY; off by default, and turning it on restarts the processes with it", () => {
  const envOf = (stateQuery?: boolean) => {
    const df = dataflow(stateQuery === undefined ? {} : { stateQuery });
    const sts = desiredStatefulSet(df, withDefaults(df.spec), 1);
    return sts.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === "WAXFLOW_STATE_QUERY")?.value;
  };
  expect(envOf(true)).toBe("true");
  expect(envOf(false)).toBeUndefined();
  expect(envOf()).toBeUndefined();
  const before = withDefaults(dataflow().spec);
  const after = withDefaults(dataflow({ stateQuery: true }).spec);
  expect(classifySpecDiff(before, after)).toEqual({ class: "upgrade", fields: ["stateQuery"] });
  // The API port stays fenced as before: the controller's namespace only, unless the operator names clients.
  const policy = desiredNetworkPolicy(dataflow({ stateQuery: true }), DEFAULT_API_CLIENTS);
  expect(policy.spec?.ingress?.[1]).toEqual({
    _from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "waxflow-system" } } }],
    ports: [{ protocol: "TCP", port: 3030 }],
  });
});

test("recovery.backup passes the bucket's settings and takes the access key from the Secret by reference", () => {
  const df = dataflow({
    recovery: {
      enabled: true,
      backup: {
        bucket: "backups",
        endpoint: "http://seaweedfs.storage:8333",
        prefix: "prod/wc",
        keepAge: "24h",
        credentialsSecret: { name: "s3-keys", secretAccessKeyKey: "secret" },
      },
    },
  });
  const env = desiredStatefulSet(df, withDefaults(df.spec), 1).spec?.template.spec?.containers[0]?.env ?? [];
  const byName = new Map(env.map((e) => [e.name, e]));
  expect(byName.get("WAXFLOW_BACKUP_BUCKET")?.value).toBe("backups");
  expect(byName.get("WAXFLOW_BACKUP_ENDPOINT")?.value).toBe("http://seaweedfs.storage:8333");
  expect(byName.get("WAXFLOW_BACKUP_PREFIX")?.value).toBe("prod/wc");
  expect(byName.get("WAXFLOW_BACKUP_KEEP_AGE")?.value).toBe("86400");
  expect(byName.has("WAXFLOW_BACKUP_REGION")).toBe(false);
  expect(byName.get("AWS_ACCESS_KEY_ID")).toEqual({
    name: "AWS_ACCESS_KEY_ID",
    valueFrom: { secretKeyRef: { name: "s3-keys", key: "AWS_ACCESS_KEY_ID" } },
  });
  expect(byName.get("AWS_SECRET_ACCESS_KEY")?.valueFrom?.secretKeyRef).toEqual({ name: "s3-keys", key: "secret" });
  // Without recovery there is no store to back up.
  const off = dataflow({ recovery: { enabled: false, backup: { bucket: "backups" } } });
  const offEnv = desiredStatefulSet(off, withDefaults(off.spec), 1).spec?.template.spec?.containers[0]?.env ?? [];
  expect(offEnv.some((e) => e.name.startsWith("WAXFLOW_BACKUP_BUCKET"))).toBe(false);
});

test("spec.restoreFrom sets WAXFLOW_START_FROM=savepoint:<id> and WAXFLOW_SAVEPOINT_PREFIX; a new savepoint restarts the processes", () => {
  const recovery = { enabled: true, backup: { bucket: "backups", prefix: "prod/fork" } };
  const env = (spec: Partial<Dataflow["spec"]>) => {
    const df = dataflow(spec);
    return new Map(
      (desiredStatefulSet(df, withDefaults(df.spec), 1).spec?.template.spec?.containers[0]?.env ?? []).map((e) => [
        e.name,
        e.value,
      ]),
    );
  };
  const forked = env({ recovery, restoreFrom: { savepoint: "sp-1", prefix: "prod/wc" } });
  expect(forked.get("WAXFLOW_START_FROM")).toBe("savepoint:sp-1");
  expect(forked.get("WAXFLOW_SAVEPOINT_PREFIX")).toBe("prod/wc");
  // Without a prefix the savepoint is read from the Dataflow's own backup prefix.
  const own = env({ recovery, restoreFrom: { savepoint: "sp-1" } });
  expect(own.get("WAXFLOW_START_FROM")).toBe("savepoint:sp-1");
  expect(own.has("WAXFLOW_SAVEPOINT_PREFIX")).toBe(false);
  expect(env({ recovery }).has("WAXFLOW_START_FROM")).toBe(false);
  const before = withDefaults(dataflow({ recovery, restoreFrom: { savepoint: "sp-1" } }).spec);
  const after = withDefaults(dataflow({ recovery, restoreFrom: { savepoint: "sp-2" } }).spec);
  expect(classifySpecDiff(before, after)).toEqual({ class: "upgrade", fields: ["restoreFrom"] });
});

test("no recovery volume when recovery is disabled", () => {
  const df = dataflow();
  const sts = desiredStatefulSet(df, withDefaults(df.spec), 1);
  expect(sts.spec?.volumeClaimTemplates).toBeUndefined();
  const env = sts.spec?.template.spec?.containers[0]?.env?.map((e) => e.name) ?? [];
  expect(env).not.toContain("WAXFLOW_RECOVERY_INIT");
  expect(env).not.toContain("WAXFLOW_RECOVERY_DIRECTORY");
  expect(sts.spec?.template.spec?.containers[0]?.volumeMounts?.map((m) => m.name)).toEqual(["tmp", "cluster-secret"]);
});

test("the cluster secret: the caller's random bytes, owned by the Dataflow, immutable, and mounted by every pod", () => {
  const df = dataflow();
  const key = Buffer.alloc(32, 7);
  const secret = desiredClusterSecret(df, key);
  expect(secret.metadata?.name).toBe("wc-cluster-secret");
  expect(secret.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "wc", controller: true });
  expect(secret.immutable).toBe(true);
  expect(Buffer.from(secret.data?.secret ?? "", "base64")).toEqual(key);
  const pod = desiredStatefulSet(df, withDefaults(df.spec), 2).spec?.template.spec;
  expect(pod?.volumes).toContainEqual({
    name: "cluster-secret",
    secret: { secretName: "wc-cluster-secret", defaultMode: 0o440 },
  });
  const container = pod?.containers[0];
  expect(container?.volumeMounts).toContainEqual({
    name: "cluster-secret",
    mountPath: "/var/run/waxflow/cluster",
    readOnly: true,
  });
  expect(container?.env).toContainEqual({
    name: "WAXFLOW_CLUSTER_SECRET_FILE",
    value: "/var/run/waxflow/cluster/secret",
  });
  expect(container?.env).toContainEqual({
    name: "WAXFLOW_LISTEN",
    valueFrom: { fieldRef: { fieldPath: "status.podIP" } },
  });
});

test("services: headless publishes not-ready addresses on 2101; the api service on 3030", () => {
  const headless = desiredHeadlessService(dataflow());
  expect(headless.metadata?.name).toBe("wc");
  expect(headless.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true });
  expect(headless.spec?.ports).toEqual([{ name: "cluster", port: 2101, targetPort: 2101, protocol: "TCP" }]);
  const api = desiredApiService(dataflow());
  expect(api.metadata?.name).toBe("wc-api");
  expect(api.metadata?.labels).toEqual(contractLabels);
  expect(api.spec?.ports?.[0]?.port).toBe(3030);
});

test("PodDisruptionBudget: one process of this Dataflow at a time, the same pods as its StatefulSet, owned by it", () => {
  const df = dataflow({ processes: 3 });
  const budget = desiredDisruptionBudget(df);
  const sts = desiredStatefulSet(df, withDefaults(df.spec), 3);
  expect(budget).toMatchObject({ apiVersion: "policy/v1", kind: "PodDisruptionBudget" });
  expect(budget.metadata?.name).toBe("wc");
  expect(budget.metadata?.namespace).toBe(df.metadata?.namespace);
  expect(budget.metadata?.labels).toEqual(contractLabels);
  expect(budget.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "wc", controller: true });
  expect(budget.spec?.maxUnavailable).toBe(1);
  expect(budget.spec?.selector).toEqual(sts.spec?.selector);
  expect(budget.spec?.unhealthyPodEvictionPolicy).toBe("IfHealthyBudget");
  // Another Dataflow's budget selects only its own pods.
  const other = desiredDisruptionBudget(
    dataflow({}, { metadata: { name: "other", namespace: "ns1", uid: "uid-2", generation: 1 } }),
  );
  expect(other.spec?.selector?.matchLabels?.["waxflow.io/dataflow"]).toBe("other");
});

test("NetworkPolicy: 2101 from the Dataflow's own pods, 3030 from the controller's namespace; nothing else", () => {
  const policy = desiredNetworkPolicy(dataflow(), { controllerNamespace: "ops" });
  expect(policy.metadata?.name).toBe("wc");
  expect(policy.metadata?.labels).toEqual(contractLabels);
  expect(policy.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: "wc", controller: true });
  const pods = { matchLabels: { "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": "wc" } };
  expect(policy.spec).toEqual({
    podSelector: pods,
    policyTypes: ["Ingress"],
    ingress: [
      { _from: [{ podSelector: pods }], ports: [{ protocol: "TCP", port: 2101 }] },
      {
        _from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ops" } } }],
        ports: [{ protocol: "TCP", port: 3030 }],
      },
    ],
  });
});

test("NetworkPolicy API clients: namespace labels, pod labels, or both in one peer; none adds no peer", () => {
  const peers = (clients: Partial<typeof DEFAULT_API_CLIENTS>) =>
    desiredNetworkPolicy(dataflow(), { ...DEFAULT_API_CLIENTS, ...clients }).spec?.ingress?.[1]?._from?.slice(1);
  // Empty label sets must not become empty selectors, which would admit every pod.
  expect(peers({ namespaceLabels: {}, podLabels: {} })).toEqual([]);
  expect(peers({ namespaceLabels: { team: "obs" } })).toEqual([
    { namespaceSelector: { matchLabels: { team: "obs" } } },
  ]);
  expect(peers({ podLabels: { app: "prometheus" } })).toEqual([
    { namespaceSelector: {}, podSelector: { matchLabels: { app: "prometheus" } } },
  ]);
  expect(peers({ namespaceLabels: { team: "obs" }, podLabels: { app: "prometheus" } })).toEqual([
    { namespaceSelector: { matchLabels: { team: "obs" } }, podSelector: { matchLabels: { app: "prometheus" } } },
  ]);
});

test("API client labels from the controller's environment: k=v pairs; anything else names the variable", () => {
  expect(parseLabels("", "X")).toEqual({});
  expect(parseLabels("app.kubernetes.io/name=prometheus, team=obs", "X")).toEqual({
    "app.kubernetes.io/name": "prometheus",
    team: "obs",
  });
  expect(() => parseLabels("team", "API_CLIENT_POD_LABELS")).toThrow(
    /^API_CLIENT_POD_LABELS: "team" is not a label key=value/,
  );
  expect(() => parseLabels("a=b c", "X")).toThrow(/"a=b c" is not a label/);
});

test("no service-account token in the pods unless the spec names an account", () => {
  const spec = (df: Dataflow) => podTemplate(df, withDefaults(df.spec)).spec;
  expect(spec(dataflow())?.automountServiceAccountToken).toBe(false);
  expect(spec(dataflow())?.serviceAccountName).toBeUndefined();
  const named = spec(dataflow({ serviceAccountName: "reader" }));
  expect(named?.automountServiceAccountToken).toBeUndefined();
  expect(named?.serviceAccountName).toBe("reader");
  const inTemplate = spec(dataflow({ podTemplate: { spec: { serviceAccountName: "reader", containers: [] } } }));
  expect(inTemplate?.automountServiceAccountToken).toBeUndefined();
});

test("privileged fields: each way onto the node, named by container or volume; a safe template has none", () => {
  expect(privilegedFields(undefined)).toEqual([]);
  expect(
    privilegedFields({
      spec: {
        hostPID: true,
        hostIPC: false,
        containers: [
          { name: "waxflow", securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } },
          { name: "a", securityContext: { allowPrivilegeEscalation: true, capabilities: { add: ["SYS_ADMIN"] } } },
        ],
        initContainers: [{ name: "init", securityContext: { privileged: true } }],
        volumes: [{ name: "tmp", emptyDir: {} }],
      },
    }),
  ).toEqual([
    "spec.podTemplate.spec.hostPID: host namespaces are refused",
    "spec.podTemplate.spec.containers[name=a].securityContext.allowPrivilegeEscalation: privilege escalation is refused",
    "spec.podTemplate.spec.containers[name=a].securityContext.capabilities.add: added capabilities are refused",
    "spec.podTemplate.spec.initContainers[name=init].securityContext.privileged: privileged containers are refused",
  ]);
});

test("the pod template overlay adds sidecars and fields but cannot override the contract", () => {
  const df = dataflow({
    podTemplate: {
      metadata: { labels: { team: "a", "waxflow.io/dataflow": "other" } },
      spec: {
        nodeSelector: { disk: "ssd" },
        containers: [
          { name: "waxflow", image: "evil", env: [{ name: "X", value: "1" }] },
          { name: "sidecar", image: "s" },
        ],
      },
    },
  });
  const t = podTemplate(df, withDefaults(df.spec));
  expect(t.metadata?.labels).toMatchObject({ team: "a", "waxflow.io/dataflow": "wc" });
  expect(t.spec?.nodeSelector).toEqual({ disk: "ssd" });
  expect(t.spec?.containers.map((c) => c.name)).toEqual(["waxflow", "sidecar"]);
  expect(t.spec?.containers[0]?.image).toBe(IMAGE);
  expect(t.spec?.containers[0]?.env?.at(-1)).toEqual({ name: "X", value: "1" });
});

test("the template hash changes with what the pods see and not with the replica count", () => {
  const h = (df: Dataflow, r: number) =>
    desiredStatefulSet(df, withDefaults(df.spec), r).spec?.template.metadata?.annotations?.[TEMPLATE_HASH];
  expect(h(dataflow(), 1)).toBe(h(dataflow(), 0));
  expect(h(dataflow({ restartNonce: 1 }), 1)).not.toBe(h(dataflow(), 1));
  expect(h(dataflow({ processes: 2 }), 1)).not.toBe(h(dataflow(), 1));
  expect(h(dataflow({ state: "suspended" }), 1)).toBe(h(dataflow(), 1));
});

test("durations", () => {
  expect(durationSeconds("1m30s")).toBe(90);
  expect(durationSeconds("500ms")).toBe(0.5);
  expect(() => durationSeconds("5x")).toThrow(/not a duration/);
});

test("spec diff classes: the largest class wins", () => {
  const base = withDefaults(dataflow().spec);
  expect(classifySpecDiff(base, base).class).toBe("none");
  expect(classifySpecDiff(base, { ...base, state: "suspended" }).class).toBe("ignore");
  const retained = {
    ...base,
    recovery: { ...base.recovery, retention: { whenDeleted: "Delete", whenScaled: "Retain" } },
  };
  expect(classifySpecDiff(base, retained as typeof base)).toEqual({
    class: "ignore",
    fields: ["recovery.retention"],
  });
  expect(classifySpecDiff(base, { ...base, processes: 4 })).toEqual({ class: "scale", fields: ["processes"] });
  expect(classifySpecDiff(base, { ...base, processes: 4, image: "x" })).toEqual({
    class: "upgrade",
    fields: ["image", "processes"],
  });
  expect(classifySpecDiff(undefined, base).class).toBe("upgrade");
});
