// `waxctl install` / `uninstall` and the chart's manifests against a real kube-apiserver
// (controller/test/harness). No scheduler runs: the controller Deployment gets no pods, so
// the tests check the objects, and prove the RBAC is enough by running the controller's
// own code in this process as the installed ServiceAccount.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
} from "@kubernetes/client-node";
import { CRD_NAME, type Dataflow, GROUP, PLURAL, VERSION } from "@waxflow/crds";
import { loadAll } from "js-yaml";
import { afterAll, beforeAll, describe, expect, test, vi } from "vitest";
import { Controller } from "../../controller/src/controller.ts";
import { LeaderElector } from "../../controller/src/kube/leader.ts";
import { setQuiet } from "../../controller/src/log.ts";
import { createDataflow, startCluster, type TestCluster } from "../../controller/test/harness/apiserver.ts";
import type { ObjectResult } from "../src/install/cluster.ts";
import { CONTROLLER, LEASE } from "../src/install/manifests.ts";
import { helmBinary, repoRoot } from "./tools.ts";
import { type Outcome, waxctl as run } from "./waxctl.ts";

vi.setConfig({ testTimeout: 60_000 });

const NS = "waxflow-system";
/** Given to every install: by default waxctl takes the controller image this machine built last. */
const IMAGE = `waxflow.local/waxflow-controller@sha256:${"e".repeat(64)}`;
const SERVICE_ACCOUNT = `system:serviceaccount:${NS}:${CONTROLLER}`;
let cluster: TestCluster;
let kc: KubeConfig;
let objects: KubernetesObjectApi;

const waxctl = (...args: string[]): Promise<Outcome> =>
  run([
    ...args,
    ...(args[0] === "install" && !args.includes("--image") ? ["--image", IMAGE] : []),
    "--kubeconfig",
    cluster.kubeconfigPath,
  ]);

async function json<T>(...args: string[]): Promise<T> {
  const { stdout, stderr, error } = await waxctl(...args, "--json");
  expect(error, stderr).toBeUndefined();
  return JSON.parse(stdout) as T;
}

