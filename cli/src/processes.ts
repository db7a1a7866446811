// Reads what each running process of a dataflow reports on /steps, through the API
// server's pod proxy (as `df scale` reads /status): never by loading the user's code.
import { setTimeout as delay } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { type Cluster, CONTAINER } from "./kube.ts";
import { asStepsReport, type ProcessReading } from "./ui/steps.ts";

/** A process that does not answer this soon is shown as not answering; the others are not held up. */
export const ASK_TIMEOUT_MS = 5000;

const running = (pod: V1Pod): boolean =>
  pod.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.running !== undefined;

/** Every pod of the dataflow with its process's /steps report, or why there is none. */
export async function readProcesses(cluster: Cluster, namespace: string, name: string): Promise<ProcessReading[]> {
  const pods = await cluster.pods(namespace, name);
  return Promise.all(pods.map((pod) => readProcess(cluster, namespace, pod)));
}

async function readProcess(cluster: Cluster, namespace: string, pod: V1Pod): Promise<ProcessReading> {
  const name = pod.metadata?.name ?? "";
  if (!running(pod)) return { pod, error: "not running" };
  try {
    const body = await Promise.race([
      cluster.processApi(namespace, pod, "steps"),
      delay(ASK_TIMEOUT_MS, undefined, { ref: false }).then(() => {
        throw new Error(`no answer within ${ASK_TIMEOUT_MS / 1000} s`);
      }),
    ]);
    return { pod, report: asStepsReport(body, name) };
  } catch (err) {
    return { pod, error: err instanceof Error ? err.message : String(err) };
  }
}
