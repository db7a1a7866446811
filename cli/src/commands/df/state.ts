import { Args, Flags } from "@oclif/core";
import { CONTAINER } from "@waxflow/crds";
import { STATE_TOKEN_HEADER, stateQueryToken } from "waxflow/state-token";
import { ClusterCommand, nameArg } from "../../base.ts";
import { UserError } from "../../errors.ts";
import { type Cluster, connect } from "../../kube.ts";

/** The controller's per-Dataflow cluster Secret (controller/src/desired/objects.ts) and its key. */
const clusterSecretName = (name: string): string => `${name}-cluster-secret`;
const CLUSTER_SECRET_KEY = "secret";

export type StateAnswer =
  | {
      readonly step: string;
      readonly consistency: string;
      readonly key: string;
      readonly epoch?: number;
      value: unknown;
    }
  | { readonly step: string; readonly consistency: string; readonly keys: string[]; readonly next: string | null };

export default class DfState extends ClusterCommand {
  static override summary = "Read a key's state from a running dataflow, or list the keys a step holds.";

  static override description =
    "Asks one running process for GET /state/STEP?key=KEY through the API server's pod proxy; the process routes " +
    "the question to the worker that owns the key. The Dataflow must have spec.stateQuery: true (df deploy " +
    "--state-query). The request carries a token derived from the Dataflow's cluster Secret, so you need `get` on " +
    "that Secret and on `pods/proxy`. STEP is the operator's id (`count`) or a core step's id as df top shows it " +
    "(`count.stateful_batch`). By default the answer is the live state between two items; --committed reads the " +
    "last committed epoch from the recovery store. Without KEY, the step's keys are listed a page at a time.";

  static override examples = [
    { description: "A sensor's running count:", command: "<%= config.bin %> <%= command.id %> counts count sensor-3" },
    {
      description: "As of the last snapshot (recovery on):",
      command: "<%= config.bin %> <%= command.id %> counts count sensor-3 --committed",
    },
    {
      description: "The first 20 keys starting with sensor-1:",
      command: "<%= config.bin %> <%= command.id %> counts count --prefix sensor-1 --limit 20",
    },
  ];

  static override args = {
    name: nameArg,
    step: Args.string({ description: "The stateful step: the operator's id, or a core step's id.", required: true }),
    key: Args.string({ description: "The key whose state to read; without it, keys are listed." }),
  };

  static override flags = {
    committed: Flags.boolean({ description: "Answer from the last committed epoch (the recovery store)." }),
    prefix: Flags.string({ description: "List only keys that start with this.", helpValue: "TEXT" }),
    limit: Flags.integer({ description: "Keys per page (1 to 1000).", min: 1, max: 1000, default: 100 }),
    after: Flags.string({ description: "List keys after this one (the previous page's `next`).", helpValue: "KEY" }),
  };

  async run(): Promise<StateAnswer> {
    const { args, flags } = await this.parse(DfState);
    const name = args.name;
    const { cluster, namespace } = await connect(flags);
    const df = await cluster.mustGetDataflow(namespace, name);
    if (df.spec.stateQuery !== true) {
      throw new UserError(
        `dataflow ${name} does not answer state queries: set spec.stateQuery: true (waxctl df deploy --state-query), which restarts its processes`,
      );
    }
    const token = await stateToken(cluster, namespace, name);
    const params = new URLSearchParams();
    if (args.key !== undefined) params.set("key", args.key);
    else {
      if (flags.prefix !== undefined) params.set("prefix", flags.prefix);
      if (flags.after !== undefined) params.set("after", flags.after);
      params.set("limit", String(flags.limit));
    }
    if (flags.committed) params.set("consistency", "committed");
    const pod = (await cluster.pods(namespace, name)).find(
      (p) => p.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.running !== undefined,
    );
    if (pod === undefined) throw new UserError(`dataflow ${name} has no running pod to ask`);
    const path = `state/${encodeURIComponent(args.step)}?${params}`;
    const { status, body } = await cluster.processRequest(namespace, pod, path, { [STATE_TOKEN_HEADER]: token });
    const podName = pod.metadata?.name ?? "";
    if (status !== 200) throw new UserError(`pod ${podName}: ${refusal(status, body)}`);
    const answer = JSON.parse(body) as StateAnswer;
    if (!this.jsonEnabled()) {
      if ("keys" in answer) {
        for (const key of answer.keys) this.log(key);
        if (answer.next !== null) this.log(`(more: --after ${JSON.stringify(answer.next)})`);
      } else this.log(JSON.stringify(answer.value, null, 2));
    }
    return answer;
  }
}

/** The token the Dataflow's processes expect, derived from the cluster Secret the user may (or may not) read. */
export async function stateToken(cluster: Cluster, namespace: string, name: string): Promise<string> {
  const secret = await cluster.secretValue(namespace, clusterSecretName(name), CLUSTER_SECRET_KEY);
  if (secret === undefined) {
    throw new UserError(
      `Secret ${clusterSecretName(name)} in namespace ${namespace} holds no cluster secret yet; the operator creates it with the Dataflow's pods`,
    );
  }
  return stateQueryToken(secret);
}

/** The process's one line, or the API server's own refusal (no access to pods/proxy, no such pod). */
export function refusal(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { kind?: string; message?: string };
    if (parsed.kind === "Status") {
      const access = status === 403 ? "; you need get on pods/proxy" : "";
      return `the API server answered ${status}: ${parsed.message ?? ""}${access}`;
    }
  } catch {
    // Not the API server's JSON: the process's own line.
  }
  return body.trim().split("\n")[0] ?? `answered ${status}`;
}
