#!/usr/bin/env node
/**
 * `waxflow run <module>[:name]`: the program every pod runs (cli/main.ts does the work).
 * Node reads and compiles a module's whole static import graph before it runs any of it, so
 * this file imports the rest of the runtime only once the compile cache is on and the worker
 * threads have started (issue 18: behind a static graph, the threads started only after
 * ~75 ms of the process's CPU, most of it compiling the API server, the mesh, recovery and
 * prom-client, none of which a thread needs; now after ~35 ms).
 */
import { enableCompileCacheFor } from "./cli/compile-cache.ts";

// Before anything else is compiled: the runtime, the dataflow and the worker threads.
if (import.meta.main) enableCompileCacheFor(process.env);
await import("./cli/prestart.ts");
export const { main } = await import("./cli/main.ts");

if (import.meta.main) {
  const code = await main(process.argv.slice(2), process.env, process.cwd());
  // Exit explicitly: a timer or socket left open by user code must not keep a finished
  // run alive. Flushing first keeps the last output when stdout is a pipe.
  await new Promise<void>((done) => process.stdout.write("", () => done()));
  process.exit(code);
}
