// A pod whose "process" is a real `waxflow run` on this machine, for the CLI's tests on the
// real kube-apiserver: no kubelet runs there, so the test creates the pod and writes its
// status (running, ready, at this machine's own address), and the API server's pod proxy
// then reaches the process exactly as it reaches a pod's.
import { networkInterfaces } from "node:os";
import { CoreV1Api, type KubeConfig, type V1Pod } from "@kubernetes/client-node";

/** The API server refuses to proxy to loopback: the process is reached at this machine's own unicast address. */
export function ownAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    for (const a of addresses ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  throw new Error("this machine has no non-loopback IPv4 address for the API server to proxy to");
}

/** Pod `name` of Dataflow `dataflow`, running and ready, its `api` port the process's. */
export async function createProcessPod(
  kc: KubeConfig,
  { name, dataflow, apiPort, restarts = 0 }: { name: string; dataflow: string; apiPort: number; restarts?: number },
): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const pod: V1Pod = {
    metadata: { name, labels: { "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": dataflow } },
    spec: {
      containers: [{ name: "waxflow", image: "runtime", ports: [{ name: "api", containerPort: apiPort }] }],
    },
  };
  await core.createNamespacedPod({ namespace: "default", body: pod });
  const now = new Date();
  await core.replaceNamespacedPodStatus({
    namespace: "default",
    name,
    body: {
      ...pod,
      status: {
        phase: "Running",
        podIP: ownAddress(),
        podIPs: [{ ip: ownAddress() }],
        conditions: [{ type: "Ready", status: "True", lastTransitionTime: now }],
        containerStatuses: [
          {
            name: "waxflow",
            ready: true,
            restartCount: restarts,
            image: "runtime",
            imageID: "runtime",
            state: { running: { startedAt: now } },
          },
        ],
      },
    },
  });
}