async function exists(apiVersion: string, kind: string, name: string, namespace?: string): Promise<boolean> {
  try {
    await objects.read({ apiVersion, kind, metadata: { name, namespace } });
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return false;
    throw err;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The same cluster, every request made as `user` (Impersonate-User). */
function impersonating(user: string): KubeConfig {
  const config = JSON.parse(readFileSync(cluster.kubeconfigPath, "utf8")) as {
    users: { user: Record<string, string> }[];
  };
  for (const u of config.users) u.user.as = user;
  const file = join(cluster.dir, "impersonating.kubeconfig");
  writeFileSync(file, JSON.stringify(config));
  const out = new KubeConfig();
  out.loadFromFile(file);
  return out;
}

beforeAll(async () => {
  setQuiet(true);
  cluster = await startCluster();
  kc = cluster.kubeConfig();
  objects = KubernetesObjectApi.makeApiClient(kc);
  const core = kc.makeApiClient(CoreV1Api);
  for (const name of ["team-a", "team-b"]) await core.createNamespace({ body: { metadata: { name } } });
}, 3_600_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

const EXPECTED = [
  "CustomResourceDefinition/dataflows.waxflow.io",
  "Namespace/waxflow-system",
  "ServiceAccount/waxflow-controller",
  "ClusterRole/waxflow-controller",
  "RoleBinding/waxflow-controller",
  "Role/waxflow-controller-leader-election",
  "RoleBinding/waxflow-controller-leader-election",
  "Deployment/waxflow-controller",
  "Service/waxflow-controller-metrics",
];

describe("waxctl install", () => {
  test("applies the CRD, RBAC for the watched namespace only, and the controller", async () => {
    const first = await json<{ objects: ObjectResult[] }>("install", "--watch-namespace", "team-a");
    expect(first.objects.map((o) => `${o.kind}/${o.name}`)).toEqual(EXPECTED);
    expect(first.objects.map((o) => o.result)).toEqual(EXPECTED.map(() => "created"));
    expect(first.objects.find((o) => o.kind === "RoleBinding")?.namespace).toBe("team-a");

    const crd = (await objects.read({
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: CRD_NAME },
    })) as KubernetesObject & { status?: { conditions?: { type: string; status: string }[] } };
    expect(crd.status?.conditions).toContainEqual(expect.objectContaining({ type: "Established", status: "True" }));
    expect(await exists("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", CONTROLLER)).toBe(false);
    const deployment = (await objects.read({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: CONTROLLER, namespace: NS },
    })) as KubernetesObject & {
      spec: { template: { spec: { containers: { image: string; env: { name: string; value?: string }[] }[] } } };
    };
    const [container] = deployment.spec.template.spec.containers;
    expect(container?.image).toBe(IMAGE);
    expect(container?.env).toContainEqual({ name: "WATCH_NAMESPACES", value: "team-a" });
    expect(deployment.metadata?.managedFields).toContainEqual(
      expect.objectContaining({ manager: "waxctl", operation: "Apply" }),
    );
  });

  test("is idempotent: a second install changes nothing, a new image changes only the Deployment", async () => {
    const again = await waxctl("install", "--watch-namespace", "team-a");
    expect(again.error, again.stderr).toBeUndefined();
    expect(again.stdout).toContain("Deployment/waxflow-controller (waxflow-system) unchanged");
    expect(
      again.stdout
        .trimEnd()
        .split("\n")
        .every((line) => line.endsWith(" unchanged")),
    ).toBe(true);

    const image = "registry.example/waxflow-controller:9.9.9";
    const changed = await json<{ objects: ObjectResult[] }>("install", "--watch-namespace", "team-a", "--image", image);
    const configured = changed.objects.filter((o) => o.result !== "unchanged").map((o) => `${o.kind}/${o.name}`);
    expect(configured).toEqual(["Deployment/waxflow-controller"]);
  });

  test("a watched namespace that does not exist is refused before anything is applied", async () => {
    const { stderr, error } = await waxctl("install", "--watch-namespace", "nope", "-n", "elsewhere");
    expect(stderr).toMatch(/^error: --watch-namespace nope: no such namespace; create it first/);
    expect(error?.oclif?.exit).toBe(1);
    expect(await exists("v1", "Namespace", "elsewhere")).toBe(false);
  });

  test("--wait fails with the reason when the controller never becomes available", async () => {
    const { stderr, error } = await waxctl("install", "--watch-namespace", "team-a", "--wait", "--timeout", "2");
    expect(stderr).toMatch(/^error: the controller is not available after 2 s/m);
    expect(error?.oclif?.exit).toBe(1);
  });

  test("the installed RBAC is enough for the controller's own code, and no more", async () => {
    const asController = impersonating(SERVICE_ACCOUNT);
    const elector = new LeaderElector(asController, { namespace: NS, name: LEASE, identity: "rbac-test" });
    await Promise.race([
      elector.acquire(),
      new Promise((_, reject) => setTimeout(() => reject(new Error("could not take the Lease")), 10_000)),
    ]);
    await elector.release();

    const controller = new Controller(asController, {
      namespaces: ["team-a"],
      watch: { resyncMs: 5_000, stallMs: 20_000, maxBackoffMs: 1_000 },
    });
    controller.start();
    try {
      await waitFor("the controller's watches to list", async () => controller.synced);
      const custom = kc.makeApiClient(CustomObjectsApi);
      const ref = { group: GROUP, version: VERSION, plural: PLURAL, namespace: "team-a" };
      const df: Dataflow = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "Dataflow",
        metadata: { name: "rbac", namespace: "team-a" },
        // With recovery, so the finalizer and the volume rules are exercised too.
        spec: {
          image: `registry.local/flow@sha256:${"a".repeat(64)}`,
          module: "/app/flow.js",
          processes: 2,
          recovery: { enabled: true },
        },
      };
      await custom.createNamespacedCustomObject({ ...ref, body: df });
      // finalizer (patch), StatefulSet and Services (apply), status (update), events (create)
      await waitFor("the owned objects", async () => await exists("apps/v1", "StatefulSet", "rbac", "team-a"));
      await waitFor("the status", async () => {
        const live = (await custom.getNamespacedCustomObject({ ...ref, name: "rbac" })) as Dataflow;
        return live.status?.phase !== undefined && (live.metadata?.finalizers ?? []).length > 0;
      });
      expect(await exists("v1", "Service", "rbac", "team-a")).toBe(true);
      const events = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: "team-a" });
      expect(events.items.some((e) => e.involvedObject.name === "rbac")).toBe(true);
      // delete: owned objects removed (delete), finalizer released (patch)
      await custom.deleteNamespacedCustomObject({ ...ref, name: "rbac" });
      await waitFor(
        "the Dataflow to be gone",
        async () => !(await exists(`${GROUP}/${VERSION}`, "Dataflow", "rbac", "team-a")),
      );
      expect(await exists("apps/v1", "StatefulSet", "rbac", "team-a")).toBe(false);
    } finally {
      await controller.stop();
    }

    const core = asController.makeApiClient(CoreV1Api);
    const forbidden = (p: Promise<unknown>) => expect(p).rejects.toMatchObject({ code: 403 });
    await forbidden(
      asController
        .makeApiClient(CustomObjectsApi)
        .listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: "team-b" }),
    );
    await forbidden(core.listNamespacedSecret({ namespace: "team-a" }));
    await forbidden(core.listNamespacedPod({ namespace: "team-b" }));
  });
});

