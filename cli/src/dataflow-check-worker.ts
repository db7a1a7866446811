// The worker of dataflow-check.ts: loads the bundle with the runtime's loader and answers
// that it found a Dataflow, or with the runtime's one line about what is wrong and whether
// loading itself failed (which may depend on this machine) or the module has no Dataflow.
import { setSourceMapsSupport } from "node:module";
import { inspect } from "node:util";
import { parentPort, workerData } from "node:worker_threads";
import { importModule, pickDataflow } from "waxflow/load";
import type { CheckAnswer } from "./dataflow-check.ts";

const { url, shownAs, exportName, cwd } = workerData as {
  url: string;
  shownAs: string;
  exportName: string | undefined;
  cwd: string;
};
setSourceMapsSupport(true);
let answer: CheckAnswer;
let loaded = false;
try {
  const mod = await importModule(url, { shownAs, cwd });
  loaded = true;
  await pickDataflow(mod, shownAs, exportName);
  answer = { ok: true };
} catch (err) {
  const line = err instanceof Error ? err.message : String(err);
  answer = { ok: false, line, whileLoading: !loaded, stack: inspect(err, { depth: 6 }) };
}
parentPort?.postMessage(answer);
