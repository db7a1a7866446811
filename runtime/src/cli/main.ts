/**
 * What `waxflow` does with its command line (cli.ts is the program): it resolves the process
 * configuration (flags, then environment), loads the dataflow, runs it to the end of its
 * inputs and turns the outcome into an exit code and, on failure, one line on stderr.
 */
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { inspect } from "node:util";
import { ProcessView, serveApi } from "../api/server.ts";
import { stateQueryToken } from "../api/state-token.ts";
import { type MeshSecurity, parseAddresses } from "../cluster/mesh.ts";
import type { Dataflow } from "../dataflow.ts";
import { UsageError } from "../errors.ts";
import { curedByRestart, describeFailure } from "../failure.ts";
import { stderrLog, VERSION } from "../log.ts";
import { execute } from "../process/execute.ts";
import { loadDataflow } from "../process/load.ts";
import { holdStore } from "../recovery/handoff.ts";
import { fileOutputs } from "../recovery/output-files.ts";
import { initRecoveryDirectory, RecoveryStore } from "../recovery/store.ts";
import { dataflowGraph, toDot, toMermaid } from "../visualize.ts";
import { type Command, type Env, type RunConfig, resolveCommand, unsupported } from "./config.ts";
import { HELP } from "./help.ts";
import { CLI, takePrestarted } from "./prestart.ts";
import { dieWithSupervisor, requestRestart, supervise, supervised } from "./supervise.ts";

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
/** Shells report death by signal N as 128 + N; a clean stop on a signal says the same. */
const SIGNAL_EXIT = { SIGINT: 128 + 2, SIGTERM: 128 + 15 } as const;
type StopSignal = keyof typeof SIGNAL_EXIT;

