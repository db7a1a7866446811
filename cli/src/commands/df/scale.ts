import { setTimeout as delay } from "node:timers/promises";
import type { V1Pod } from "@kubernetes/client-node";
import { Flags } from "@oclif/core";
import { CONTAINER, type Dataflow, durationMs, specSchema } from "@waxflow/crds";
import { ClusterCommand, nameArg } from "../../base.ts";
import { restart, scale } from "../../deploy/lifecycle.ts";
import { waitUntilFormed } from "../../deploy/wait.ts";
import { UserError } from "../../errors.ts";
import { count, duration } from "../../flags.ts";
import { type Cluster, connect } from "../../kube.ts";
import { createProgress, outputMode } from "../../ui/progress.ts";

/** Volume sources that are per pod by nature: a directory on one of them cannot be shared between processes. */
const PER_POD = ["emptyDir", "configMap", "secret", "downwardAPI", "projected", "ephemeral"] as const;
/** The claim template every pod gets its own claim from (the contract's recovery volume). */
const RECOVERY_VOLUME = "recovery";
/** How long the scale waits for a process to say where its file sinks write. */
const ASK_TIMEOUT_MS = 5000;

/** A file sink's directory, as a process reports it in /status. */
export interface StepFiles {
  readonly step: string;
  readonly directories: readonly string[];
}

/** A directory a step writes files to that is not shared between pods, and what holds it there. */
export interface PerPodOutput {
  readonly step: string;
  readonly directory: string;
  /** The pod's own volume it is on, or undefined for the container's own file system. */
  readonly volume: string | undefined;
}

/** The file outputs of `outputs` that `pod` keeps to itself: on no volume, or on one each pod has its own of. */
export function perPodOutputs(outputs: readonly StepFiles[], pod: V1Pod): PerPodOutput[] {
  const mounts = pod.spec?.containers.find((c) => c.name === CONTAINER)?.volumeMounts ?? [];
  const volumes = pod.spec?.volumes ?? [];
  return outputs.flatMap(({ step, directories }) =>
    directories.flatMap((directory): PerPodOutput[] => {
      const mount = mounts
        .filter((m) => directory === m.mountPath || directory.startsWith(`${m.mountPath.replace(/\/$/, "")}/`))
        .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      if (mount === undefined) return [{ step, directory, volume: undefined }];
      const volume = volumes.find((v) => v.name === mount.name);
      const perPod =
        volume === undefined ||
        volume.name === RECOVERY_VOLUME ||
        PER_POD.some((source) => volume[source] !== undefined);
      return perPod ? [{ step, directory, volume: mount.name }] : [];
    }),
  );
}

/** Why the scale is refused: one line naming the step, the directory, the volume, and the way out. */
export function refusal(name: string, output: PerPodOutput): string {
  const where =
    output.volume === undefined ? "on each pod's own file system" : `on each pod's own volume "${output.volume}"`;
  return (
    `dataflow ${name} writes the files of step "${output.step}" to ${output.directory}, ${where}: ` +
    'file output across a rescale needs a shared volume (the README\'s "File output on Kubernetes" shows how to mount one); ' +
    "add --force to scale anyway (the rescaled processes stop at start if a partition's file is not where they run)"
  );
}

/**
 * What to tell about file output when the processes could not be asked what they write,
 * for a dataflow with recovery whose pods mount no volume they could share. Without
 * recovery, file sinks start over and nothing can go wrong.
 */
export function fileOutputNote(df: Dataflow, previous: number): string | undefined {
  if (df.spec.recovery?.enabled !== true) return undefined;
  const volumes = df.spec.podTemplate?.spec?.volumes ?? [];
  const shared = volumes.filter((v) => !PER_POD.some((source) => v[source] !== undefined));
  if (shared.length > 0) return undefined;
  const name = df.metadata?.name ?? "";
  const namespace = df.metadata?.namespace ?? "";
  return (
    "note: FileSink and DirSink files stay on the pod that wrote them, and these pods mount no shared volume: " +
    "if this dataflow writes files on each pod's own volume, the rescaled processes stop at start saying that " +
    `file output across a rescale needs a shared volume (\`waxctl df logs ${name} -n ${namespace}\`); ` +
    `\`waxctl df scale ${name} -n ${namespace} -p ${previous}\` goes back. The README's "File output on Kubernetes" shows how to mount one`
  );
}

