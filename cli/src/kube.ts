// Which kubeconfig, context and namespace a command uses, resolved as kubectl does:
// --kubeconfig, else $KUBECONFIG (a list of files, merged), else ~/.kube/config.

import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import type { KubeConfig } from "@kubernetes/client-node";
import { DNS1123_LABEL } from "./deploy/options.ts";
import { UsageError } from "./errors.ts";

export interface ClusterFlags {
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly namespace?: string;
}

/**
 * The kubeconfig the flags and environment name; undefined when there is none at all.
 * The Kubernetes client is imported only here: loading it costs most of a second, which
 * `--help` and a dry run without a kubeconfig need not pay.
 */
export async function loadKubeConfig(
  flags: ClusterFlags,
  env: Readonly<Record<string, string | undefined>>,
  home: string,
): Promise<KubeConfig | undefined> {
  const files =
    flags.kubeconfig !== undefined
      ? [flags.kubeconfig]
      : env.KUBECONFIG
        ? env.KUBECONFIG.split(delimiter).filter((f) => f !== "")
        : [join(home, ".kube", "config")].filter((f) => existsSync(f));
  const missing = files.find((f) => !existsSync(f));
  if (missing !== undefined) {
    const source = flags.kubeconfig !== undefined ? "--kubeconfig" : "$KUBECONFIG";
    throw new UsageError(`${source} names ${missing}, which does not exist; point it at your cluster's kubeconfig`);
  }
  if (files.length === 0) {
    if (flags.context !== undefined) {
      throw new UsageError(`--context ${flags.context}: no kubeconfig found; pass --kubeconfig PATH or set KUBECONFIG`);
    }
    return undefined;
  }
  const { KubeConfig } = await import("@kubernetes/client-node");
  const [first, ...rest] = files as [string, ...string[]];
  const config = new KubeConfig();
  config.loadFromFile(first);
  for (const file of rest) {
    const more = new KubeConfig();
    more.loadFromFile(file);
    config.mergeConfig(more);
  }
  if (flags.context !== undefined) {
    if (config.getContextObject(flags.context) === null) {
      const known = config.getContexts().map((c) => c.name);
      throw new UsageError(
        `--context ${flags.context} is not in the kubeconfig; known contexts: ${known.join(", ") || "(none)"}`,
      );
    }
    config.setCurrentContext(flags.context);
  }
  return config;
}

/** -n, else the current context's namespace, else `default`, as kubectl picks it. */
export function targetNamespace(flags: ClusterFlags, config: KubeConfig | undefined): string {
  if (flags.namespace !== undefined) {
    if (!DNS1123_LABEL.test(flags.namespace) || flags.namespace.length > 63) {
      throw new UsageError(`-n/--namespace "${flags.namespace}" is not a namespace name (lowercase DNS-1123 label)`);
    }
    return flags.namespace;
  }
  return config?.getContextObject(config.getCurrentContext())?.namespace ?? "default";
}
