// charts/waxflow-operator against the real helm: it lints, and it renders the same objects
// as cli/src/install/manifests.ts (what `waxctl install` applies) for equivalent values.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { load, loadAll } from "js-yaml";
import { describe, expect, test } from "vitest";
import {
  DEFAULT_RESOURCES,
  defaultInstallOptions,
  type InstallOptions,
  imageByDigest,
  installManifests,
} from "../src/install/manifests.ts";
import { helmBinary, repoRoot } from "./tools.ts";

const chart = join(repoRoot, "charts", "waxflow-operator");
const chartMeta = load(readFileSync(join(chart, "Chart.yaml"), "utf8")) as { appVersion: string };
const cliVersion = (JSON.parse(readFileSync(join(repoRoot, "cli", "package.json"), "utf8")) as { version: string })
  .version;

test("the chart's CRD is the generated one (`npm run gen -w crds` writes both)", () => {
  const file = "dataflows.waxflow.io.yaml";
  expect(readFileSync(join(chart, "crds", file), "utf8")).toBe(readFileSync(join(repoRoot, "crds", file), "utf8"));
});

test("the chart's appVersion is waxctl's version", () => {
  expect(chartMeta.appVersion).toBe(cliVersion);
});

/** Labels differ by design (managed-by Helm or waxctl, release name); the pod template's are the selector's. */
function comparable(objects: KubernetesObject[]): KubernetesObject[] {
  return (JSON.parse(JSON.stringify(objects)) as KubernetesObject[])
    .filter((o) => o.kind !== "Namespace") // helm install --create-namespace makes it
    .filter((o) => o.metadata?.annotations?.["helm.sh/hook"] === undefined) // Helm's uninstall check
    .map((o) => {
      delete o.metadata?.labels;
      return o;
    })
    .sort((a, b) => key(a).localeCompare(key(b)));
}

function key(o: KubernetesObject): string {
  return `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
}

describe("helm", () => {
  const run = (...args: string[]) =>
    execFileSync(helmBinary(), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const template = (namespace: string, ...set: string[]) =>
    (
      loadAll(run("template", "waxflow", chart, "--namespace", namespace, "--include-crds", ...set)) as unknown[]
    ).filter((o): o is KubernetesObject => o !== null);

  const digest = `sha256:${"c".repeat(64)}`;
  const byDigest = ["--set", `image.digest=${digest}`];

  test("helm lint --strict passes", () => {
    expect(run("lint", chart, "--strict", ...byDigest)).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  test("the controller image is by digest: without one (or an explicit tag) the chart refuses to render", () => {
    expect(() => template("x")).toThrow(/image.digest is required/);
    expect(JSON.stringify(template("x", ...byDigest))).toContain(
      `"image":"waxflow.local/waxflow-controller@${digest}"`,
    );
  });

  const defaults = defaultInstallOptions(imageByDigest(digest));
  const cases: [string, string[], InstallOptions][] = [
    ["default values and a digest", byDigest, defaults],
    [
      "two watched namespaces, no leader election, a tag",
      ["--set", "watchNamespaces={team-a,team-b}", "--set", "leaderElection.enabled=false", "--set", "image.tag=1.2.3"],
      {
        ...defaults,
        namespace: "ops",
        watchNamespaces: ["team-a", "team-b"],
        leaderElection: false,
        image: "waxflow.local/waxflow-controller:1.2.3",
      },
    ],
    [
      "two replicas, an image by digest in another registry, more memory",
      [
        "--set",
        "replicas=2",
        "--set",
        "image.repository=registry.example/waxflow-controller",
        "--set",
        `image.digest=${digest}`,
        "--set",
        "resources.limits.memory=1Gi",
      ],
      {
        ...defaults,
        replicas: 2,
        image: `registry.example/waxflow-controller@${digest}`,
        resources: { ...DEFAULT_RESOURCES, limits: { memory: "1Gi" } },
      },
    ],
    [
      "API clients for Prometheus: namespace and pod labels",
      [
        ...byDigest,
        "--set",
        "dataflowApiClients.namespaceLabels.team=observability",
        "--set",
        "dataflowApiClients.namespaceLabels.kubernetes\\.io/metadata\\.name=monitoring",
        "--set",
        "dataflowApiClients.podLabels.app\\.kubernetes\\.io/name=prometheus",
      ],
      {
        ...defaults,
        apiClients: {
          namespaceLabels: { team: "observability", "kubernetes.io/metadata.name": "monitoring" },
          podLabels: { "app.kubernetes.io/name": "prometheus" },
        },
      },
    ],
    [
      "privileged Dataflows allowed",
      [...byDigest, "--set", "allowPrivilegedDataflows=true"],
      { ...defaults, allowPrivilegedDataflows: true },
    ],
  ];
  test.each(cases)("%s: helm template renders what waxctl install applies", (_, set, options) => {
    const rendered = template(options.namespace, ...set);
    const ours = installManifests(options);
    expect(comparable(rendered)).toEqual(comparable(ours));
    // Not vacuous: every kind is there, and the pod template carries exactly the selector's labels.
    expect(new Set(comparable(rendered).map((o) => o.kind))).toEqual(
      new Set(ours.map((o) => o.kind).filter((k) => k !== "Namespace")),
    );
  });

  test("the chart refuses more than one replica without leader election, as waxctl does", () => {
    expect(() => template("x", ...byDigest, "--set", "replicas=2", "--set", "leaderElection.enabled=false")).toThrow(
      /replicas > 1 needs leaderElection.enabled/,
    );
    expect(() => installManifests({ ...defaults, replicas: 2, leaderElection: false })).toThrow(/need leader election/);
  });

  test("values.schema.json refuses a misspelt value and an image digest that is not one, naming the value", () => {
    expect(() => template("x", "--set", "replica=2")).toThrow(/additional properties 'replica' not allowed/i);
    expect(() => template("x", "--set", "image.digest=latest")).toThrow(/image\.digest.*does not match pattern/is);
  });

  test("a pre-delete hook in the controller image checks, as the controller's account, that no Dataflow is left", () => {
    const job = template("ops", "--set", "watchNamespaces={team-a}", "--set", `image.digest=${digest}`).find(
      (o) => o.kind === "Job",
    );
    expect(job?.metadata?.annotations?.["helm.sh/hook"]).toBe("pre-delete");
    const pod = (job as { spec: { template: { spec: { serviceAccountName: string; containers: unknown[] } } } }).spec
      .template.spec;
    expect(pod.serviceAccountName).toBe("waxflow-controller");
    expect(pod.containers).toEqual([
      expect.objectContaining({
        image: `waxflow.local/waxflow-controller@${digest}`,
        env: [
          { name: "UNINSTALL_CHECK", value: "true" },
          { name: "WATCH_NAMESPACES", value: "team-a" },
        ],
      }),
    ]);
    expect(template("x", ...byDigest, "--set", "uninstallCheck.enabled=false").some((o) => o.kind === "Job")).toBe(
      false,
    );
  });

  test("metrics.service.enabled=false leaves the Service out; metrics.port moves port, probes and env together", () => {
    const off = template("x", ...byDigest, "--set", "metrics.service.enabled=false");
    expect(off.some((o) => o.kind === "Service")).toBe(false);
    const moved = JSON.stringify(template("x", ...byDigest, "--set", "metrics.port=9090"));
    expect(moved).toContain('"containerPort":9090');
    expect(moved).toContain('{"name":"PROBE_PORT","value":"9090"}');
    expect(moved).not.toContain("8080");
  });
});
