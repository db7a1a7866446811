import { Flags } from "@oclif/core";
import type { Dataflow } from "@waxflow/crds";
import { ClusterCommand } from "../../base.ts";
import { connect } from "../../kube.ts";
import { LIST_HEADERS, listRow } from "../../ui/describe.ts";
import { table } from "../../ui/format.ts";

export default class DfList extends ClusterCommand {
  static override summary = "List dataflows: entry, image, processes ready/desired, state and age.";

  static override examples = [
    { description: "Dataflows in the current namespace:", command: "<%= config.bin %> <%= command.id %>" },
    { description: "In every namespace:", command: "<%= config.bin %> <%= command.id %> -A" },
    {
      description: "For scripts, the Dataflow objects as JSON:",
      command: "<%= config.bin %> <%= command.id %> -n streams --json",
    },
  ];

  static override flags = {
    "all-namespaces": Flags.boolean({ char: "A", description: "List dataflows in every namespace (-n is ignored)." }),
  };

  async run(): Promise<Dataflow[]> {
    const { flags } = await this.parse(DfList);
    const { cluster, namespace } = await connect(flags);
    const all = flags["all-namespaces"];
    const items = (await cluster.listDataflows(all ? undefined : namespace)).sort(
      (a, b) =>
        (a.metadata?.namespace ?? "").localeCompare(b.metadata?.namespace ?? "") ||
        (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""),
    );
    const now = new Date();
    this.log(
      items.length === 0
        ? `no dataflows in ${all ? "any namespace" : `namespace ${namespace}`}`
        : table(
            LIST_HEADERS,
            items.map((df) => listRow(df, now)),
          ),
    );
    return items;
  }
}
