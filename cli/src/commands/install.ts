import type { KubernetesObject } from "@kubernetes/client-node";
import { Flags } from "@oclif/core";
import { LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN } from "@waxflow/crds";
import { dump } from "js-yaml";
import { ClusterCommand } from "../base.ts";
import { namespaceName } from "../deploy/options.ts";
import { UsageError } from "../errors.ts";
import type { ObjectResult } from "../install/cluster.ts";
import { builtControllerImage } from "../install/image.ts";
import {
  DEFAULT_NAMESPACE,
  defaultInstallOptions,
  type InstallOptions,
  installManifests,
} from "../install/manifests.ts";
import { targetNamespace } from "../kube.ts";

export interface InstallResult {
  readonly namespace: string;
  readonly image: string;
  readonly objects: readonly ObjectResult[];
}

export default class Install extends ClusterCommand {
  static override summary = "Install the Dataflow CRD and the waxflow operator into the cluster.";
  static override description =
    "Server-side applies (field manager waxctl) the same objects as the Helm chart charts/waxflow-operator: the CRD, the namespace, the controller's ServiceAccount and least-privilege RBAC, its Deployment and metrics Service. Running it again changes only what differs.";

  static override examples = [
    {
      description: "Install into waxflow-system and wait for the controller:",
      command: "<%= config.bin %> <%= command.id %> --wait",
    },
    {
      description: "Manage Dataflows only in two namespaces:",
      command: "<%= config.bin %> <%= command.id %> --watch-namespace team-a --watch-namespace team-b",
    },
    { description: "See what would be applied:", command: "<%= config.bin %> <%= command.id %> --dry-run -o yaml" },
  ];

  static override flags = {
    namespace: Flags.string({
      char: "n",
      description: "Namespace of the operator (created when missing).",
      default: DEFAULT_NAMESPACE,
      helpGroup: "CLUSTER",
      helpValue: "NAME",
    }),
    image: Flags.string({
      description:
        "Controller image, best by digest (default: the waxflow-controller that `npm run images` built last, by digest).",
      helpValue: "REF",
    }),
    "api-client-namespace-label": Flags.string({
      description:
        "Let pods of namespaces with this label reach the Dataflows' API port 3030 (say, Prometheus'); repeat to require more labels.",
      multiple: true,
      multipleNonGreedy: true,
      helpValue: "KEY=VALUE",
    }),
    "api-client-pod-label": Flags.string({
      description:
        "Let pods with this label reach the Dataflows' API port 3030, in any namespace or in those --api-client-namespace-label selects; repeat to require more labels.",
      multiple: true,
      multipleNonGreedy: true,
      helpValue: "KEY=VALUE",
    }),
    "watch-namespace": Flags.string({
      description: "Manage Dataflows only in this namespace; repeat for more (default: all namespaces).",
      multiple: true,
      multipleNonGreedy: true,
      helpValue: "NAME",
    }),
    "allow-privileged-dataflows": Flags.boolean({
      description:
        "Run the pod template a Dataflow with spec.allowPrivileged asks for: privileged containers, host namespaces, hostPath volumes, added capabilities (default: refused).",
      default: false,
    }),
    "dry-run": Flags.boolean({ description: "Print the objects that would be applied; change nothing." }),
    output: Flags.option({ char: "o", description: "Format of the dry run.", options: ["yaml", "json"] as const })(),
    wait: Flags.boolean({ description: "Wait until the controller Deployment is available." }),
    timeout: Flags.integer({ description: "Seconds --wait waits.", default: 120, min: 1, helpValue: "SECONDS" }),
  };

  async run(): Promise<InstallResult | { apiVersion: "v1"; kind: "List"; items: KubernetesObject[] }> {
    const { flags } = await this.parse(Install);
    if (flags.output !== undefined && !flags["dry-run"]) {
      throw new UsageError("-o/--output only applies with --dry-run; add --dry-run");
    }
    const watch = flags["watch-namespace"] ?? [];
    for (const ns of watch) namespaceName("--watch-namespace", ns);
    const namespace = targetNamespace(flags, undefined);
    const options: InstallOptions = {
      ...defaultInstallOptions(flags.image ?? builtControllerImage()),
      namespace,
      watchNamespaces: [...new Set(watch)],
      apiClients: {
        namespaceLabels: labelFlags("--api-client-namespace-label", flags["api-client-namespace-label"]),
        podLabels: labelFlags("--api-client-pod-label", flags["api-client-pod-label"]),
      },
      allowPrivilegedDataflows: flags["allow-privileged-dataflows"],
    };
    if (flags["dry-run"]) {
      const list = { apiVersion: "v1" as const, kind: "List" as const, items: installManifests(options) };
      this.log(
        flags.output === "json"
          ? JSON.stringify(list, null, 2)
          : list.items.map((o) => dump(o, { lineWidth: -1, noRefs: true }).trimEnd()).join("\n---\n"),
      );
      return list;
    }
    const { installerFor } = await import("../install/cluster.ts");
    const installer = await installerFor(flags);
    const objects = await installer.install(options, (r) =>
      this.log(`${r.kind}/${r.name}${r.namespace === undefined ? "" : ` (${r.namespace})`} ${r.result}`),
    );
    if (flags.wait) {
      this.log(`waiting for deployment/waxflow-controller in ${namespace} to be available`);
      await installer.waitAvailable(namespace, flags.timeout * 1000);
      this.log("the controller is available");
    }
    return { namespace, image: options.image, objects };
  }
}

/** KEY=VALUE flags to labels, checked as the API server would check them. */
function labelFlags(flag: string, values: readonly string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const v of values ?? []) {
    const eq = v.indexOf("=");
    const [key, value] = eq < 0 ? [v, ""] : [v.slice(0, eq), v.slice(eq + 1)];
    if (eq < 0 || !new RegExp(LABEL_KEY_PATTERN).test(key) || !new RegExp(LABEL_VALUE_PATTERN).test(value)) {
      throw new UsageError(`${flag} ${v}: not a label KEY=VALUE; e.g. ${flag} app.kubernetes.io/name=prometheus`);
    }
    labels[key] = value;
  }
  return labels;
}
