// Waits for a deployed Dataflow to run: its pods ready, then the operator's word that the
// worker cluster formed (Ready for this generation). When time runs out the user gets what
// explains it: the pods' events and last log lines, or that no pod was ever made.
import { setTimeout as delay } from "node:timers/promises";
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import type { Dataflow } from "@waxflow/crds";
import { DetailedError } from "../base.ts";
import { UserError } from "../errors.ts";
import type { Cluster } from "../kube.ts";
import { seconds } from "../ui/format.ts";
import type { Progress, Stage } from "../ui/progress.ts";
import { isPodReady, podStatus, readiness } from "./status.ts";

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly pollMs?: number;
}

const EVENTS_SHOWN = 5;
const LOG_LINES_SHOWN = 10;

export async function waitUntilFormed(
  cluster: Cluster,
  applied: Dataflow,
  progress: Progress,
  options: WaitOptions,
): Promise<Dataflow> {
  const { name = "", namespace = "", generation = 1 } = applied.metadata ?? {};
  const deadline = Date.now() + options.timeoutMs;
  const pods = progress.stage("pods ready", `0/${applied.spec.processes ?? 1}`);
  let formed: Stage | undefined;
  for (;;) {
    const live = await cluster.getDataflow(namespace, name);
    if (live === undefined) throw new UserError(`dataflow ${name} was deleted while waxctl waited for it`);
    // The operator rejected this generation (a spec it cannot run): waiting cannot help.
    if (live.status?.phase === "Failed" && (live.status.observedGeneration ?? 0) >= generation) {
      const why = live.status.conditions?.find((c) => c.status !== "True" && c.message)?.message ?? "see its events";
      (formed ?? pods).fail("the operator marked the dataflow Failed");
      throw new UserError(
        `dataflow ${name} failed: ${why}; fix the spec and deploy again, \`waxctl df describe ${name} -n ${namespace}\` shows more`,
      );
    }
    const podList = await cluster.pods(namespace, name);
    const r = readiness(live, podList, generation);
    if (formed === undefined) {
      pods.update(`${r.podsReady}/${r.desired}`);
      if (r.podsReady >= r.desired) {
        pods.done(`${r.podsReady}/${r.desired}`);
        formed = progress.stage("cluster formed", "waiting for the operator to see every process connected");
      }
    }
    if (formed !== undefined && r.formed) {
      formed.done(`${r.desired} process(es) × ${live.spec.workersPerProcess ?? 1} worker(s)`);
      return live;
    }
    if (Date.now() >= deadline) {
      (formed ?? pods).fail(`timed out after ${seconds(options.timeoutMs)}`);
      throw await notReady(cluster, live, podList, options.timeoutMs);
    }
    await delay(Math.min(options.pollMs ?? 1000, Math.max(0, deadline - Date.now())));
  }
}

async function notReady(cluster: Cluster, df: Dataflow, pods: V1Pod[], timeoutMs: number): Promise<DetailedError> {
  const { name = "", namespace = "" } = df.metadata ?? {};
  const describe = `\`waxctl df describe ${name} -n ${namespace}\``;
  const after = seconds(timeoutMs);
  const dfEvents = (await cluster.events(namespace, "Dataflow", name)).slice(-EVENTS_SHOWN);
  const details = dfEvents.length === 0 ? [] : [`dataflow ${name} events:`, ...dfEvents.map(eventLine)];
  if (pods.length === 0) {
    return new DetailedError(
      `dataflow ${name}: no pods after ${after}; is the waxflow operator running? \`waxctl install\` installs it, ${describe} shows more`,
      details,
    );
  }
  for (const pod of pods.filter((p) => !isPodReady(p))) {
    const podName = pod.metadata?.name ?? "";
    const events = (await cluster.events(namespace, "Pod", podName)).slice(-EVENTS_SHOWN);
    const log = await cluster.podLog(namespace, podName, LOG_LINES_SHOWN);
    details.push(...podReport(pod, events, log));
  }
  const ready = pods.filter(isPodReady).length;
  const condition = df.status?.conditions?.find((c) => c.type === "Ready");
  const why =
    ready === pods.length && condition?.message !== undefined
      ? `every pod is ready but the cluster has not formed (${condition.message})`
      : `${ready}/${df.spec.processes ?? 1} processes ready`;
  return new DetailedError(
    `dataflow ${name}: ${why} after ${after}; see the pods' events and logs above, or ${describe}`,
    details,
  );
}

export function eventLine(e: CoreV1Event): string {
  const count = (e.count ?? 1) > 1 ? ` (x${e.count})` : "";
  return `  ${e.type ?? "Normal"} ${e.reason ?? ""}: ${e.message ?? ""}${count}`;
}

/** What a pod that is not ready has to say for itself: its status, events and last log lines. */
export function podReport(pod: V1Pod, events: readonly CoreV1Event[], log: string | undefined): string[] {
  const lines = [`pod ${pod.metadata?.name ?? "?"}: ${podStatus(pod)}`];
  if (events.length > 0) lines.push(" events:", ...events.map((e) => ` ${eventLine(e)}`));
  const logLines = (log ?? "").split("\n").filter((l) => l !== "");
  lines.push(
    logLines.length === 0 ? " no log lines yet" : " last log lines:",
    ...logLines.slice(-LOG_LINES_SHOWN).map((l) => `    ${l}`),
  );
  return lines;
}
