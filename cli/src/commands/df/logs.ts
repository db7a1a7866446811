import { createInterface } from "node:readline";
import { PassThrough } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { Flags } from "@oclif/core";
import { CONTAINER } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { podStatus } from "../../deploy/status.ts";
import { UserError } from "../../errors.ts";
import { count } from "../../flags.ts";
import { type Cluster, connect } from "../../kube.ts";
import { prefixedLines } from "../../ui/format.ts";

/** How often `-f` looks for pods that appeared or restarted. */
const FOLLOW_POLL_MS = 2000;

/** What is printed for a pod whose log holds nothing yet, and why when the pod says. */
export function emptyLogNotice(pod: V1Pod): string {
  const status = podStatus(pod);
  return `pod ${pod.metadata?.name ?? "?"}: no log lines yet${status === "Running" ? "" : ` (${status})`}`;
}

/**
 * One run of a pod's container: a replaced pod has a new uid, a restarted container a
 * new restart count. Undefined while no container has started, so nothing can be read.
 */
export function containerRun(pod: V1Pod): string | undefined {
  const status = pod.status?.containerStatuses?.find((c) => c.name === CONTAINER);
  if (status?.state?.running === undefined && status?.state?.terminated === undefined) return undefined;
  return `${pod.metadata?.uid ?? pod.metadata?.name}/${status.restartCount}`;
}

/** The pods `-f` should start following: a container run not followed yet, pods in ordinal order. */
export function toFollow(pods: readonly V1Pod[], followed: ReadonlySet<string>): V1Pod[] {
  return pods.filter((pod) => {
    const run = containerRun(pod);
    return run !== undefined && !followed.has(run);
  });
}

export default class DfLogs extends ClusterCommand {
  static override summary = "Print the logs of every process of a dataflow, each line prefixed with its pod.";
  static override description =
    "Each pod's log holds the runtime's lines on stderr (start, cluster formed, resume, progress every 30 s, failures) and the dataflow's own output on stdout. A pod with nothing to show yet is named on stderr. With -f the command follows every pod, including pods that start later (a rescale or restart replaces them all), until interrupted or the dataflow is deleted.";
  // Log lines are the output; there is no result to print as JSON.
  static override enableJsonFlag = false;

  static override examples = [
    {
      description: "The last 20 lines of each process:",
      command: "<%= config.bin %> <%= command.id %> orders --tail 20",
    },
    {
      description: "Follow every process as it writes, and the processes that replace them:",
      command: "<%= config.bin %> <%= command.id %> orders -f",
    },
  ];

  static override args = { name: nameArg };

  static override flags = {
    follow: Flags.boolean({
      char: "f",
      description: "Keep printing new lines, and follow pods that start later, until interrupted (Ctrl-C).",
    }),
    tail: count({ description: "Lines to show from the end of each log (default: all).", min: 0, max: 1_000_000 }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(DfLogs);
    const name = args.name;
    const tailLines = flags.tail;
    const { cluster, namespace } = await connect(flags);
    const df = await cluster.mustGetDataflow(namespace, name);
    const pods = await cluster.pods(namespace, name);
    if (pods.length === 0 && !flags.follow) {
      const why = df.spec.state === "suspended" ? "it is suspended" : "none has been created yet";
      throw new UserError(
        `dataflow ${name} in namespace ${namespace} has no pods: ${why}; \`waxctl df describe ${name} -n ${namespace}\` shows why`,
      );
    }
    if (!flags.follow) {
      for (const pod of pods) {
        const text = await cluster.podLog(namespace, pod.metadata?.name ?? "", tailLines);
        if (text === undefined || text === "") this.logToStderr(emptyLogNotice(pod));
        else for (const line of prefixedLines(pod.metadata?.name ?? "", text)) this.log(line);
      }
      return;
    }
    const stop = new AbortController();
    const interrupt = () => stop.abort();
    process.once("SIGINT", interrupt);
    try {
      await this.#follow(cluster, namespace, name, pods, tailLines, stop);
    } finally {
      process.off("SIGINT", interrupt);
    }
  }

  /**
   * Follows every container run once: the pods there now from `tailLines` back, pods that
   * start later from their first line. Ends when interrupted or the Dataflow is gone.
   */
  async #follow(
    cluster: Cluster,
    namespace: string,
    name: string,
    initial: readonly V1Pod[],
    tailLines: number | undefined,
    stop: AbortController,
  ): Promise<void> {
    const { signal } = stop;
    const followed = new Set<string>();
    const streams: Promise<void>[] = [];
    const waiting = new Set<string>();
    let pods = initial;
    let first = true;
    while (!signal.aborted) {
      for (const pod of toFollow(pods, followed)) {
        const podName = pod.metadata?.name ?? "";
        followed.add(containerRun(pod) as string);
        waiting.delete(podName);
        const out = new PassThrough();
        signal.addEventListener("abort", () => out.end(), { once: true });
        streams.push(
          (async () => {
            try {
              await cluster.followPodLog(namespace, podName, out, { tailLines: first ? tailLines : undefined, signal });
            } catch (err) {
              out.end();
              this.logToStderr(`pod ${podName}: cannot follow its log: ${(err as Error).message}`);
            }
            for await (const line of createInterface({ input: out })) this.log(`[${podName}] ${line}`);
          })(),
        );
      }
      for (const pod of pods) {
        const podName = pod.metadata?.name ?? "";
        if (containerRun(pod) === undefined && !waiting.has(podName)) {
          waiting.add(podName);
          this.logToStderr(emptyLogNotice(pod));
        }
      }
      first = false;
      await delay(FOLLOW_POLL_MS, undefined, { signal }).catch(() => {});
      if (signal.aborted) break;
      if ((await cluster.getDataflow(namespace, name)) === undefined) {
        this.logToStderr(`dataflow ${name} in namespace ${namespace} was deleted; no more logs to follow`);
        stop.abort();
        break;
      }
      pods = await cluster.pods(namespace, name);
    }
    await Promise.all(streams);
  }
}
