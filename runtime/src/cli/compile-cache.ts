/**
 * Node's on-disk compile cache for `waxflow run`, its worker threads and its supervised
 * child: the runtime's and the dataflow's code (TypeScript already stripped of its types) is
 * compiled once per machine, not again at every start and in every worker thread, each of
 * which loads the dataflow module itself.
 */
import { lstatSync, mkdirSync } from "node:fs";
import { constants, enableCompileCache } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Turns the cache on in this user's own directory under the temp directory (made 0700), and
 * names it in `env.NODE_COMPILE_CACHE` so worker threads and child processes use it too.
 * A directory that is not a directory of this user's alone is not used: whoever can write
 * to it chooses code this process would run. Nothing is cached where the directory cannot be
 * made (a read-only root filesystem); everything else runs as before. A NODE_COMPILE_CACHE
 * the user set is Node's own and is left alone, as is NODE_DISABLE_COMPILE_CACHE.
 */
export function enableCompileCacheFor(env: NodeJS.ProcessEnv): void {
  if (env.NODE_COMPILE_CACHE !== undefined || env.NODE_DISABLE_COMPILE_CACHE !== undefined) return;
  const uid = process.getuid?.();
  if (uid === undefined) return;
  const dir = join(tmpdir(), `waxflow-compile-cache-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o700, recursive: true });
    const stat = lstatSync(dir);
    if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o077) !== 0) return;
  } catch {
    return;
  }
  if (enableCompileCache(dir).status === constants.compileCacheStatus.ENABLED) env.NODE_COMPILE_CACHE = dir;
}
