// The e2e suite's handles on the kind cluster: kubectl and waxctl as a user runs them, and
// the recovery volumes read straight from the node (the runtime image has no shell).
import { execFile, execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll } from "vitest";

const run = promisify(execFile);

export const ROOT = resolve(import.meta.dirname, "../..");
const CACHE = process.env.WAXFLOW_CACHE ?? join(homedir(), ".cache", "waxflow");
export const CLUSTER = process.env.KIND_CLUSTER_NAME ?? "waxflow-e2e";
export const KUBECONFIG = process.env.KUBECONFIG ?? join(CACHE, "kind", `${CLUSTER}.kubeconfig`);
/** The kind cluster's one node. */
export const NODE = `${CLUSTER}-control-plane`;
const env = { ...process.env, KUBECONFIG, CI: "true" };

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function exec(file: string, args: readonly string[], timeoutMs: number): Promise<Result> {
  try {
    const { stdout, stderr } = await run(file, args, { cwd: ROOT, env, timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== "number") throw err;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/** kubectl that must succeed: returns stdout, throws with stderr. */
export async function kubectl(...args: string[]): Promise<string> {
  const r = await exec("kubectl", args, 120_000);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** kubectl that may fail (the test looks at its error). */
export function tryKubectl(...args: string[]): Promise<Result> {
  return exec("kubectl", args, 120_000);
}

export async function kubectlJson<T>(...args: string[]): Promise<T> {
  return JSON.parse(await kubectl(...args, "-o", "json")) as T;
}

/** waxctl from this checkout, exactly as `npm run waxctl` runs it. */
export function waxctl(args: readonly string[], timeoutMs = 600_000): Promise<Result> {
  return exec(process.execPath, ["--conditions=waxflow-source", "cli/bin/run.js", ...args], timeoutMs);
}

/** Polls `probe` until it returns a value (not undefined); the last reason is in the timeout error. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 180_000, everyMs = 2_000 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last && `: ${last}`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface Named {
  metadata: { name: string; uid?: string; labels?: Record<string, string> };
}
export interface Pod extends Named {
  status?: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { restartCount: number; ready: boolean }[];
  };
}

export async function pods(namespace: string, dataflow: string): Promise<Pod[]> {
  const list = await kubectlJson<{ items: Pod[] }>(
    "get",
    "pods",
    "-n",
    namespace,
    "-l",
    // The processes: not the operator's pre-flight pod of an image change.
    `app.kubernetes.io/name=waxflow,waxflow.io/dataflow=${dataflow}`,
  );
  return list.items;
}

/** `k=v,k=v`, the form kubectl's -l takes. */
export function labelSelector(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** The label every StatefulSet pod carries with its own name: a selector for exactly that pod. */
export const podNamed = (name: string): string => `statefulset.kubernetes.io/pod-name=${name}`;

export interface Kill {
  /** When the delete was sent (ms since the epoch). */
  readonly at: number;
  /** The pods that were deleted, as they were just before. */
  readonly pods: readonly Pod[];
}

/**
 * Deletes the pods `selector` matches in `namespace` and proves the kill happened: a
 * selector that matches nothing fails (kubectl would print "No resources found" and exit
 * 0), and it resolves only once none of those pods is left, so a pod of the same name is
 * a replacement with a new UID.
 */
export async function killPods(namespace: string, selector: string, ...flags: string[]): Promise<Kill> {
  const before = (await kubectlJson<{ items: Pod[] }>("get", "pods", "-n", namespace, "-l", selector)).items;
  if (before.length === 0) throw new Error(`no pod in ${namespace} matches ${selector}: nothing to kill`);
  const at = Date.now();
  await kubectl("delete", "pod", "-n", namespace, "-l", selector, "--wait=false", ...flags);
  const uids = new Set(before.map((p) => p.metadata.uid));
  await eventually(
    `the pods of ${selector} (${before.map((p) => p.metadata.name).join(", ")}) to be gone`,
    async () => {
      const now = (await kubectlJson<{ items: Pod[] }>("get", "pods", "-n", namespace, "-l", selector)).items;
      return now.some((p) => uids.has(p.metadata.uid)) ? undefined : true;
    },
    { timeoutMs: 120_000, everyMs: 250 },
  );
  return { at, pods: before };
}

/** The pod that replaced a killed one: same name, another UID. */
export function replaced(kill: Kill, pod: Pod): boolean {
  return kill.pods.some((p) => p.metadata.name === pod.metadata.name && p.metadata.uid !== pod.metadata.uid);
}

export function isReady(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

export function restarts(pod: Pod): number {
  return pod.status?.containerStatuses?.reduce((n, c) => n + c.restartCount, 0) ?? 0;
}

/** GET on a pod's port through the API server's proxy: no tools needed in the image. */
export function podGet(namespace: string, pod: string, port: number, path: string): Promise<Result> {
  return tryKubectl("get", "--raw", `/api/v1/namespaces/${namespace}/pods/${pod}:${port}/proxy${path}`);
}

interface Volume {
  spec: { hostPath?: { path: string }; local?: { path: string } };
}

/** Where `subdir` of a PVC's volume is on the kind node; undefined while the claim is unbound. */
export async function volumeDir(namespace: string, pvc: string, subdir: string): Promise<string | undefined> {
  const claim = await kubectlJson<{ spec: { volumeName?: string } }>("get", "pvc", "-n", namespace, pvc);
  if (!claim.spec.volumeName) return undefined;
  const pv = await kubectlJson<Volume>("get", "pv", claim.spec.volumeName);
  const path = pv.spec.hostPath?.path ?? pv.spec.local?.path;
  if (path === undefined) throw new Error(`volume ${claim.spec.volumeName} of ${pvc} is neither hostPath nor local`);
  return join(path, subdir);
}

/** Every line of every file under `subdir` of a PVC's volume, read on the kind node. */
export async function volumeLines(namespace: string, pvc: string, subdir: string): Promise<string[]> {
  const dir = await volumeDir(namespace, pvc, subdir);
  if (dir === undefined) return [];
  const r = await exec(
    "docker",
    ["exec", NODE, "sh", "-c", `[ -d '${dir}' ] && find '${dir}' -type f -exec cat {} + || true`],
    60_000,
  );
  if (r.code !== 0) throw new Error(`reading ${dir} on ${NODE}: ${r.stderr.trim()}`);
  return r.stdout.split("\n").filter((l) => l !== "");
}

/** How many lines the files under the node directories `dirs` hold: one exec, cheap enough to poll. */
export async function nodeLineCount(dirs: readonly string[]): Promise<number> {
  const each = dirs.map((d) => `[ -d '${d}' ] && find '${d}' -type f -exec cat {} +`).join("; ");
  const r = await exec("docker", ["exec", NODE, "sh", "-c", `{ ${each}; } | wc -l`], 60_000);
  if (r.code !== 0) throw new Error(`counting lines on ${NODE}: ${r.stderr.trim()}`);
  return Number(r.stdout.trim());
}

/**
 * A suite's own namespace, made anew before its tests and deleted after them (unless
 * E2E_KEEP=true). It enforces Pod Security `restricted`: every pod the suite starts must
 * pass Pod Security Admission at its strictest level.
 */
export function restrictedNamespace(namespace: string): void {
  beforeAll(async () => {
    await tryKubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s");
    await kubectl("create", "namespace", namespace);
    await kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted");
  }, 180_000);
  afterAll(async () => {
    if (process.env.E2E_KEEP !== "true") await tryKubectl("delete", "namespace", namespace, "--wait=false");
  });
}

/** Loads image archives (built by run.sh for the one file that needs them) into the kind node; undefined ones are skipped. */
export function loadImageArchives(...archives: readonly (string | undefined)[]): void {
  for (const archive of archives) {
    if (archive === undefined) continue;
    const t0 = Date.now();
    execFileSync("kind", ["load", "image-archive", archive, "--name", CLUSTER], { stdio: "pipe" });
    console.log(`kind load image-archive ${archive}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
}

/** `kubectl apply` of objects as one List, through a file in `dir`. */
export async function applyList(dir: string, items: readonly object[]): Promise<void> {
  const file = join(dir, `apply-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  await kubectl("apply", "-f", file);
}

/** `-e NAME=VALUE` for each variable, as `waxctl df deploy` takes them. */
export function envFlags(env: Readonly<Record<string, string>>): string[] {
  return Object.entries(env).flatMap(([name, value]) => ["-e", `${name}=${value}`]);
}
