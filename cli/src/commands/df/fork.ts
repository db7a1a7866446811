import { Flags } from "@oclif/core";
import { type Dataflow, durationMs } from "@waxflow/crds";
import { ClusterCommand } from "../../base.ts";
import { forkedDataflow, sourcePrefix } from "../../deploy/fork.ts";
import { UserError } from "../../errors.ts";
import { dataflowName, dataflowNameArg, duration } from "../../flags.ts";
import { connect } from "../../kube.ts";
import { SavepointClient, savepointId, waitForSavepoint } from "../../savepoints.ts";
import { seconds } from "../../ui/format.ts";
import { createProgress, outputMode } from "../../ui/progress.ts";

export default class DfFork extends ClusterCommand {
  static override summary = "Start a copy of a dataflow from one of its savepoints, under a new name.";
  static override description =
    "Reads SRC's Dataflow and applies a new one named --name with the same image, module, processes, workers, recovery and bucket, its own backup prefix (--backup-prefix, default <namespace>/<NEW>), and spec.restoreFrom pointing at the savepoint under SRC's prefix: the fork's processes start from the savepoint's state and go their own way, SRC keeps running. Without --from-savepoint, fork first takes a savepoint of SRC (as `df savepoint create` does) and waits for it.";

  static override examples = [
    {
      description: "A copy of orders as it is now, to try a change on:",
      command: "<%= config.bin %> <%= command.id %> orders --name orders-canary",
    },
    {
      description: "From a savepoint taken earlier:",
      command: "<%= config.bin %> <%= command.id %> orders --name orders-replay --from-savepoint before-v2",
    },
  ];

  static override args = {
    // SRC in the usage line, as the description and flags call it.
    src: dataflowNameArg({ description: "The Dataflow to fork.", required: true }),
  };

  static override flags = {
    name: dataflowName({ char: "N", description: "Name of the new Dataflow.", required: true, helpValue: "NEW" }),
    "from-savepoint": Flags.string({
      description: "Start from this savepoint of SRC (default: take one now).",
      helpValue: "ID",
    }),
    "backup-prefix": Flags.string({
      description: "The fork's backup prefix in the bucket (default: <namespace>/<NEW>); never SRC's.",
      helpValue: "PREFIX",
    }),
    timeout: duration({ description: "How long to wait for the savepoint fork takes.", default: "5m" }),
  };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfFork);
    const source = args.src;
    const name = flags.name;
    if (name === source) throw new UserError(`--name ${name} is the source's own name; a fork needs a new one`);
    const given =
      flags["from-savepoint"] === undefined ? undefined : savepointId("--from-savepoint", flags["from-savepoint"]);
    const timeoutMs = durationMs(flags.timeout);
    const { cluster, namespace } = await connect(flags);
    const src = await cluster.mustGetDataflow(namespace, source);
    sourcePrefix(src);
    if ((await cluster.getDataflow(namespace, name)) !== undefined) {
      throw new UserError(`dataflow ${name} exists in namespace ${namespace}; pick another --name or delete it first`);
    }
    // Checked before a savepoint is taken: a refused fork leaves nothing behind.
    forkedDataflow({ source: src, name, namespace, savepoint: "check", backupPrefix: flags["backup-prefix"] });
    const savepoint =
      given ?? (await this.#takeSavepoint(await SavepointClient.connect(cluster, namespace, src), timeoutMs));
    const df = forkedDataflow({ source: src, name, namespace, savepoint, backupPrefix: flags["backup-prefix"] });
    const applied = await cluster.applyDataflow(df, false);
    this.log(
      `dataflow ${name} created in namespace ${namespace} from savepoint ${savepoint} of ${source} (backups under ${applied.spec.recovery?.backup?.prefix}); ` +
        `\`waxctl df describe ${name} -n ${namespace}\` shows how it is doing`,
    );
    return applied;
  }

  async #takeSavepoint(client: SavepointClient, timeoutMs: number): Promise<string> {
    const requested = await client.create(undefined);
    const mode = outputMode(this.jsonEnabled(), process.stdout.isTTY === true, process.env);
    const progress = await createProgress(mode, (line) => this.log(line));
    const stage = progress.stage(`Savepoint ${requested.id}`, "waiting for the next complete backup set");
    try {
      const record = await waitForSavepoint(client, requested.id, timeoutMs, (r, waited) =>
        stage.update(`${r.state}, ${seconds(waited)}`),
      );
      stage.done(`epoch ${record.epoch ?? "?"}`);
      return record.id;
    } catch (err) {
      stage.fail(err instanceof Error ? err.message : String(err));
      throw err;
    } finally {
      await progress.close();
    }
  }
}