/** Runs `waxflow <argv>` and returns the exit code. */
export async function main(argv: readonly string[], env: Env, cwd: string): Promise<number> {
  // Known before parsing, so even a usage error can be shown with its stack.
  const debug = env.WAXFLOW_DEBUG === "1" || argv.includes("--debug");
  let command: Command;
  try {
    command = resolveCommand(argv, env, {
      readHostfile: (path) => readFileSync(path, "utf8"),
      readSecretFile: (path) => readFileSync(path),
    });
  } catch (err) {
    report(err, debug);
    return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
  if (command.kind === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  if (command.kind === "graph") {
    try {
      const graph = dataflowGraph(await loadDataflow(command.modulePath, command.exportName, cwd));
      process.stdout.write(command.format === "dot" ? toDot(graph) : toMermaid(graph));
    } catch (err) {
      report(err, debug);
      return EXIT_FAILURE;
    }
    return 0;
  }
  if (command.kind === "recovery-init") {
    try {
      initRecoveryDirectory(command.directory, command.partitions);
    } catch (err) {
      report(err, debug);
      return EXIT_FAILURE;
    }
    process.stdout.write(`created ${command.partitions} recovery partitions in ${command.directory}\n`);
    return 0;
  }
  const { config } = command;
  const unusable = unsupported(config);
  if (unusable !== undefined) {
    report(new UsageError(unusable), debug);
    return EXIT_USAGE;
  }
  if (config.supervise) {
    return supervise({
      entry: CLI,
      execArgv: process.execArgv,
      argv,
      env,
      log: stderrLog(config.processId, config.holder ? "holder" : "process"),
    });
  }
  const hasSupervisor = supervised(env);
  if (hasSupervisor) dieWithSupervisor();

  const stop = new AbortController();
  let caught: StopSignal | undefined;
  // `once`: a second Ctrl-C gets the default action and kills a run that will not stop.
  // A supervised child hears each Ctrl-C twice (from the terminal and forwarded by its
  // supervisor), so it listens to every one and leaves the second Ctrl-C to the supervisor.
  const listen = hasSupervisor ? "on" : "once";
  const onSignal = (signal: StopSignal): void => {
    if (caught !== undefined) return;
    caught = signal;
    process.stderr.write(`stopping on ${signal}\n`);
    stop.abort(new Error(`stopped by ${signal}`));
  };
  const view = new ProcessView(
    config.processId,
    Math.max(config.addresses.length, 1),
    config.holder ? "holder" : "process",
  );
  let api: Server | undefined;
  const module = { path: config.modulePath, exportName: config.exportName, cwd };
  const threads = takePrestarted(config, module);
  try {
    // Served before peers connect, so probes see live-but-not-ready while the cluster forms.
    const { secret } = config.mesh;
    const token = secret instanceof Uint8Array ? stateQueryToken(secret) : undefined;
    const sts = env.WAXFLOW_STATEFULSET_NAME?.trim();
    api = await serveApi(config.apiPort, view, {
      stateQueryToken: config.stateQuery ? token : undefined,
      savepointToken: token,
      backups: config.backup !== undefined && config.recoveryDirectory !== undefined,
      processZero: sts === undefined || sts === "" ? "process 0" : `pod ${sts}-0`,
    });
    const flow = await loadDataflow(config.modulePath, config.exportName, cwd);
    view.writesFiles(fileOutputs(flow, cwd));
    view.runs(flow);
    process[listen]("SIGINT", onSignal);
    process[listen]("SIGTERM", onSignal);
    if (config.holder) {
      await hold(config, flow, view, stop.signal);
      view.released();
      stderrLog(config.processId, "holder")("the cluster no longer needs this store; waiting to be stopped");
      // Its job is done: being stopped now is the expected end, not a failure.
      await new Promise((resolve) => stop.signal.addEventListener("abort", resolve, { once: true }));
      return 0;
    }
    await execute(flow, {
      workers: config.workersPerProcess,
      module,
      threads,
      epochIntervalMs: config.epochIntervalMs,
      cluster: {
        processId: config.processId,
        addresses:
          config.addresses.length > 0 ? parseAddresses(config.addresses.join(";")) : [{ host: "127.0.0.1", port: 0 }],
        connectTimeoutMs: config.startTimeoutMs,
        mesh: meshOptions(config, view),
      },
      recovery:
        config.recoveryDirectory === undefined
          ? undefined
          : {
              dbDir: config.recoveryDirectory,
              backupIntervalMs: config.backupIntervalMs,
              init: config.recoveryInit,
              dropRemovedSteps: config.dropRemovedSteps,
              backup: config.backup,
              startFrom: config.startFrom,
              savepointPrefix: config.savepointPrefix,
            },
      signal: stop.signal,
      onSavepoints: (savepoints) => view.servesSavepoints(savepoints),
      onStart: (run) => view.started(run),
      onSnapshot: (stats) => view.snapshotted(stats),
      onRestore: (report) => view.restored(report),
      log: config.quiet ? undefined : stderrLog(config.processId),
      progressIntervalMs: config.progressIntervalMs,
    });
  } catch (err) {
    if (caught === undefined) {
      // The supervisor says why in its line about the restart.
      if (hasSupervisor && curedByRestart(err)) await requestRestart(describeFailure(err));
      else report(err, debug);
      return EXIT_FAILURE;
    }
  } finally {
    // Threads the run did not get to use (it failed before its workers started).
    for (const thread of threads ?? []) thread.release();
    api?.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  return caught === undefined ? 0 : SIGNAL_EXIT[caught];
}

/** A holder: serves its process's recovery store to the cluster until the cluster no longer needs it. */
async function hold(config: RunConfig, flow: Dataflow, view: ProcessView, signal: AbortSignal): Promise<void> {
  // resolveCommand only makes a holder with a directory; the check keeps the types honest.
  if (config.recoveryDirectory === undefined) throw new UsageError("a holder needs -r/--recovery-directory");
  // Its hand-off and reconnections are logged even when quiet: a holder does nothing else.
  const log = stderrLog(config.processId, "holder");
  if (!config.quiet) {
    log(
      `waxflow ${VERSION} holding the recovery store in ${config.recoveryDirectory} for the cluster of ` +
        `${config.addresses.length} process(es) of dataflow "${flow.flowId}": it hands its snapshots over, then waits to be stopped`,
    );
  }
  const store = RecoveryStore.open(config.recoveryDirectory, {
    create: config.recoveryInit,
    snapshotIntervalMs: config.epochIntervalMs,
    backupIntervalMs: 0,
  });
  try {
    await holdStore({
      flow,
      store,
      processId: config.processId,
      addresses: parseAddresses(config.addresses.join(";")),
      connectTimeoutMs: config.startTimeoutMs,
      mesh: meshOptions(config, view),
      signal,
      log,
      dropRemovedSteps: config.dropRemovedSteps,
    });
  } finally {
    store.close();
  }
}

/** The mesh as configured; each connection it turns away is logged and counted, and the run goes on. */
function meshOptions(config: RunConfig, view: ProcessView): MeshSecurity {
  const { secret, tls, listenHost, peerTimeoutMs } = config.mesh;
  return {
    secret,
    tls,
    listenHost,
    peerTimeoutMs,
    onRefused: (refusal) => {
      view.refused(refusal.kind);
      process.stderr.write(`warning: cluster port: refused ${refusal.detail}\n`);
    },
  };
}

/** One line for the user; the full chain of causes only when debugging. */
function report(err: unknown, debug: boolean): void {
  process.stderr.write(`error: ${describeFailure(err)}\n`);
  if (debug) process.stderr.write(`${inspect(err, { depth: 6 })}\n`);
}
