import { homedir } from "node:os";
import { Args, Flags } from "@oclif/core";
import type { Dataflow } from "@waxflow/crds";
import { parseRegistryPrefix } from "@waxflow/oci";
import { dump } from "js-yaml";
import { ClusterCommand } from "../../base.ts";
import { buildAndDeliver, type Destination, kindClusterOf } from "../../deploy/build.ts";
import { loadCheck } from "../../deploy/deploy.ts";
import { namespaceName } from "../../deploy/options.ts";
import { renderDataflow } from "../../deploy/render.ts";
import { loadKubeConfig } from "../../kube.ts";
import { createProgress } from "../../ui/progress.ts";
import DfDeploy, { optionsOf } from "./deploy.ts";

// The deploy flags that shape the Dataflow or its image; none that talk to the API server.
const { wait, timeout, yes, "dry-run": dryRun, "create-namespace": createNamespace, ...shared } = DfDeploy.flags;

export default class DfRender extends ClusterCommand {
  static override summary = "Build a dataflow's image and print the Dataflow that runs it, for kubectl or GitOps.";
  static override description =
    "Does what `df deploy` does up to the apply: bundles PATH, builds its image on waxflow-runtime and loads it into the kind cluster (--kind, or the context's when it is kind-CLUSTER) or pushes it to --registry, then prints the Dataflow resource, image by digest, to stdout. Progress goes to stderr, so the output pipes into `kubectl apply -f -` or a file in a GitOps repository. It reads the kubeconfig only to find the kind cluster (without -n the Dataflow has no namespace, so `kubectl apply` puts it in its context's); it never contacts the API server.";

  static override examples = [
    {
      description: "Build, load into kind and apply in one line:",
      command:
        "<%= config.bin %> <%= command.id %> examples/running-count.ts -N counts -p 2 --recovery | kubectl apply -f -",
    },
    {
      description: "Push to a registry and write the manifest a GitOps tool syncs:",
      command:
        "<%= config.bin %> <%= command.id %> flow.ts -N orders -n streams --registry ghcr.io/acme > deploy/orders.yaml",
    },
  ];

  static override args = {
    path: Args.string({
      description: "The dataflow's entry module (.ts or .js), optionally PATH:NAME for a named export.",
      required: true,
    }),
  };

  static override flags = {
    ...shared,
    output: Flags.option({
      char: "o",
      description: "Format of the Dataflow printed.",
      options: ["yaml", "json"] as const,
      default: "yaml",
    })(),
  };

  async run(): Promise<Dataflow> {
    const { args, flags } = await this.parse(DfRender);
    const options = await optionsOf(flags, "render");
    // Without -n the Dataflow has no namespace, so `kubectl apply` puts it in its context's.
    const namespace = flags.namespace === undefined ? undefined : namespaceName("-n/--namespace", flags.namespace);
    const destination = await this.#destination(flags);
    const progress = await createProgress(this.jsonEnabled() ? "quiet" : "plain", (line) => this.logToStderr(line));
    let df: Dataflow;
    try {
      df = await renderDataflow({
        options,
        namespace,
        path: args.path,
        cwd: process.cwd(),
        progress,
        check: loadCheck(options, flags.check),
        build: destination === undefined ? undefined : buildAndDeliver(destination, flags.base, process.cwd()),
      });
    } finally {
      await progress.close();
    }
    if (!this.jsonEnabled()) {
      this.log(
        flags.output === "json" ? JSON.stringify(df, null, 2) : dump(df, { lineWidth: -1, noRefs: true }).trimEnd(),
      );
    }
    return df;
  }

  /** --registry, else --kind, else the kind cluster of the kubeconfig's context, if it is one. */
  async #destination(flags: {
    registry?: string;
    kind?: string;
    image?: string;
    kubeconfig?: string;
    context?: string;
  }): Promise<Destination | undefined> {
    if (flags.image !== undefined) return undefined;
    if (flags.registry !== undefined) {
      return { registry: parseRegistryPrefix(flags.registry, `--registry ${flags.registry}`) };
    }
    if (flags.kind !== undefined) return { kindCluster: flags.kind };
    const config = await loadKubeConfig(flags, process.env, homedir());
    const kind = config === undefined ? undefined : kindClusterOf(config.getCurrentContext());
    return kind === undefined ? undefined : { kindCluster: kind };
  }
}
