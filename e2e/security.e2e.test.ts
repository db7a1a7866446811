// The Kubernetes fence around a Dataflow on a kind cluster whose network enforces
// NetworkPolicies (kube-network-policies, e2e/toolchain/kube-network-policies/): the
// operator's policy lets the Dataflow's own pods meet on 2101 and keeps every other pod
// out, its pods pass Pod Security Admission at `restricted`, and they carry no token.
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  eventually,
  isReady,
  kubectl,
  kubectlJson,
  pods,
  restrictedNamespace,
  tryKubectl,
  waxctl,
} from "./lib/cluster.ts";

const NS = "waxflow-e2e-sec";
const OPERATOR_NS = "waxflow-system";
const FLOW = "e2e-fenced";
const PROBE_IMAGE = process.env.TEST_BUSYBOX_IMAGE ?? "waxflow/busybox:e2e";
const controllerImage = process.env.WAXFLOW_CONTROLLER_IMAGE;

async function apply(name: string, object: object): Promise<void> {
  const file = join(tmpdir(), `waxflow-e2e-sec-${name}.json`);
  writeFileSync(file, JSON.stringify(object));
  await kubectl("apply", "-f", file);
}

interface Attempt {
  readonly target: string;
  readonly connected: boolean;
  readonly message: string;
}

/**
 * A pod that opens a TCP connection to each target (busybox nc, 3 s connect timeout) and
 * reports each outcome: `<target> <exit code> <nc's message>`. It passes the `restricted`
 * Pod Security level, so it may run in the fenced namespace.
 */
async function connectFrom(
  namespace: string,
  name: string,
  labels: Record<string, string>,
  targets: string[],
): Promise<Attempt[]> {
  const script = targets
    .map((t) => `out=$(nc -w 3 ${t.replace(":", " ")} -e true 2>&1); echo "${t} $? $out"`)
    .join("; ");
  await tryKubectl("delete", "pod", "-n", namespace, name, "--wait=true");
  await apply(`${namespace}-${name}`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels },
    spec: {
      restartPolicy: "Never",
      automountServiceAccountToken: false,
      securityContext: { runAsNonRoot: true, runAsUser: 65534, seccompProfile: { type: "RuntimeDefault" } },
      containers: [
        {
          name: "probe",
          image: PROBE_IMAGE,
          imagePullPolicy: "Never",
          command: ["sh", "-c", script],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
        },
      ],
    },
  });
  await kubectl("wait", "-n", namespace, `pod/${name}`, "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s");
  const lines = (await kubectl("logs", "-n", namespace, name)).trim().split("\n");
  return lines.map((line) => {
    const [target = "", code = "", ...message] = line.split(" ");
    return { target, connected: code === "0", message: message.join(" ") };
  });
}

restrictedNamespace(NS);

describe("a Dataflow fenced on kind", { timeout: 600_000 }, () => {
  test("S1. the operator (installed as in scenario 1) runs; the NetworkPolicy agent runs on every node", async () => {
    expect(controllerImage, "run through `npm run e2e`, which builds and loads the images").toBeDefined();
    const install = await waxctl(["install", "--image", controllerImage ?? "", "--wait", "--json"]);
    expect(install.stderr).toBe("");
    expect(install.code).toBe(0);
    const agents = await kubectlJson<{ status?: { numberReady?: number; desiredNumberScheduled?: number } }>(
      "get",
      "daemonset",
      "-n",
      "kube-system",
      "kube-network-policies",
    );
    expect(agents.status?.numberReady).toBeGreaterThan(0);
    expect(agents.status?.numberReady).toBe(agents.status?.desiredNumberScheduled);
  });

  test("S2. a root pod is refused in the restricted namespace; the Dataflow's 2 pods are admitted, run without a token and meet on 2101", async () => {
    const root = await tryKubectl("run", "-n", NS, "root", `--image=${PROBE_IMAGE}`, "--image-pull-policy=Never");
    expect(root.code).not.toBe(0);
    expect(root.stderr).toMatch(/violates PodSecurity "restricted/);

    const deploy = await waxctl([
      "df",
      "deploy",
      "examples/running-count.ts",
      "--name",
      FLOW,
      "-n",
      NS,
      "-p",
      "2",
      "-e",
      "READINGS_FOLLOW=true",
      "-e",
      "OUTPUT_DIR=/tmp/out",
      "--wait",
      "--timeout",
      "5m",
      "--json",
    ]);
    expect(deploy.stderr).toBe("");
    expect(deploy.code).toBe(0);
    // /readyz is ready only once every peer is connected: the two pods reached each other on 2101.
    const running = await eventually(`${FLOW} to run 2 ready processes`, async () => {
      const ready = (await pods(NS, FLOW)).filter(isReady);
      return ready.length === 2 ? ready : undefined;
    });
    expect(running).toHaveLength(2);
    const pod = await kubectlJson<{ spec: { automountServiceAccountToken?: boolean; volumes?: { name: string }[] } }>(
      "get",
      "pod",
      "-n",
      NS,
      `${FLOW}-0`,
    );
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    expect(pod.spec.volumes?.map((v) => v.name)).not.toContainEqual(expect.stringMatching(/^kube-api-access/));
  });

  test("S3. the NetworkPolicy: 2101 only from the Dataflow's pods, 3030 only from the operator's namespace", async () => {
    const policy = await kubectlJson<{
      metadata: { ownerReferences?: { kind: string; name: string }[] };
      spec: { ingress: { ports: { port: number }[] }[] };
    }>("get", "networkpolicy", "-n", NS, FLOW);
    expect(policy.metadata.ownerReferences?.[0]).toMatchObject({ kind: "Dataflow", name: FLOW });
    expect(policy.spec.ingress.map((r) => r.ports.map((p) => p.port))).toEqual([[2101], [3030]]);

    const ip = (await kubectlJson<{ status: { podIP: string } }>("get", "pod", "-n", NS, `${FLOW}-0`)).status.podIP;
    const targets = [`${ip}:2101`, `${ip}:3030`];
    // A pod labelled as another Dataflow's, in the same namespace: nothing gets through.
    const other = { "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": "another" };
    const outsider = await connectFrom(NS, "outsider", other, targets);
    // From the operator's namespace: the API port opens (so the target listens and the probe
    // works), the cluster port stays shut.
    const operatorSide = await connectFrom(OPERATOR_NS, "e2e-probe", {}, targets);
    await tryKubectl("delete", "pod", "-n", OPERATOR_NS, "e2e-probe", "--wait=false");
    const timedOut = expect.stringMatching(/timed out/i);
    expect({ outsider, operatorSide }).toEqual({
      outsider: [
        { target: `${ip}:2101`, connected: false, message: timedOut },
        { target: `${ip}:3030`, connected: false, message: timedOut },
      ],
      operatorSide: [
        { target: `${ip}:2101`, connected: false, message: timedOut },
        { target: `${ip}:3030`, connected: true, message: "" },
      ],
    });
  });
});
