// waxflow-controller: installs the CRD, wins the Lease, then reconciles Dataflows until
// it loses the lease or is told to stop.
//   WATCH_NAMESPACES   comma-separated namespaces; all when empty
//   POD_NAMESPACE      where the Lease lives (default "default")
//   LEADER_ELECT       "false" to run without a Lease (one replica only)
//   LEASE_DURATION_SECONDS  how long a dead leader blocks the others (default 15)
//   PROBE_PORT         /healthz and /metrics (default 8080)
//   WORKERS            Dataflows reconciled concurrently (default 32)
//   INSTALL_CRD        "false" when the chart installs the CRD
//   API_CLIENT_NAMESPACE_LABELS, API_CLIENT_POD_LABELS  k=v,... : who besides the controller's
//                      namespace may reach the Dataflows' API port (Prometheus), see desired/network-policy.ts
//   ALLOW_PRIVILEGED_DATAFLOWS  "true": a Dataflow with spec.allowPrivileged gets the pod template it asks for
//   UNINSTALL_CHECK    "true": only check that no Dataflow is left (the chart's pre-delete hook)
//   LOG_LEVEL, LOG_FORMAT  as --log-level and --log-format (see options.ts and --help)
import { hostname } from "node:os";
import { Controller } from "./controller.ts";
import { parseLabels } from "./desired/network-policy.ts";
import { PooledKubeConfig } from "./kube/client.ts";
import { installCrd } from "./kube/crd.ts";
import { LeaderElector } from "./kube/leader.ts";
import { configureLog, errorText, log } from "./log.ts";
import { Metrics, serveProbes } from "./metrics.ts";
import { parseOptions, USAGE } from "./options.ts";
import type { OperatorSettings } from "./reconcile/reconcile.ts";
import { uninstallCheck } from "./uninstall-check.ts";

const env = process.env;
try {
  const options = parseOptions(process.argv.slice(2), { LOG_LEVEL: env.LOG_LEVEL, LOG_FORMAT: env.LOG_FORMAT });
  if (options.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  configureLog(options);
} catch (err) {
  process.stderr.write(`waxflow-controller: ${errorText(err)}\n`);
  process.exit(2);
}

/** client-go's proportions: renew deadline 2/3 and retry period 2/15 of the lease duration. */
function leaseTimings(seconds: number) {
  const ms = seconds * 1000;
  return { leaseDurationMs: ms, renewDeadlineMs: (ms * 2) / 3, retryPeriodMs: (ms * 2) / 15 };
}
const kc = new PooledKubeConfig();
kc.loadFromDefault();
const namespaces = (env.WATCH_NAMESPACES ?? "")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s !== "");
if (env.UNINSTALL_CHECK === "true") process.exit(await uninstallCheck(kc, namespaces));
let settings: OperatorSettings;
try {
  settings = {
    apiClients: {
      controllerNamespace: env.POD_NAMESPACE ?? "default",
      namespaceLabels: parseLabels(env.API_CLIENT_NAMESPACE_LABELS ?? "", "API_CLIENT_NAMESPACE_LABELS"),
      podLabels: parseLabels(env.API_CLIENT_POD_LABELS ?? "", "API_CLIENT_POD_LABELS"),
    },
    allowPrivilegedDataflows: env.ALLOW_PRIVILEGED_DATAFLOWS === "true",
  };
} catch (err) {
  log("error", errorText(err));
  process.exit(2);
}
const controller = new Controller(kc, {
  namespaces,
  settings,
  ...(env.WORKERS ? { workers: Number(env.WORKERS) } : {}),
  metrics: new Metrics().withRuntimeMetrics(),
});
const elector = new LeaderElector(kc, {
  namespace: env.POD_NAMESPACE ?? "default",
  name: "waxflow-controller",
  identity: `${hostname()}-${process.pid}`,
  ...(env.LEASE_DURATION_SECONDS ? leaseTimings(Number(env.LEASE_DURATION_SECONDS)) : {}),
});
const leaderElect = env.LEADER_ELECT !== "false";
const server = await serveProbes(controller.metrics, Number(env.PROBE_PORT ?? 8080), () =>
  leaderElect && !elector.leading ? true : controller.synced,
);

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await controller.stop();
    await elector.release();
    server.close();
  }
  process.exit(code);
}
process.on("SIGTERM", () => void shutdown(0));
process.on("SIGINT", () => void shutdown(0));

try {
  if (env.INSTALL_CRD !== "false") await installCrd(controller.kube);
  if (leaderElect) {
    await elector.acquire();
    controller.metrics.leader.set(1);
  }
  controller.start();
  log("info", "controller started", { namespaces: namespaces.length ? namespaces : "all" });
  if (leaderElect) {
    await elector.holdUntilLost();
    log("error", "lost the lease; exiting so a fresh process competes again");
    await shutdown(1);
  }
} catch (err) {
  log("error", "controller failed to start", { error: errorText(err) });
  await shutdown(1);
}
