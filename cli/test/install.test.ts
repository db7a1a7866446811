// The install manifests as pure functions, and `waxctl install --dry-run` (no cluster).
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubernetesObject, V1ClusterRole, V1Deployment } from "@kubernetes/client-node";
import { loadAll } from "js-yaml";
import { expect, test } from "vitest";
import {
  CONTROLLER,
  controllerEnv,
  defaultInstallOptions,
  imageByDigest,
  installManifests,
  LEASE,
  uninstallObjects,
} from "../src/install/manifests.ts";
import { repoRoot } from "./tools.ts";
import { waxctl } from "./waxctl.ts";

const IMAGE = imageByDigest(`sha256:${"d".repeat(64)}`);
const defaults = defaultInstallOptions(IMAGE);
const names = (objects: KubernetesObject[]) =>
  objects.map((o) => `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`);

test("watching all namespaces binds the rules cluster-wide; a list binds them in each namespace only", () => {
  const all = installManifests(defaults);
  expect(names(all).filter((n) => n.includes("Binding"))).toEqual([
    "ClusterRoleBinding//waxflow-controller",
    "RoleBinding/waxflow-system/waxflow-controller-leader-election",
  ]);
  const some = installManifests({ ...defaults, watchNamespaces: ["a", "b"] });
  expect(names(some).filter((n) => n.includes("Binding"))).toEqual([
    "RoleBinding/a/waxflow-controller",
    "RoleBinding/b/waxflow-controller",
    "RoleBinding/waxflow-system/waxflow-controller-leader-election",
  ]);
});

test("the CRD comes first and the controller after its RBAC; no Lease rights without leader election", () => {
  const kinds = installManifests(defaults).map((o) => o.kind);
  expect(kinds[0]).toBe("CustomResourceDefinition");
  expect(kinds.indexOf("Deployment")).toBeGreaterThan(kinds.lastIndexOf("RoleBinding"));
  const single = installManifests({ ...defaults, leaderElection: false });
  expect(single.some((o) => o.kind === "Role")).toBe(false);
  const deployment = single.find((o): o is V1Deployment => o.kind === "Deployment");
  expect(deployment?.spec?.strategy?.type).toBe("Recreate");
});

test("nothing cluster-wide beyond Dataflows and their workers: no listing secrets, no CRDs, no wildcards", () => {
  const role = installManifests(defaults).find((o): o is V1ClusterRole => o.kind === "ClusterRole");
  const resources = role?.rules?.flatMap((r) => r.resources ?? []) ?? [];
  // Each Dataflow's cluster secret is created, and never listed, watched or changed; get
  // (asked as metadata only) tells whether a Secret or ConfigMap a waiting pod needs exists.
  const secrets = role?.rules?.filter((r) => r.resources?.includes("secrets"));
  expect(secrets?.map((r) => r.verbs)).toEqual([["create", "get"]]);
  const maps = role?.rules?.filter((r) => r.resources?.includes("configmaps"));
  expect(maps?.map((r) => r.verbs)).toEqual([["get"]]);
  expect(resources).not.toContain("customresourcedefinitions");
  expect(JSON.stringify(role)).not.toContain("*");
  // Each Dataflow's NetworkPolicy: applied (create, patch), watched and read, never deleted by hand.
  expect(role?.rules).toContainEqual({
    apiGroups: ["networking.k8s.io"],
    resources: ["networkpolicies"],
    verbs: ["get", "list", "watch", "create", "patch"],
  });
  // upgradeMode savepoint: process 0's savepoint API through the pod proxy, nothing else of pods/*.
  expect(role?.rules).toContainEqual({ apiGroups: [""], resources: ["pods/proxy"], verbs: ["create", "get"] });
  // And its PodDisruptionBudget, the same way.
  expect(role?.rules).toContainEqual({
    apiGroups: ["policy"],
    resources: ["poddisruptionbudgets"],
    verbs: ["get", "list", "watch", "create", "patch"],
  });
});

test("API client labels reach the controller as k=v lists, sorted as the chart writes them", () => {
  const env = controllerEnv({
    ...defaults,
    apiClients: { namespaceLabels: { team: "obs", "kubernetes.io/metadata.name": "monitoring" }, podLabels: {} },
  });
  expect(env).toContainEqual({
    name: "API_CLIENT_NAMESPACE_LABELS",
    value: "kubernetes.io/metadata.name=monitoring,team=obs",
  });
  expect(env).toContainEqual({ name: "API_CLIENT_POD_LABELS", value: "" });
});

test("the controller runs non-root on a read-only root filesystem, probed on /healthz, with the env main.ts reads", () => {
  const deployment = installManifests(defaults).find((o): o is V1Deployment => o.kind === "Deployment");
  const pod = deployment?.spec?.template.spec;
  const [container] = pod?.containers ?? [];
  expect(pod?.securityContext?.runAsNonRoot).toBe(true);
  expect(container?.securityContext).toEqual({
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  });
  expect(container?.image).toBe(IMAGE);
  expect(container?.imagePullPolicy).toBe("IfNotPresent");
  expect(container?.livenessProbe?.httpGet).toEqual({ path: "/healthz", port: "metrics" });
  expect(container?.readinessProbe?.httpGet).toEqual({ path: "/healthz", port: "metrics" });
  // A renamed variable in the controller must not go unnoticed here.
  const main = readFileSync(join(repoRoot, "controller", "src", "main.ts"), "utf8");
  for (const { name } of controllerEnv(defaults)) expect(main).toContain(`env.${name}`);
  expect(main).toContain(`name: "${LEASE}"`); // the Lease the Role lets it renew
});

