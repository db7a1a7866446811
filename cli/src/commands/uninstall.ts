import { Flags } from "@oclif/core";
import { CRD_NAME } from "@waxflow/crds";
import { ClusterCommand } from "../base.ts";
import { UsageError } from "../errors.ts";
import type { ObjectResult } from "../install/cluster.ts";
import { DEFAULT_NAMESPACE, uninstallObjects } from "../install/manifests.ts";
import { targetNamespace } from "../kube.ts";

export default class Uninstall extends ClusterCommand {
  static override summary = "Remove the waxflow operator from the cluster; the CRD and Dataflows stay unless --crds.";
  static override description =
    "Deletes what `waxctl install` applied: the controller Deployment and metrics Service, its RBAC (also the RoleBindings in watched namespaces) and ServiceAccount. The namespace is kept. Without --yes it only lists what it would delete.\n\n--crds also deletes every Dataflow (waiting while the controller tears down their workers) and then the CRD.";

  static override examples = [
    { description: "See what would be removed:", command: "<%= config.bin %> <%= command.id %>" },
    {
      description: "Remove the operator, keep the CRD and Dataflows:",
      command: "<%= config.bin %> <%= command.id %> --yes",
    },
    { description: "Remove everything, Dataflows too:", command: "<%= config.bin %> <%= command.id %> --crds --yes" },
  ];

  static override flags = {
    namespace: Flags.string({
      char: "n",
      description: "Namespace of the operator.",
      default: DEFAULT_NAMESPACE,
      helpGroup: "CLUSTER",
      helpValue: "NAME",
    }),
    crds: Flags.boolean({ description: "Also delete the Dataflow CRD, which deletes every Dataflow in the cluster." }),
    yes: Flags.boolean({ char: "y", description: "Delete; without it, only list what would be deleted." }),
    timeout: Flags.integer({
      description: "Seconds --crds waits for the Dataflows to be gone.",
      default: 300,
      min: 1,
      helpValue: "SECONDS",
    }),
  };

  async run(): Promise<{ namespace: string; objects: readonly ObjectResult[] }> {
    const { flags } = await this.parse(Uninstall);
    const namespace = targetNamespace(flags, undefined);
    const { installerFor } = await import("../install/cluster.ts");
    const installer = await installerFor(flags);
    const objects = uninstallObjects(namespace, await installer.installedRoleBindings(), flags.crds);
    const dataflows = flags.crds ? ((await installer.dataflows())?.length ?? 0) : 0;
    const crdNote = flags.crds
      ? `deleting CRD ${CRD_NAME} deletes all ${dataflows} Dataflows in the cluster and their workers`
      : `CRD ${CRD_NAME} and the Dataflows are kept (--crds deletes them)`;
    if (!flags.yes) {
      for (const o of objects) this.log(`would delete ${o.kind}/${o.metadata?.name}${scope(o.metadata?.namespace)}`);
      this.log(crdNote);
      throw new UsageError("nothing deleted: add --yes to delete these objects");
    }
    if (flags.crds) {
      this.logToStderr(`warning: ${crdNote}`);
      // Before the controller goes: its finalizers remove each Dataflow's workers (and volumes, as the spec says).
      if (dataflows > 0) await installer.deleteDataflows(flags.timeout * 1000);
    }
    const results = await installer.uninstall(objects, (r) =>
      this.log(`${r.kind}/${r.name}${scope(r.namespace)} ${r.result}`),
    );
    if (!flags.crds) this.log(crdNote);
    this.log(`namespace ${namespace} is kept`);
    const kept: ObjectResult[] = flags.crds
      ? []
      : [{ kind: "CustomResourceDefinition", name: CRD_NAME, result: "kept" }];
    return { namespace, objects: [...results, ...kept] };
  }
}

function scope(namespace: string | undefined): string {
  return namespace === undefined ? "" : ` (${namespace})`;
}
