// Reads what each running process of a dataflow reports on /steps, through the API
// server's pod proxy (as `df scale` reads /status): never by loading the user's code.
// For `df top`, each pod's CPU and memory too: metrics-server's, else the process's /metrics.
import { setTimeout as delay } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { CONTAINER } from "@waxflow/crds";
import type { Cluster } from "./kube.ts";
import { type PodUsage, podUsages, processFigures } from "./ui/resources.ts";
import { asStepsReport, type ProcessReading } from "./ui/steps.ts";

/** A process that does not answer this soon is shown as not answering; the others are not held up. */
export const ASK_TIMEOUT_MS = 5000;

const running = (pod: V1Pod): boolean =>
  pod.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.running !== undefined;

export interface ReadOptions {
  /** Read each pod's CPU and memory as well (df top). */
  readonly resources?: boolean;
}

/** Every pod of the dataflow with its process's /steps report, or why there is none. */
export async function readProcesses(
  cluster: Cluster,
  namespace: string,
  name: string,
  { resources = false }: ReadOptions = {},
): Promise<ProcessReading[]> {
  const [pods, measured] = await Promise.all([
    cluster.pods(namespace, name),
    resources ? cluster.podMetrics(namespace, name) : undefined,
  ]);
  const usages = measured === undefined ? undefined : podUsages(measured);
  return Promise.all(
    pods.map((pod) =>
      readProcess(cluster, namespace, pod, {
        // Without metrics-server, the process's own figures.
        metrics: resources && usages === undefined,
        usage: usages?.get(pod.metadata?.name ?? ""),
      }),
    ),
  );
}

function answer<T>(request: Promise<T>): Promise<T> {
  return Promise.race([
    request,
    delay(ASK_TIMEOUT_MS, undefined, { ref: false }).then(() => {
      throw new Error(`no answer within ${ASK_TIMEOUT_MS / 1000} s`);
    }),
  ]);
}

async function readProcess(
  cluster: Cluster,
  namespace: string,
  pod: V1Pod,
  { metrics, usage }: { metrics: boolean; usage: PodUsage | undefined },
): Promise<ProcessReading> {
  const name = pod.metadata?.name ?? "";
  if (!running(pod)) return { pod, error: "not running", usage };
  // A /metrics that fails only leaves the pod's CPU and memory unknown.
  const figures = metrics
    ? answer(cluster.processText(namespace, pod, "metrics")).then(
        (text) => processFigures(text, Date.now()),
        () => undefined,
      )
    : Promise.resolve(undefined);
  try {
    const body = await answer(cluster.processApi(namespace, pod, "steps"));
    return { pod, report: asStepsReport(body, name), usage, figures: await figures };
  } catch (err) {
    return { pod, error: err instanceof Error ? err.message : String(err), usage, figures: await figures };
  }
}
