import { setTimeout as delay } from "node:timers/promises";
import { Flags } from "@oclif/core";
import { ClusterCommand, nameArg } from "../../base.ts";
import { UsageError } from "../../errors.ts";
import { connect } from "../../kube.ts";
import { readProcesses } from "../../processes.ts";
import { type StepsView, stepsView, topFrame } from "../../ui/steps.ts";

export interface TopNumbers extends StepsView {
  readonly dataflow: string;
  readonly namespace: string;
  readonly at: string;
}

export default class DfTop extends ClusterCommand {
  static override summary =
    "Watch a running dataflow: each step's throughput, keys and watermark lag, Kafka lag, each pod's epoch, CPU and memory.";

  static override description =
    "A full-screen view refreshed every second: one row per step (items/s, state keys held, watermark lag of " +
    "windowed steps, items in and out, a sparkline of the throughput), one row per Kafka topic read (partitions, " +
    "total lag, the partition lagging most) and one row per pod (process, epoch, last committed epoch, snapshot " +
    "age, CPU in cores, memory in MiB, restarts). CPU and memory come from the metrics.k8s.io API when the " +
    "cluster serves it (metrics-server), else from each process's /metrics (its CPU time over the refresh " +
    "interval; --once and --json read twice, --interval apart). Keys: q quits, s changes the sort (dataflow order, throughput, keys, " +
    "lag), ↑/↓ select a step. The numbers come from each process's /steps, read through the API server's pod proxy " +
    "(you need `get` on `pods/proxy`); the dataflow's code is never loaded here.";

  static override examples = [
    { description: "Watch it live:", command: "<%= config.bin %> <%= command.id %> counts -n streams" },
    { description: "One frame, for scripts and CI:", command: "<%= config.bin %> <%= command.id %> counts --once" },
    {
      description: "The numbers as JSON (per step summed over processes and workers, per pod):",
      command: "<%= config.bin %> <%= command.id %> counts --json",
    },
  ];

  static override args = { name: nameArg };

  static override flags = {
    once: Flags.boolean({ description: "Print one frame and exit." }),
    interval: Flags.integer({
      description: "Seconds between refreshes of the live view.",
      default: 1,
      min: 1,
      helpValue: "SECS",
    }),
  };

  async run(): Promise<TopNumbers> {
    const { args, flags } = await this.parse(DfTop);
    const name = args.name;
    const { cluster, namespace } = await connect(flags);
    await cluster.mustGetDataflow(namespace, name);
    const read = () => readProcesses(cluster, namespace, name, { resources: true });
    if (!flags.once && !this.jsonEnabled()) {
      if (process.stdout.isTTY !== true || process.stdin.isTTY !== true) {
        throw new UsageError(
          "df top needs a terminal for its live view; use --once for one frame or --json for the numbers",
        );
      }
      const { runTop } = await import("../../ui/top.ts");
      const last = await runTop({ dataflow: name, namespace, intervalMs: flags.interval * 1000, read });
      return { dataflow: name, namespace, at: new Date().toISOString(), ...last };
    }
    let readings = await read();
    let view = stepsView(readings);
    // A process's CPU is a rate: without metrics-server, one more reading an interval later.
    if (view.pods.some((p) => p.resourcesFrom === "process" && p.cpuCores === null)) {
      await delay(flags.interval * 1000);
      const before = readings;
      readings = await read();
      view = stepsView(readings, before);
    }
    const now = new Date();
    if (flags.once && !this.jsonEnabled()) {
      this.log(
        topFrame(view, { dataflow: name, namespace, now, sort: "dataflow", history: new Map(), interactive: false }),
      );
    }
    return { dataflow: name, namespace, at: now.toISOString(), ...view };
  }
}