describe("waxctl uninstall", () => {
  test("without --yes lists what it would delete and deletes nothing", async () => {
    const { stdout, stderr, error } = await waxctl("uninstall");
    expect(stdout).toContain("would delete Deployment/waxflow-controller (waxflow-system)");
    expect(stdout).toContain("would delete RoleBinding/waxflow-controller (team-a)");
    expect(stdout).toContain(`CRD ${CRD_NAME} and the Dataflows are kept`);
    expect(stderr).toMatch(/^error: nothing deleted: add --yes/);
    expect(error?.oclif?.exit).toBe(2);
    expect(await exists("apps/v1", "Deployment", CONTROLLER, NS)).toBe(true);
  });

  test("--yes removes the operator, its RoleBindings in watched namespaces, and keeps the CRD and namespace", async () => {
    const { objects: removed } = await json<{ objects: ObjectResult[] }>("uninstall", "--yes");
    expect(removed[0]).toMatchObject({ kind: "Deployment", result: "deleted" });
    expect(removed).toContainEqual({ kind: "RoleBinding", name: CONTROLLER, namespace: "team-a", result: "deleted" });
    expect(removed).toContainEqual({ kind: "CustomResourceDefinition", name: CRD_NAME, result: "kept" });
    expect(removed.filter((o) => o.result === "deleted")).toHaveLength(EXPECTED.length - 2);
    for (const [apiVersion, kind, name, namespace] of [
      ["apps/v1", "Deployment", CONTROLLER, NS],
      ["v1", "ServiceAccount", CONTROLLER, NS],
      ["rbac.authorization.k8s.io/v1", "ClusterRole", CONTROLLER, undefined],
      ["rbac.authorization.k8s.io/v1", "RoleBinding", CONTROLLER, "team-a"],
    ] as const) {
      await waitFor(`${kind}/${name} to be gone`, async () => !(await exists(apiVersion, kind, name, namespace)));
    }
    expect(await exists("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME)).toBe(true);
    expect(await exists("v1", "Namespace", NS)).toBe(true);

    const again = await json<{ objects: ObjectResult[] }>("uninstall", "--yes");
    expect(again.objects.filter((o) => o.kind !== "CustomResourceDefinition").map((o) => o.result)).toEqual(
      again.objects.slice(1).map(() => "absent"),
    );
  });

  test("--crds warns, deletes the Dataflows, then the CRD", async () => {
    await json("install");
    await createDataflow(kc, "team-b", "doomed", {
      image: `registry.local/flow@sha256:${"b".repeat(64)}`,
      module: "/app/flow.js",
    });
    const { stderr, error } = await waxctl("uninstall", "--crds", "--yes");
    expect(error, stderr).toBeUndefined();
    expect(stderr).toContain(`warning: deleting CRD ${CRD_NAME} deletes all 1 Dataflows`);
    await waitFor(
      "the CRD to be gone",
      async () => !(await exists("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME)),
    );
    expect(await exists("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", CONTROLLER)).toBe(false);
  });
});

describe("the chart's rendered manifests", () => {
  const render = (namespace: string, ...values: string[]) =>
    (
      loadAll(
        execFileSync(
          helmBinary(),
          [
            "template",
            "waxflow",
            join(repoRoot, "charts", "waxflow-operator"),
            "-n",
            namespace,
            "--include-crds",
            "--set",
            `image.digest=${IMAGE.split("@")[1]}`,
            ...values,
          ],
          {
            encoding: "utf8",
          },
        ),
      ) as unknown[]
    ).filter((o): o is KubernetesObject => o !== null);
  const apply = (o: KubernetesObject, dryRun?: "All") =>
    objects.patch(
      loadYaml<KubernetesObject>(JSON.stringify(o)),
      undefined,
      dryRun,
      "chart-test",
      true,
      PatchStrategy.ServerSideApply,
    );

  test("are accepted by the API server: the CRD for real, every other object in a server-side dry run", async () => {
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: "chart" } } });
    const all = [
      ...render("chart"),
      ...render("chart", "--set", "watchNamespaces={team-a,team-b}", "--set", "leaderElection.enabled=false"),
    ];
    const [crd, ...rest] = all.filter((o, i) => o.kind !== "CustomResourceDefinition" || i === 0);
    expect(crd?.kind).toBe("CustomResourceDefinition");
    await apply(crd as KubernetesObject);
    expect(rest.map((o) => o.kind)).toEqual(
      expect.arrayContaining(["ClusterRoleBinding", "RoleBinding", "Role", "Deployment", "Service"]),
    );
    for (const o of rest) await apply(o, "All");
    expect(await exists("apps/v1", "Deployment", CONTROLLER, "chart")).toBe(false);
  });

  test("the dry run is a real check: an invalid Deployment is refused", async () => {
    const deployment = render("chart").find((o) => o.kind === "Deployment") as KubernetesObject & {
      spec: { replicas: number };
    };
    deployment.spec.replicas = -1;
    await expect(apply(deployment, "All")).rejects.toMatchObject({ code: 422 });
  });
});