test("uninstall removes the controller first, keeps the namespace, and the CRD unless asked", () => {
  const extra = {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: CONTROLLER, namespace: "a" },
  };
  const leader = installManifests(defaults).find((o) => o.kind === "RoleBinding");
  const kept = uninstallObjects("waxflow-system", [extra, leader ?? extra], false);
  expect(kept[0]?.kind).toBe("Deployment");
  expect(kept.map((o) => o.kind)).not.toContain("Namespace");
  expect(kept.map((o) => o.kind)).not.toContain("CustomResourceDefinition");
  expect(names(kept).filter((n) => n === "RoleBinding/waxflow-system/waxflow-controller-leader-election")).toHaveLength(
    1,
  );
  expect(names(kept)).toContain("RoleBinding/a/waxflow-controller");
  expect(uninstallObjects("waxflow-system", [], true).at(-1)?.kind).toBe("CustomResourceDefinition");
});

/** Runs `waxctl` with $WAXFLOW_CACHE at a fresh folder, holding an images build summary when given one. */
async function withCache<T>(summary: object | undefined, body: () => Promise<T>): Promise<T> {
  const cache = mkdtempSync(join(tmpdir(), "waxctl-cache-"));
  if (summary !== undefined) {
    mkdirSync(join(cache, "images", "current"), { recursive: true });
    writeFileSync(join(cache, "images", "current", "images.json"), JSON.stringify(summary));
  }
  const before = process.env.WAXFLOW_CACHE;
  process.env.WAXFLOW_CACHE = cache;
  try {
    return await body();
  } finally {
    if (before === undefined) delete process.env.WAXFLOW_CACHE;
    else process.env.WAXFLOW_CACHE = before;
  }
}

test("install --dry-run -o yaml prints every object and needs no cluster; the image is the last build's, by digest", async () => {
  const { stdout, error } = await withCache({ controller: { reference: IMAGE } }, () =>
    waxctl(["install", "--dry-run", "-o", "yaml", "-n", "ops", "--watch-namespace", "a"]),
  );
  expect(error).toBeUndefined();
  const printed = loadAll(stdout) as KubernetesObject[];
  expect(printed).toEqual(installManifests({ ...defaults, namespace: "ops", watchNamespaces: ["a"] }));
  const json = await waxctl(["install", "--dry-run", "-o", "json", "--image", "r.example/c:2"]);
  const list = JSON.parse(json.stdout) as { kind: string; items: V1Deployment[] };
  expect(list.kind).toBe("List");
  expect(JSON.stringify(list.items.find((o) => o.kind === "Deployment"))).toContain('"image":"r.example/c:2"');
});

test.each([
  [["--watch-namespace", "Team_A", "--dry-run"], /^error: --watch-namespace "Team_A" is not a namespace name/],
  [["-n", "Bad_NS", "--dry-run"], /^error: -n\/--namespace "Bad_NS" is not a namespace name/],
  [["-o", "yaml"], /^error: -o\/--output only applies with --dry-run/],
  [
    ["--dry-run", "--api-client-pod-label", "app"],
    /^error: --api-client-pod-label app: not a label KEY=VALUE; e.g. --api-client-pod-label app.kubernetes.io\/name=prometheus/,
  ],
  [["--dry-run", "--api-client-namespace-label", "_a=b"], /^error: --api-client-namespace-label _a=b: not a label/],
])("install %j fails with one line naming the flag, exit 2", async (args, message) => {
  const { stderr, error } = await waxctl(["install", "--image", IMAGE, ...args]);
  expect(stderr).toMatch(message);
  expect(error?.oclif?.exit).toBe(2);
});

test("install without --image and without a local images build says how to get one, exit 2", async () => {
  const { stderr, error } = await withCache(undefined, () => waxctl(["install", "--dry-run"]));
  expect(stderr).toMatch(
    /^error: no controller image built here \(.*images\/current\/images.json\): pass --image REPO@sha256:<digest>, or build it with npm run images\n$/,
  );
  expect(error?.oclif?.exit).toBe(2);
});

test("install --api-client-*-label puts the labels into the controller's environment", async () => {
  const { stdout, error } = await waxctl([
    "install",
    "--dry-run",
    "-o",
    "json",
    "--image",
    IMAGE,
    "--api-client-namespace-label",
    "kubernetes.io/metadata.name=monitoring",
    "--api-client-pod-label",
    "app.kubernetes.io/name=prometheus",
  ]);
  expect(error).toBeUndefined();
  const deployment = (JSON.parse(stdout) as { items: V1Deployment[] }).items.find((o) => o.kind === "Deployment");
  const env = deployment?.spec?.template.spec?.containers[0]?.env ?? [];
  expect(env).toContainEqual({ name: "API_CLIENT_NAMESPACE_LABELS", value: "kubernetes.io/metadata.name=monitoring" });
  expect(env).toContainEqual({ name: "API_CLIENT_POD_LABELS", value: "app.kubernetes.io/name=prometheus" });
});

test("install --allow-privileged-dataflows tells the controller; without it privileged Dataflows are refused", async () => {
  const env = async (...args: string[]) => {
    const { stdout } = await waxctl(["install", "--dry-run", "-o", "json", "--image", IMAGE, ...args]);
    const deployment = (JSON.parse(stdout) as { items: V1Deployment[] }).items.find((o) => o.kind === "Deployment");
    return deployment?.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === "ALLOW_PRIVILEGED_DATAFLOWS");
  };
  expect(await env()).toEqual({ name: "ALLOW_PRIVILEGED_DATAFLOWS", value: "false" });
  expect(await env("--allow-privileged-dataflows")).toEqual({ name: "ALLOW_PRIVILEGED_DATAFLOWS", value: "true" });
});
