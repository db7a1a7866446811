// The README's "On Kubernetes" block, verbatim, in a fresh shell that has neither kind on
// PATH nor KUBECONFIG (its own first line must provide them), on the suite's cluster,
// which e2e/run.sh made with the README's own step (cluster.sh up). The test only waits
// between lines, as a reader would; the lines are read from README.md.
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { eventually, kubectl, ROOT, tryKubectl } from "./lib/cluster.ts";
import { type LineResult, newcomerEnv, readReadmeBlock, Shell } from "./lib/readme.ts";

const NAME = "counts";
const NS = "default";
/** Counts a sensor reaches before the scale: a restart from 1 could not get back there before the next line runs. */
const BEFORE_SCALE = 100;

const LINES = readReadmeBlock(join(ROOT, "README.md"), "On Kubernetes", "df deploy");

/** Each `sensor,count` line's count, as `df logs` or `kubectl logs` print them. */
function counts(text: string): number[] {
  return [...text.matchAll(/sensor-\d+,(\d+)$/gm)].map((m) => Number(m[1]));
}

/** What a previous run left in the namespace: `df delete` keeps the recovery volumes, which a new deploy would resume from. */
async function cleanUp(): Promise<void> {
  await tryKubectl("delete", "dataflow", NAME, "-n", NS, "--ignore-not-found", "--wait=true", "--timeout=120s");
  await tryKubectl("delete", "pvc", "-n", NS, "-l", `waxflow.io/dataflow=${NAME}`, "--wait=true", "--timeout=120s");
}

beforeAll(cleanUp, 300_000);
afterAll(async () => {
  if (process.env.E2E_KEEP !== "true") await cleanUp();
}, 300_000);

test("the README's On Kubernetes block runs verbatim: deploy, logs show counts, a scale keeps them going", {
  timeout: 900_000,
}, async () => {
  expect(LINES.some((l) => l.includes("cluster.sh env"))).toBe(true);
  const shell = new Shell(ROOT, newcomerEnv(process.env));
  const results: LineResult[] = [];
  try {
    for (const line of LINES) {
      if (line.includes("df scale")) {
        // Mid-stream, with counts well above what a restart from 1 reaches in a few seconds.
        await eventually(`a count of ${BEFORE_SCALE} in ${NAME}-0's log`, async () => {
          const log = await kubectl("logs", "-n", NS, `${NAME}-0`, "--tail=200");
          return Math.max(0, ...counts(log)) >= BEFORE_SCALE ? true : undefined;
        });
      }
      const result = await shell.run(line);
      results.push(result);
      expect(result.code, `${line}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(0);
    }
  } finally {
    shell.close();
    for (const r of results) console.log(`${(r.ms / 1000).toFixed(1).padStart(6)}s  ${r.line}`);
  }

  const of = (fragment: string) => results.filter((r) => r.line.includes(fragment));
  expect(of("df deploy")[0]?.stdout).toContain(
    `dataflow ${NAME} created in namespace ${NS}: 3 process(es) × 2 worker(s) running`,
  );
  expect(of("df list")[0]?.stdout).toMatch(new RegExp(`^${NAME}\\s+${NS}\\s.*Running`, "m"));
  const [beforeScale, afterScale] = of("df logs");
  expect(counts(beforeScale?.stdout ?? "").length, beforeScale?.stdout).toBeGreaterThan(0);
  expect(beforeScale?.stdout).toMatch(new RegExp(`^\\[${NAME}-[012]\\] sensor-\\d+,\\d+$`, "m"));
  // The state moved with the scale: the counts go on from the last snapshot (10 s at most
  // before the scale), not from 1.
  const after = counts(afterScale?.stdout ?? "");
  expect(after.length, afterScale?.stdout).toBeGreaterThan(0);
  expect(Math.min(...after), afterScale?.stdout).toBeGreaterThan(BEFORE_SCALE / 2);
  expect(afterScale?.stdout).not.toMatch(new RegExp(`^\\[${NAME}-2\\] sensor-`, "m"));
  expect(of("df scale")[0]?.stdout).toContain(`dataflow ${NAME} in namespace ${NS} scaled to 2 process(es)`);
  await eventually(`${NAME}'s pods to be gone`, async () =>
    (await kubectl("get", "pods", "-n", NS, "-l", `waxflow.io/dataflow=${NAME}`, "-o", "name")).trim() === ""
      ? true
      : undefined,
  );
});
