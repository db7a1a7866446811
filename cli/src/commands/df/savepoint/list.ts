import type { SavepointRecord } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../../base.ts";
import { connect } from "../../../kube.ts";
import { SavepointClient } from "../../../savepoints.ts";
import { age, bytes, table } from "../../../ui/format.ts";

export const SAVEPOINT_HEADERS = ["ID", "STATE", "EPOCH", "CREATED", "SIZE", "PROCESSES"] as const;

/** One row of the table; a failed savepoint's reason is shown in place of its size. */
export function savepointRow(r: SavepointRecord, now: Date): string[] {
  const created = r.createdAt === undefined ? "-" : `${age(r.createdAt, now)} ago`;
  const size = r.state === "failed" ? (r.error ?? "failed") : r.bytes === undefined ? "-" : bytes(r.bytes);
  return [r.id, r.state, r.epoch === undefined ? "-" : String(r.epoch), created, size, String(r.processCount ?? "-")];
}

export default class DfSavepointList extends ClusterCommand {
  static override summary = "List a dataflow's savepoints, newest first: id, state, epoch, age, size and processes.";
  static override description =
    "Asks process 0 (pod NAME-0) for GET /savepoints through the API server's pod proxy, with the token derived from the Dataflow's cluster Secret. Complete savepoints come from the bucket; pending and failed ones from process 0's memory.";

  static override examples = [
    { description: "Savepoints of orders:", command: "<%= config.bin %> <%= command.id %> orders" },
    { description: "For scripts:", command: "<%= config.bin %> <%= command.id %> orders --json" },
  ];

  static override args = { name: nameArg };

  async run(): Promise<{ savepoints: SavepointRecord[] }> {
    const { args, flags } = await this.parse(DfSavepointList);
    const name = args.name;
    const { cluster, namespace } = await connect(flags);
    const client = await SavepointClient.connect(cluster, namespace, await cluster.mustGetDataflow(namespace, name));
    const savepoints = await client.list();
    const now = new Date();
    this.log(
      savepoints.length === 0
        ? `dataflow ${name} has no savepoints; \`waxctl df savepoint create ${name}\` takes one`
        : table(
            SAVEPOINT_HEADERS,
            savepoints.map((r) => savepointRow(r, now)),
          ),
    );
    return { savepoints };
  }
}
