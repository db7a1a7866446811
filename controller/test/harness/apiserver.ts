// envtest-style harness: a real etcd and kube-apiserver (and optionally
// kube-controller-manager) on loopback, in a temp dir, with random free ports.
// Binaries come from e2e/toolchain (built from the Go module proxy, cached by version).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import {
  type CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from "@kubernetes/client-node";
import { type Dataflow, type DataflowSpec, GROUP, PLURAL, podSelectorString, VERSION } from "@waxflow/crds";
import { freePort } from "../../../runtime/test/support/ports.ts";

export { freePort };

const toolchain = fileURLToPath(new URL("../../../e2e/toolchain/", import.meta.url));

/** Runs a toolchain script, which builds only when the cached binary is missing, and returns the bin folder. */
function binFolder(script: string, ...args: string[]): string {
  const out = execFileSync("bash", [join(toolchain, script), ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return out.trim().split("\n").at(-1) ?? "";
}

/**
 * Why the cached binaries cannot be used as they are (the toolchain scripts would build
 * them, tens of minutes when cold), or undefined when they are all there.
 */
export function missingToolchain(): string | undefined {
  const paths = execFileSync(
    "bash",
    [
      "-c",
      'source "$1/lib.sh" && echo "$WAXFLOW_CACHE/etcd/$ETCD_VERSION/bin" "$WAXFLOW_CACHE/k8s/$K8S_VERSION/bin"',
      "_",
      toolchain,
    ],
    { encoding: "utf8" },
  )
    .trim()
    .split(" ");
  const [etcd = "", k8s = ""] = paths;
  const missing = [join(etcd, "etcd"), join(k8s, "kube-apiserver"), join(k8s, "kube-controller-manager")].filter(
    (f) => !existsSync(f),
  );
  return missing.length === 0
    ? undefined
    : `not built: ${missing.join(", ")} (bash e2e/toolchain/etcd.sh; bash e2e/toolchain/k8s-binaries.sh)`;
}

/** Creates Dataflow `name` through the API server, as `kubectl create` would; `spec` may be invalid on purpose. */
export async function createDataflow(
  kc: KubeConfig,
  namespace: string,
  name: string,
  spec: Partial<DataflowSpec> | Record<string, unknown>,
): Promise<Dataflow> {
  return (await kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    plural: PLURAL,
    namespace,
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: "Dataflow", metadata: { name }, spec },
  })) as Dataflow;
}

/** Polls `fn` until it returns a value (not undefined or false); its errors count as not yet. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

class Proc {
  readonly name: string;
  readonly logPath: string;
  readonly child: ChildProcess;
  exited = false;

  constructor(name: string, bin: string, args: string[], logPath: string) {
    this.name = name;
    this.logPath = logPath;
    const log = createWriteStream(logPath, { flags: "a" });
    this.child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout?.pipe(log);
    this.child.stderr?.pipe(log);
    this.child.once("exit", () => {
      this.exited = true;
    });
  }

  tail(lines = 30): string {
    return readFileSync(this.logPath, "utf8").split("\n").slice(-lines).join("\n");
  }

  /** SIGKILL: tests need no graceful shutdown, and a crash is what the controller must survive. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.child.once("exit", () => r()));
    this.child.kill("SIGKILL");
    await gone;
  }
}

export interface TestCluster {
  readonly dir: string;
  readonly server: string;
  readonly kubeconfigPath: string;
  kubeConfig(): KubeConfig;
  /** Stops only the API server (etcd keeps the data); `startApiServer` brings it back on the same port. */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** kube-controller-manager controllers to run (e.g. statefulset, garbage-collector); none when empty. */
  controllers?: string[];
}

