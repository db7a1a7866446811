import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, expect, test } from "vitest";
import { output } from "./support/output.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const MODULE = resolve(ROOT, "runtime/src/cli/compile-cache.ts");
const CLI = resolve(ROOT, "runtime/src/cli.ts");
const uid = process.getuid?.() ?? 0;
const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "waxflow-compile-cache-test-"));
  made.push(dir);
  return dir;
}

/** NODE_COMPILE_CACHE after enableCompileCacheFor, in a fresh process whose temp directory is `tmp`. */
function enabledIn(tmp: string, env: Record<string, string> = {}): string {
  const script = `import { enableCompileCacheFor } from ${JSON.stringify(MODULE)}; enableCompileCacheFor(process.env); console.log(process.env.NODE_COMPILE_CACHE ?? "off")`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { PATH: process.env.PATH ?? "", TMPDIR: tmp, ...env },
    encoding: "utf8",
  });
  expect(run.stderr).toBe("");
  return run.stdout.trim();
}

test("the cache is this user's own 0700 directory under the temp directory, named for threads and children", () => {
  const tmp = tempDir();
  const dir = join(tmp, `waxflow-compile-cache-${uid}`);
  expect(enabledIn(tmp)).toBe(dir);
  expect(statSync(dir).mode & 0o777).toBe(0o700);
});

test("a directory others can write to, or a symlink, is not used; the user's own NODE_COMPILE_CACHE is left alone", () => {
  const open = tempDir();
  mkdirSync(join(open, `waxflow-compile-cache-${uid}`));
  chmodSync(join(open, `waxflow-compile-cache-${uid}`), 0o777);
  expect(enabledIn(open)).toBe("off");
  expect(readdirSync(join(open, `waxflow-compile-cache-${uid}`))).toEqual([]);

  const linked = tempDir();
  const elsewhere = tempDir();
  symlinkSync(elsewhere, join(linked, `waxflow-compile-cache-${uid}`));
  expect(enabledIn(linked)).toBe("off");

  expect(enabledIn(tempDir(), { NODE_DISABLE_COMPILE_CACHE: "1" })).toBe("off");
  const own = tempDir();
  expect(enabledIn(tempDir(), { NODE_COMPILE_CACHE: own })).toBe(own);
});

test("waxflow run -w 2 fills the cache, and a second run gives the same output", async () => {
  const tmp = tempDir();
  const run = () =>
    output(
      spawn(process.execPath, ["--conditions=waxflow-source", CLI, "run", "examples/wordcount.ts", "-w", "2"], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", TMPDIR: tmp, WAXFLOW_API_PORT: "0", WAXFLOW_QUIET: "true" },
      }),
    );
  const first = await run();
  expect(first.code).toBe(0);
  const cache = join(tmp, `waxflow-compile-cache-${uid}`);
  const [versioned] = readdirSync(cache);
  expect(versioned).toMatch(/^v\d+/);
  expect(readdirSync(join(cache, versioned as string)).length).toBeGreaterThan(10);
  const second = await run();
  expect(second.code).toBe(0);
  expect(second.stdout.split("\n").sort()).toEqual(first.stdout.split("\n").sort());
});

test("waxflow run -w 1 caches the runtime's own modules, not only the dataflow's", async () => {
  const tmp = tempDir();
  const run = await output(
    spawn(process.execPath, ["--conditions=waxflow-source", CLI, "run", "examples/wordcount.ts", "-w", "1"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", TMPDIR: tmp, WAXFLOW_API_PORT: "0", WAXFLOW_QUIET: "true" },
    }),
  );
  expect(run.code).toBe(0);
  const cache = join(tmp, `waxflow-compile-cache-${uid}`);
  const [versioned] = readdirSync(cache);
  // cli.ts turns the cache on before it imports the rest of the runtime (~200 modules with
  // prom-client's); turned on after a static import graph, only the dataflow's ~30 were cached.
  expect(readdirSync(join(cache, versioned as string)).length).toBeGreaterThan(100);
});
