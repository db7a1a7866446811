// The worker of dataflow-check.ts: loads the bundle with the runtime's loader and answers
// that it found a Dataflow, or with the runtime's one line about what is wrong.
import { setSourceMapsSupport } from "node:module";
import { inspect } from "node:util";
import { parentPort, workerData } from "node:worker_threads";
import { importDataflow } from "waxflow/load";
import type { CheckAnswer } from "./dataflow-check.ts";

const { url, shownAs, exportName, cwd } = workerData as {
  url: string;
  shownAs: string;
  exportName: string | undefined;
  cwd: string;
};
setSourceMapsSupport(true);
let answer: CheckAnswer;
try {
  await importDataflow(url, { shownAs, exportName, cwd });
  answer = { ok: true };
} catch (err) {
  answer = { ok: false, line: err instanceof Error ? err.message : String(err), stack: inspect(err, { depth: 6 }) };
}
parentPort?.postMessage(answer);
