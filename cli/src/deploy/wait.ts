// Waits for a deployed Dataflow to run: its pods ready, then the operator's word that the
// worker cluster formed (Ready for this generation). It stops early when waiting cannot
// help: the operator marked the Dataflow Failed (a spec it cannot run, a crash loop), or
// no operator runs to act on it. When time runs out the user gets what explains it: the
// pods' events and last log lines, or that no pod was ever made.
import { setTimeout as delay } from "node:timers/promises";
import type { CoreV1Event, V1Deployment, V1Pod } from "@kubernetes/client-node";
import type { Dataflow } from "@waxflow/crds";
import { isPodReady } from "@waxflow/crds";
import { DetailedError } from "../base.ts";
import { UserError } from "../errors.ts";
import type { Cluster } from "../kube.ts";
import { seconds } from "../ui/format.ts";
import type { Progress, Stage } from "../ui/progress.ts";
import { podStatus, readiness } from "./status.ts";

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly pollMs?: number;
  /** How long the operator may take to first report on this generation before deploy asks whether it runs. */
  readonly operatorGraceMs?: number;
}

const EVENTS_SHOWN = 5;
const LOG_LINES_SHOWN = 10;
/** The operator reports on a Dataflow within a second or two when it runs. */
const OPERATOR_GRACE_MS = 5_000;
/** The label that both `waxctl install` and the Helm chart put on the operator's Deployment. */
export const OPERATOR_SELECTOR = "app.kubernetes.io/name=waxflow-operator";

export async function waitUntilFormed(
  cluster: Cluster,
  applied: Dataflow,
  progress: Progress,
  options: WaitOptions,
): Promise<Dataflow> {
  const { name = "", namespace = "", generation = 1 } = applied.metadata ?? {};
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  let operatorCheckAt = started + (options.operatorGraceMs ?? OPERATOR_GRACE_MS);
  const pods = progress.stage("pods ready", `0/${applied.spec.processes ?? 1}`);
  let formed: Stage | undefined;
  for (;;) {
    const live = await cluster.getDataflow(namespace, name);
    if (live === undefined) throw new UserError(`dataflow ${name} was deleted while waxctl waited for it`);
    const observed = (live.status?.observedGeneration ?? 0) >= generation;
    // The operator rejected this generation or its processes crash-loop: waiting cannot help.
    if (live.status?.phase === "Failed" && observed) {
      (formed ?? pods).fail("the operator marked the dataflow Failed");
      throw new UserError(failedLine(live));
    }
    if (!observed && Date.now() >= operatorCheckAt) {
      const absent = operatorAbsence(await cluster.deploymentsEverywhere(OPERATOR_SELECTOR));
      if (absent !== undefined) {
        (formed ?? pods).fail("no operator acts on it");
        throw new UserError(
          `dataflow ${name}: nothing has acted on it for ${seconds(Date.now() - started)}: ${absent}`,
        );
      }
      operatorCheckAt = Date.now() + (options.operatorGraceMs ?? OPERATOR_GRACE_MS);
    }
    const podList = await cluster.pods(namespace, name);
    const r = readiness(live, podList, generation);
    // A failed run the operator reported: shown while the kubelet restarts it.
    const problem = observed ? degradedMessage(live) : undefined;
    if (formed === undefined) {
      pods.update(`${r.podsReady}/${r.desired}${problem === undefined ? "" : ` (${problem})`}`);
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

const degradedMessage = (df: Dataflow): string | undefined =>
  df.status?.conditions?.find((c) => c.type === "Degraded" && c.status === "True" && c.message)?.message;

/** The one line for a Dataflow the operator marked Failed: its cause, and what to do. */
export function failedLine(df: Dataflow): string {
  const { name = "", namespace = "" } = df.metadata ?? {};
  const degraded = df.status?.conditions?.find((c) => c.type === "Degraded" && c.status === "True");
  const why =
    degraded?.message ||
    df.status?.conditions?.find((c) => c.status !== "True" && c.message)?.message ||
    "see its events";
  const next =
    degraded?.reason === "CrashLoop"
      ? `fix the cause and deploy again; \`waxctl df logs ${name} -n ${namespace}\` shows the processes' output`
      : `fix the spec and deploy again, \`waxctl df describe ${name} -n ${namespace}\` shows more`;
  return `dataflow ${name} failed: ${why}; ${next}`;
}

/**
 * Why no operator acts on Dataflows, from its Deployments; undefined when one has a ready
 * replica, or when the user may not list them (undefined): then only time tells.
 */
export function operatorAbsence(deployments: readonly V1Deployment[] | undefined): string | undefined {
  if (deployments === undefined) return undefined;
  if (deployments.length === 0) {
    return `no waxflow operator is installed (no Deployment labelled ${OPERATOR_SELECTOR}); \`waxctl install\` installs it`;
  }
  if (deployments.some((d) => (d.status?.readyReplicas ?? 0) > 0)) return undefined;
  const [first] = deployments;
  const where = `${first?.metadata?.namespace ?? ""}/${first?.metadata?.name ?? ""}`;
  return `the waxflow operator (deployment ${where}) has no ready replica; \`kubectl -n ${first?.metadata?.namespace ?? ""} describe deployment ${first?.metadata?.name ?? ""}\` shows why`;
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
