// Runs waxctl commands in this process with @oclif/test, for every test that runs a command.
import { join } from "node:path";
import { format } from "node:util";
import { runCommand } from "@oclif/test";

export const cliRoot = join(import.meta.dirname, "..");

export interface Outcome {
  readonly stdout: string;
  readonly stderr: string;
  readonly error?: Error & { oclif?: { exit?: number } };
}

/**
 * oclif prints through console.log, which vitest intercepts before runCommand's capture of
 * process.stdout sees it, so the console is pointed back at the process streams meanwhile.
 */
export async function waxctl(args: readonly string[]): Promise<Outcome> {
  const { log, error } = console;
  console.log = (...parts: unknown[]) => process.stdout.write(`${format(...parts)}\n`);
  console.error = (...parts: unknown[]) => process.stderr.write(`${format(...parts)}\n`);
  try {
    return await runCommand([...args], { root: cliRoot });
  } finally {
    console.log = log;
    console.error = error;
  }
}
