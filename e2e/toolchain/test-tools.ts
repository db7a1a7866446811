// The tools `npm test` needs beyond Node. Each comes from a script of this repository
// that builds or installs it only when it is missing (binaries are cached under
// $WAXFLOW_CACHE by the versions in lib.sh). The suite's global setup runs the scripts
// that a run's test files need (vitest.config.ts says which); a test asks for its tool
// with `tool()`, which fails, naming the script, when the tool is not there.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export const repoRoot = join(import.meta.dirname, "..", "..");

export type ToolName =
  | "runtime"
  | "etcd"
  | "kubernetes"
  | "helm"
  | "registry"
  | "seaweedfs"
  | "skopeo"
  | "dpkg-deb"
  | "docker";

export interface Tool {
  /** What progress lines and errors call it, with its version. */
  readonly title: string;
  /** The idempotent command, run from the repository root, that builds or installs it. */
  readonly install: readonly string[];
  /** How long `install` took with an empty cache on this project's machines (2 cores), for the progress line. */
  readonly cold?: string;
  /** The binary or folder tests use, or the command's name when it is on PATH. */
  readonly path: string;
  /** Whether it is there and answers. */
  ready(): boolean;
  /** Installed at every run, not only when missing. */
  readonly everyRun?: true;
}

/** The cache folder and the versions, as lib.sh sets them (the environment overrides). */
function toolchain(): Record<"cache" | "etcd" | "kubernetes" | "helm" | "distribution" | "seaweedfs", string> {
  const [cache = "", etcd = "", kubernetes = "", helm = "", distribution = "", seaweedfs = ""] = execFileSync(
    "bash",
    [
      "-c",
      'source e2e/toolchain/lib.sh && printf "%s\\n" "$WAXFLOW_CACHE" "$ETCD_VERSION" "$K8S_VERSION" "$HELM_VERSION" "$DISTRIBUTION_VERSION" "$SEAWEEDFS_VERSION"',
    ],
    { cwd: repoRoot, encoding: "utf8" },
  ).split("\n");
  return { cache, etcd, kubernetes, helm, distribution, seaweedfs };
}

const answers = (command: string, ...args: string[]): boolean => spawnSync(command, args).status === 0;
const built =
  (...files: string[]) =>
  () =>
    files.every((f) => existsSync(f));

let known: { readonly cache: string; readonly tools: Record<ToolName, Tool> } | undefined;

/** Every tool, and the cache folder the global setup writes its logs to. */
export function toolbox(): { readonly cache: string; readonly tools: Record<ToolName, Tool> } {
  if (known !== undefined) return known;
  const v = toolchain();
  const bin = (dir: string, name: string) => join(v.cache, dir, "bin", name);
  const k8s = join(v.cache, "k8s", v.kubernetes, "bin");
  const tools: Record<ToolName, Tool> = {
    runtime: {
      title: "runtime/dist",
      install: ["npm", "run", "build"],
      path: join(repoRoot, "runtime", "dist"),
      ready: built(join(repoRoot, "runtime", "dist", "cli.js")),
      // About a second, and a dist older than the sources would test old code.
      everyRun: true,
    },
    etcd: {
      title: `etcd ${v.etcd}`,
      install: ["bash", "e2e/toolchain/etcd.sh"],
      cold: "1 min",
      path: bin(`etcd/${v.etcd}`, "etcd"),
      ready: built(bin(`etcd/${v.etcd}`, "etcd")),
    },
    kubernetes: {
      title: `kube-apiserver and kube-controller-manager ${v.kubernetes}`,
      install: ["bash", "e2e/toolchain/k8s-binaries.sh", "kube-apiserver", "kube-controller-manager"],
      cold: "6 min, up to 35 min where Go has never built Kubernetes",
      path: k8s,
      ready: built(join(k8s, "kube-apiserver"), join(k8s, "kube-controller-manager")),
    },
    helm: {
      title: `helm ${v.helm}`,
      install: ["bash", "charts/tools.sh"],
      cold: "2 min",
      path: bin(`helm/${v.helm}`, "helm"),
      ready: built(bin(`helm/${v.helm}`, "helm")),
    },
    registry: {
      title: `the Distribution registry ${v.distribution}`,
      install: ["bash", "cli/install-tools.sh"],
      cold: "4 min",
      path: bin(`registry/${v.distribution}`, "registry"),
      ready: built(bin(`registry/${v.distribution}`, "registry")),
    },
    seaweedfs: {
      title: `SeaweedFS weed ${v.seaweedfs}`,
      install: ["bash", "e2e/toolchain/seaweedfs.sh"],
      cold: "10 min, measured 23 min on a loaded machine",
      path: bin(`seaweedfs/${v.seaweedfs}`, "weed"),
      ready: built(bin(`seaweedfs/${v.seaweedfs}`, "weed")),
    },
    skopeo: {
      title: "skopeo (Debian)",
      install: ["bash", "images/install-tools.sh", "skopeo"],
      cold: "10 s",
      path: "skopeo",
      ready: () => answers("skopeo", "--version"),
    },
    "dpkg-deb": {
      title: "dpkg-deb (Debian)",
      install: ["bash", "images/install-tools.sh", "dpkg-deb"],
      cold: "10 s",
      path: "dpkg-deb",
      ready: () => answers("dpkg-deb", "--version"),
    },
    docker: {
      title: "a running Docker engine (Debian's docker.io)",
      install: ["bash", "images/install-tools.sh", "docker"],
      cold: "1 min",
      path: "docker",
      ready: () => answers("docker", "info"),
    },
  };
  known = { cache: v.cache, tools };
  return known;
}

/** Where the global setup keeps the output of a tool's install command. */
export const installLog = (name: ToolName): string => join(toolbox().cache, "logs", `${name}.log`);

/** The tool's `path`, once it answers; else an error that names the command installing it. */
export function tool(name: ToolName): string {
  const { title, install, path, ready } = toolbox().tools[name];
  if (ready()) return path;
  throw new Error(
    `${title} is missing: run \`${install.join(" ")}\` (npm test's global setup runs it for the tests that need it; its last output: ${installLog(name)})`,
  );
}
