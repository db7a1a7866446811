import { setTimeout as delay } from "node:timers/promises";
import { Flags } from "@oclif/core";
import { ClusterCommand, nameArg } from "../../base.ts";
import { dataflowName, duration, durationMs } from "../../deploy/options.ts";
import { UserError } from "../../errors.ts";
import { connect } from "../../kube.ts";

export interface DeleteResult {
  readonly deleted: boolean;
  /** What goes with the Dataflow, as `kind/name`. */
  readonly objects: readonly string[];
  readonly volumes: readonly string[];
  readonly volumesKept: boolean;
}

export default class DfDelete extends ClusterCommand {
  static override summary = "Delete a dataflow and what the operator made for it (a dry run without --yes).";
  static override description =
    "Without --yes nothing is deleted: the command lists the Dataflow, its StatefulSet, Services and pods, and whether its recovery volumes are kept or deleted (spec.recovery.retention.whenDeleted).";

  static override examples = [
    { description: "See what would go:", command: "<%= config.bin %> <%= command.id %> orders" },
    {
      description: "Delete it and wait until it is gone:",
      command: "<%= config.bin %> <%= command.id %> orders --yes --wait",
    },
  ];

  static override args = { name: nameArg };

  static override flags = {
    yes: Flags.boolean({ char: "y", description: "Delete; without it this is a dry run." }),
    wait: Flags.boolean({ description: "Wait until the Dataflow is gone (the operator has released its volumes)." }),
    timeout: Flags.string({ description: "How long --wait waits.", default: "2m", helpValue: "DURATION" }),
  };

  async run(): Promise<DeleteResult> {
    const { args, flags } = await this.parse(DfDelete);
    const name = dataflowName("NAME", args.name);
    const timeoutMs = durationMs(duration("timeout", flags.timeout));
    const { cluster, namespace } = await connect(flags);
    const df = await cluster.mustGetDataflow(namespace, name);
    const { objects, volumes } = await cluster.owned(namespace, name);
    const retention = df.spec.recovery?.retention?.whenDeleted ?? "Retain";
    const result = { objects: [`dataflow/${name}`, ...objects], volumes, volumesKept: retention === "Retain" };
    if (!flags.yes) {
      this.log(`dry run: deleting dataflow ${name} in namespace ${namespace} would delete:`);
      for (const o of result.objects) this.log(`  ${o}`);
      if (volumes.length > 0) {
        this.log(
          `and ${result.volumesKept ? "keep" : "delete"} its recovery volumes (spec.recovery.retention.whenDeleted is ${retention}):`,
        );
        for (const v of volumes) this.log(`  ${v}`);
      }
      this.log("nothing was deleted; add --yes to delete");
      return { deleted: false, ...result };
    }
    await cluster.deleteDataflow(namespace, name);
    if (flags.wait) {
      const deadline = Date.now() + timeoutMs;
      while ((await cluster.getDataflow(namespace, name)) !== undefined) {
        if (Date.now() >= deadline) {
          throw new UserError(
            `dataflow ${name} is still being deleted after ${flags.timeout}: the operator has not released it; \`waxctl df describe ${name} -n ${namespace}\` shows why`,
          );
        }
        await delay(500);
      }
    }
    this.log(
      `dataflow ${name} in namespace ${namespace} ${flags.wait ? "deleted" : "is being deleted"}${volumes.length > 0 ? `; recovery volumes ${result.volumesKept ? "kept" : "deleted"}` : ""}`,
    );
    return { deleted: true, ...result };
  }
}
