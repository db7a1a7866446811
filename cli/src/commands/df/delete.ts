import { setTimeout as delay } from "node:timers/promises";
import { Flags } from "@oclif/core";
import { durationMs } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { UserError } from "../../errors.ts";
import { duration } from "../../flags.ts";
import { type Cluster, connect, notFound } from "../../kube.ts";

export interface DeleteResult {
  readonly deleted: boolean;
  /** What goes with the Dataflow, as `kind/name`. */
  readonly objects: readonly string[];
  readonly volumes: readonly string[];
  readonly volumesKept: boolean;
}

/** What happens to the recovery volumes, as the end of the sentence that reports a delete. */
export function volumesOutcome(name: string, namespace: string, volumes: readonly string[], kept: boolean): string {
  if (volumes.length === 0) return "";
  const n = `${volumes.length} recovery volume${volumes.length === 1 ? "" : "s"}`;
  return kept
    ? `; its ${n} ${volumes.length === 1 ? "is" : "are"} kept, so a new deploy named ${name} resumes from ${volumes.length === 1 ? "it" : "them"}; ` +
        `\`waxctl df delete ${name} -n ${namespace} --purge --yes\` deletes ${volumes.length === 1 ? "it" : "them"}`
    : `; its ${n} ${volumes.length === 1 ? "is" : "are"} deleted too`;
}

export default class DfDelete extends ClusterCommand {
  static override summary = "Delete a dataflow and what the operator made for it (a dry run without --yes).";
  static override description =
    "Without --yes nothing is deleted: the command lists the Dataflow, its StatefulSet, Services and pods, and whether its recovery volumes are kept or deleted (spec.recovery.retention.whenDeleted, Retain by default). Kept volumes make a later deploy under the same name resume from them; --purge deletes them too, also after the Dataflow itself is gone.";

  static override examples = [
    { description: "See what would go:", command: "<%= config.bin %> <%= command.id %> orders" },
    {
      description: "Delete it and wait until it is gone:",
      command: "<%= config.bin %> <%= command.id %> orders --yes --wait",
    },
    {
      description: "Delete it with its recovery volumes, so the name starts from nothing next time:",
      command: "<%= config.bin %> <%= command.id %> orders --purge --yes",
    },
  ];

  static override args = { name: nameArg };

  static override flags = {
    yes: Flags.boolean({ char: "y", description: "Delete; without it this is a dry run." }),
    purge: Flags.boolean({
      description:
        "Delete the recovery volumes too, whatever spec.recovery.retention.whenDeleted says; works after the Dataflow is gone.",
    }),
    wait: Flags.boolean({ description: "Wait until the Dataflow is gone (the operator has released its volumes)." }),
    timeout: duration({ description: "How long --wait waits.", default: "2m" }),
  };

  async run(): Promise<DeleteResult> {
    const { args, flags } = await this.parse(DfDelete);
    const name = args.name;
    const timeoutMs = durationMs(flags.timeout);
    const { cluster, namespace } = await connect(flags);
    const df = await cluster.getDataflow(namespace, name);
    const { objects, volumes } = await cluster.owned(namespace, name);
    if (df === undefined) return this.#leftVolumes(cluster, namespace, name, volumes, { ...flags, timeoutMs });
    const retention = df.spec.recovery?.retention?.whenDeleted ?? "Retain";
    const kept = retention === "Retain" && !flags.purge;
    const result = { objects: [`dataflow/${name}`, ...objects], volumes, volumesKept: kept };
    if (!flags.yes) {
      this.log(`dry run: deleting dataflow ${name} in namespace ${namespace} would delete:`);
      for (const o of result.objects) this.log(`  ${o}`);
      if (volumes.length > 0) {
        const why = flags.purge ? "--purge" : `spec.recovery.retention.whenDeleted is ${retention}`;
        this.log(`and ${kept ? "keep" : "delete"} its recovery volumes (${why}):`);
        for (const v of volumes) this.log(`  ${v}`);
      }
      this.log(
        `nothing was deleted; add --yes to delete${kept && volumes.length > 0 ? " (and --purge to drop the volumes)" : ""}`,
      );
      return { deleted: false, ...result };
    }
    await cluster.deleteDataflow(namespace, name);
    if (flags.purge) await cluster.deleteVolumes(namespace, name);
    if (flags.wait) await this.#untilGone(cluster, namespace, name, flags.purge, timeoutMs, flags.timeout);
    this.log(
      `dataflow ${name} in namespace ${namespace} ${flags.wait ? "deleted" : "is being deleted"}${volumesOutcome(name, namespace, volumes, kept)}`,
    );
    return { deleted: true, ...result };
  }

  /** The Dataflow is gone: only kept volumes can be left, and only --purge deletes them. */
  async #leftVolumes(
    cluster: Cluster,
    namespace: string,
    name: string,
    volumes: readonly string[],
    flags: { yes: boolean; purge: boolean; wait: boolean; timeout: string; timeoutMs: number },
  ): Promise<DeleteResult> {
    if (volumes.length === 0) throw notFound(namespace, name);
    const result = { objects: [], volumes, volumesKept: !(flags.purge && flags.yes) };
    if (!flags.purge) {
      throw new UserError(
        `dataflow ${name} not found in namespace ${namespace}, but its ${volumes.length} recovery volume(s) are kept; ` +
          `\`waxctl df delete ${name} -n ${namespace} --purge --yes\` deletes them`,
      );
    }
    if (!flags.yes) {
      this.log(
        `dry run: dataflow ${name} in namespace ${namespace} is gone; --purge would delete its recovery volumes:`,
      );
      for (const v of volumes) this.log(`  ${v}`);
      this.log("nothing was deleted; add --yes to delete");
      return { deleted: false, ...result };
    }
    await cluster.deleteVolumes(namespace, name);
    if (flags.wait) await this.#untilGone(cluster, namespace, name, true, flags.timeoutMs, flags.timeout);
    this.log(
      `the ${volumes.length} recovery volume(s) of dataflow ${name} in namespace ${namespace} ${flags.wait ? "are deleted" : "are being deleted"}`,
    );
    return { deleted: true, ...result };
  }

  async #untilGone(
    cluster: Cluster,
    namespace: string,
    name: string,
    volumes: boolean,
    timeoutMs: number,
    timeout: string,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const dataflow = await cluster.getDataflow(namespace, name);
      const left = volumes ? (await cluster.owned(namespace, name)).volumes : [];
      if (dataflow === undefined && left.length === 0) return;
      if (Date.now() >= deadline) {
        throw new UserError(
          dataflow !== undefined
            ? `dataflow ${name} is still being deleted after ${timeout}: the operator has not released it; \`waxctl df describe ${name} -n ${namespace}\` shows why`
            : `${left.join(", ")} still being deleted after ${timeout}: a pod still uses ${left.length === 1 ? "it" : "them"} (\`kubectl get pods -n ${namespace} -l waxflow.io/dataflow=${name}\`)`,
        );
      }
      await delay(500);
    }
  }
}
