/**
 * Time of `waxctl df deploy --dry-run` (items = 1 run; shown in seconds per run): a new
 * process that starts Node and oclif, bundles wordcount and prints the Dataflow. A dry run
 * needs no cluster and reads no kubeconfig, so KUBECONFIG names a file that is not there.
 * Loop: `waxctl --version`, the bare start-up every command pays.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchCase, Runners } from "../harness.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "waxflow-bench-deploy-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
const KUBECONFIG = join(dir, "absent");

function waxctl(args: readonly string[], expect: RegExp): number {
  const run = spawnSync(process.execPath, ["--conditions=waxflow-source", "cli/bin/run.js", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG },
  });
  if (run.status !== 0 || !expect.test(run.stdout)) {
    throw new Error(`waxctl ${args.join(" ")} failed (exit ${run.status}): ${run.stderr}${run.stdout}`);
  }
  return 1;
}

export const deployDryRun: BenchCase = {
  title:
    "`waxctl df deploy examples/wordcount.ts -n streams --dry-run -o yaml` in a new process; loop: `waxctl --version`",
  targets: { maxSeconds: 2 },
  async prepare(): Promise<Runners> {
    return {
      engine: async () =>
        waxctl(
          ["df", "deploy", "examples/wordcount.ts", "-N", "wordcount", "-n", "streams", "--dry-run", "-o", "yaml"],
          /^ {2}namespace: streams$/m,
        ),
      loop: async () => waxctl(["--version"], /^waxctl\//),
    };
  },
};
