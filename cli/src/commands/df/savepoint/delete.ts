import { Args } from "@oclif/core";
import { ClusterCommand, nameArg } from "../../../base.ts";
import { connect } from "../../../kube.ts";
import { SavepointClient, savepointId } from "../../../savepoints.ts";

export default class DfSavepointDelete extends ClusterCommand {
  static override summary = "Delete a savepoint of a dataflow from the bucket.";
  static override description =
    "Asks process 0 (pod NAME-0) for DELETE /savepoints/ID through the API server's pod proxy. Its savepoint.json goes first, so nothing can start from a half-deleted savepoint, then its objects.";

  static override examples = [
    { description: "Delete a savepoint of orders:", command: "<%= config.bin %> <%= command.id %> orders before-v2" },
  ];

  static override args = {
    name: nameArg,
    id: Args.string({ description: "The savepoint's id, as `df savepoint list` shows it.", required: true }),
  };

  async run(): Promise<{ deleted: string }> {
    const { args, flags } = await this.parse(DfSavepointDelete);
    const name = args.name;
    const id = savepointId("ID", args.id);
    const { cluster, namespace } = await connect(flags);
    const client = await SavepointClient.connect(cluster, namespace, await cluster.mustGetDataflow(namespace, name));
    await client.delete(id);
    this.log(`savepoint ${id} of dataflow ${name} deleted`);
    return { deleted: id };
  }
}