export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const etcdBin = join(binFolder("etcd.sh"), "etcd");
  const k8sBin = binFolder("k8s-binaries.sh", "kube-apiserver", "kube-controller-manager");
  const dir = mkdtempSync(join(tmpdir(), "waxflow-apiserver-"));
  const token = randomBytes(24).toString("hex");
  writeFileSync(join(dir, "tokens.csv"), `${token},waxflow-admin,1,"system:masters"\n`);
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(join(dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }));
  writeFileSync(join(dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }));

  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const procs: Proc[] = [];
  const etcd = new Proc(
    "etcd",
    etcdBin,
    [
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync",
      "--log-level=warn",
    ],
    join(dir, "etcd.log"),
  );
  procs.push(etcd);

  const server = `https://127.0.0.1:${apiPort}`;
  const kubeconfigPath = join(dir, "kubeconfig");
  const kubeconfig = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server, "insecure-skip-tls-verify": true } }],
    users: [{ name: "admin", user: { token } }],
    contexts: [{ name: "test", context: { cluster: "test", user: "admin" } }],
    "current-context": "test",
  };
  writeFileSync(kubeconfigPath, JSON.stringify(kubeconfig, null, 2));

  let apiserver: Proc | undefined;
  const startApiServer = async () => {
    apiserver = new Proc(
      "kube-apiserver",
      join(k8sBin, "kube-apiserver"),
      [
        `--etcd-servers=${etcdUrl}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, "certs")}`,
        `--token-auth-file=${join(dir, "tokens.csv")}`,
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        `--service-account-key-file=${join(dir, "sa.pub")}`,
        `--service-account-signing-key-file=${join(dir, "sa.key")}`,
        "--service-cluster-ip-range=10.96.0.0/16",
        // No serviceaccount controller runs here, so pods would wait for a "default" ServiceAccount.
        "--disable-admission-plugins=ServiceAccount",
        "--enable-priority-and-fairness=false",
        "--v=0",
      ],
      join(dir, "kube-apiserver.log"),
    );
    await waitReady(server, token, apiserver);
  };
  const stopApiServer = async () => {
    await apiserver?.stop();
  };

  const stop = async () => {
    for (const p of [...procs].reverse()) await p.stop();
    await apiserver?.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await startApiServer();
    if (options.controllers !== undefined && options.controllers.length > 0) {
      const kcmPort = await freePort();
      procs.push(
        new Proc(
          "kube-controller-manager",
          join(k8sBin, "kube-controller-manager"),
          [
            `--kubeconfig=${kubeconfigPath}`,
            `--controllers=${options.controllers.join(",")}`,
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            `--secure-port=${kcmPort}`,
            `--cert-dir=${join(dir, "kcm-certs")}`,
            `--service-account-private-key-file=${join(dir, "sa.key")}`,
            "--concurrent-statefulset-syncs=5",
          ],
          join(dir, "kube-controller-manager.log"),
        ),
      );
    }
  } catch (err) {
    const logs = [etcd, apiserver].map((p) => (p ? `--- ${p.name}\n${p.tail()}` : "")).join("\n");
    await stop();
    throw new Error(`test cluster did not start: ${String(err)}\n${logs}`);
  }

  return {
    dir,
    server,
    kubeconfigPath,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      return kc;
    },
    stopApiServer,
    startApiServer,
    stop,
  };
}

async function waitReady(server: string, token: string, proc: Proc, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`kube-apiserver exited:\n${proc.tail()}`);
    if ((await probe(`${server}/readyz`, token)) === 200) return;
    await sleep(250);
  }
  throw new Error(`kube-apiserver not ready after ${timeoutMs} ms`);
}

function probe(url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      { rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` }, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** A Dataflow's processes: the pods its StatefulSet selects (not the pre-flight pod), terminating ones too. */
export async function processPods(core: CoreV1Api, namespace: string, name: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace, labelSelector: podSelectorString(name) })).items;
}

/** The kubelet's part, with no kubelet: every live process pod of the Dataflow Running and Ready. */
export async function markProcessesReady(core: CoreV1Api, namespace: string, name: string): Promise<void> {
  for (const pod of await processPods(core, namespace, name)) {
    if (pod.metadata?.deletionTimestamp) continue;
    await core.patchNamespacedPodStatus(
      {
        namespace,
        name: pod.metadata?.name ?? "",
        body: {
          status: {
            phase: "Running",
            startTime: new Date(),
            conditions: [
              { type: "PodScheduled", status: "True" },
              { type: "Ready", status: "True" },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }
}