export default class DfScale extends ClusterCommand {
  static override summary = "Change how many processes a dataflow runs.";
  static override description =
    "Sets spec.processes through the Dataflow's scale subresource. A worker cluster is fixed-size, so the operator replaces every process together; with recovery enabled they resume from the last snapshot, with the state spread over the new count. File output (FileSink, DirSink) moves only if its directory is on a volume every pod mounts: with recovery, the command asks a running process where its file sinks write and refuses when that is each pod's own storage (--force scales anyway). Scaling to the count the spec already has restarts every process together when the pods that run do not match it.";

  static override examples = [
    { description: "Run orders on 4 processes:", command: "<%= config.bin %> <%= command.id %> orders --processes 4" },
    {
      description: "The same, returning once the 4 processes run:",
      command: "<%= config.bin %> <%= command.id %> orders --processes 4 --wait",
    },
  ];

  static override args = { name: nameArg };

  static override flags = {
    processes: count({
      char: "p",
      description: "Processes (pods), at least 1.",
      required: true,
      min: 1,
      max: specSchema.properties.processes.maximum,
    }),
    force: Flags.boolean({ description: "Scale even though file output is on each pod's own storage." }),
    wait: Flags.boolean({ description: "Wait until the new processes are ready and the worker cluster has formed." }),
    timeout: duration({ description: "How long --wait waits.", default: "5m" }),
  };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfScale);
    const name = args.name;
    const processes = flags.processes;
    const timeoutMs = durationMs(flags.timeout);
    const { cluster, namespace } = await connect(flags);
    const live = await cluster.mustGetDataflow(namespace, name);
    const previous = live.spec.processes ?? 1;
    const rescale = previous !== processes && live.spec.recovery?.enabled === true;
    const outputs = rescale ? await this.#askedOutputs(cluster, namespace, name) : undefined;
    const stuck = outputs === undefined ? undefined : outputs.perPod[0];
    if (stuck !== undefined && !flags.force) throw new UserError(refusal(name, stuck));
    const scaled = await scale(cluster, namespace, name, processes);
    let { dataflow } = scaled;
    const { changed } = scaled;
    // The spec already says N, but N pods are not what runs (the StatefulSet was scaled by
    // hand, or pods of an old cluster linger): replacing every process together repairs it.
    const running = changed ? [] : (await cluster.pods(namespace, name)).filter((p) => !p.metadata?.deletionTimestamp);
    const repair = !changed && running.length > 0 && running.length !== processes && live.spec.state !== "suspended";
    if (repair) dataflow = await restart(cluster, namespace, name);
    this.log(
      changed
        ? `dataflow ${name} in namespace ${namespace} scaled to ${processes} process(es); every process is replaced together`
        : repair
          ? `dataflow ${name} in namespace ${namespace} asks for ${processes} process(es) but ${running.length} pod(s) run: restarting every process together as ${processes}`
          : `dataflow ${name} in namespace ${namespace} already runs ${processes} process(es)`,
    );
    const note = changed && outputs === undefined ? fileOutputNote(dataflow, previous) : undefined;
    if (note !== undefined) this.logToStderr(note);
    if (!(changed || repair) || !flags.wait) return dataflow;
    const mode = outputMode(this.jsonEnabled(), process.stdout.isTTY === true, process.env);
    const progress = await createProgress(mode, (line) => this.log(line));
    try {
      return await waitUntilFormed(cluster, dataflow, progress, { timeoutMs });
    } finally {
      await progress.close();
    }
  }

  /** Where a running process's file sinks write, judged against its pod; undefined when no process answers. */
  async #askedOutputs(
    cluster: Cluster,
    namespace: string,
    name: string,
  ): Promise<{ perPod: PerPodOutput[] } | undefined> {
    const running = (await cluster.pods(namespace, name)).find(
      (pod) => pod.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.running !== undefined,
    );
    if (running === undefined) return undefined;
    try {
      // A process that does not answer soon is not waited for: the scale goes on with the note.
      const status = (await Promise.race([
        cluster.processStatus(namespace, running),
        delay(ASK_TIMEOUT_MS, undefined, { ref: false }),
      ])) as { fileOutputs?: StepFiles[] } | undefined;
      if (!Array.isArray(status?.fileOutputs)) return undefined;
      return { perPod: perPodOutputs(status.fileOutputs, running) };
    } catch {
      // An older runtime, or a proxy the user may not use: fall back to the note.
      return undefined;
    }
  }
}
