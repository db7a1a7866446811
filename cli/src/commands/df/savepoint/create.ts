import { Flags } from "@oclif/core";
import type { SavepointRecord } from "@waxflow/crds";
import { durationMs } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../../base.ts";
import { duration } from "../../../flags.ts";
import { connect } from "../../../kube.ts";
import { SavepointClient, savepointId, waitForSavepoint } from "../../../savepoints.ts";
import { bytes, seconds } from "../../../ui/format.ts";
import { createProgress, outputMode } from "../../../ui/progress.ts";

export default class DfSavepointCreate extends ClusterCommand {
  static override summary = "Take a savepoint of a running dataflow: a kept, named copy of its state to start from.";
  static override description =
    "Asks process 0 (pod NAME-0) for POST /savepoints through the API server's pod proxy, with the token derived from the Dataflow's cluster Secret (you need `get` on that Secret and on `pods/proxy`). The savepoint is the first complete backup set taken after the request, copied inside the bucket under <prefix>/savepoints/ID/, where backup retention never deletes it; so it completes within about one backup interval plus the copy. The Dataflow needs recovery with a backup bucket (df deploy --recovery --backup-bucket). By default the command waits until the savepoint is complete; --no-wait returns once it is requested.";

  static override examples = [
    { description: "A savepoint with a generated id:", command: "<%= config.bin %> <%= command.id %> orders" },
    {
      description: "Named, before an upgrade, without waiting:",
      command: "<%= config.bin %> <%= command.id %> orders --id before-v2 --no-wait",
    },
  ];

  static override args = { name: nameArg };

  static override flags = {
    id: Flags.string({
      description: "The savepoint's id (default: sp-<UTC date>-<time>-<4 hex>).",
      helpValue: "ID",
    }),
    wait: Flags.boolean({ description: "Wait until the savepoint is complete.", allowNo: true, default: true }),
    timeout: duration({ description: "How long --wait waits.", default: "5m" }),
  };

  async run(): Promise<SavepointRecord> {
    const { args, flags } = await this.parse(DfSavepointCreate);
    const name = args.name;
    const id = flags.id === undefined ? undefined : savepointId("--id", flags.id);
    const timeoutMs = durationMs(flags.timeout);
    const { cluster, namespace } = await connect(flags);
    const client = await SavepointClient.connect(cluster, namespace, await cluster.mustGetDataflow(namespace, name));
    const requested = await client.create(id);
    if (!flags.wait) {
      this.log(
        `savepoint ${requested.id} of dataflow ${name} requested; \`waxctl df savepoint list ${name} -n ${namespace}\` shows when it is complete`,
      );
      return requested;
    }
    const mode = outputMode(this.jsonEnabled(), process.stdout.isTTY === true, process.env);
    const progress = await createProgress(mode, (line) => this.log(line));
    const stage = progress.stage(`Savepoint ${requested.id}`, "waiting for the next complete backup set");
    let record: SavepointRecord;
    try {
      record = await waitForSavepoint(client, requested.id, timeoutMs, (r, waited) =>
        stage.update(`${r.state}, ${seconds(waited)}`),
      );
      stage.done(`epoch ${record.epoch ?? "?"}, ${bytes(record.bytes ?? 0)}`);
    } catch (err) {
      stage.fail(err instanceof Error ? err.message : String(err));
      throw err;
    } finally {
      await progress.close();
    }
    this.log(
      `savepoint ${record.id} of dataflow ${name} is complete: epoch ${record.epoch ?? "?"}, ${record.processCount ?? "?"} process(es), ${bytes(record.bytes ?? 0)}; ` +
        `start a copy with \`waxctl df fork ${name} --name NEW --from-savepoint ${record.id} -n ${namespace}\``,
    );
    return record;
  }
}
