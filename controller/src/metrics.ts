// Prometheus metrics and the /healthz, /metrics endpoints (node:http, no framework).
import { createServer, type Server } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();

  /** Adds process and Node.js runtime metrics (memory, event loop lag, GC); once per process. */
  withRuntimeMetrics(): this {
    collectDefaultMetrics({ register: this.registry });
    return this;
  }

  readonly reconciles = new Counter({
    name: "waxflow_controller_reconcile_total",
    help: "Reconciles by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "waxflow_controller_reconcile_errors_total",
    help: "Reconciles that failed and were retried",
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "waxflow_controller_reconcile_duration_seconds",
    help: "Time to observe, reconcile and act on one Dataflow",
    registers: [this.registry],
  });
  /** Set by the controller that owns the queue; read when /metrics is scraped. */
  queueLength: () => number = () => 0;
  readonly queueDepth: Gauge = new Gauge({
    name: "waxflow_controller_queue_depth",
    help: "Dataflows waiting to be reconciled",
    registers: [this.registry],
    // Read at scrape time: delayed adds and re-adds change the queue without a hook here.
    collect: () => this.queueDepth.set(this.queueLength()),
  });
  readonly watchRestarts = new Counter({
    name: "waxflow_controller_watch_restarts_total",
    help: "Watch restarts by reason (error, gone, stalled)",
    labelNames: ["kind", "reason"] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: "waxflow_controller_leader",
    help: "1 while this replica holds the lease",
    registers: [this.registry],
  });
}

/** healthy() decides /healthz: the watches are running and the process is not stuck. */
export function serveProbes(metrics: Metrics, port: number, healthy: () => boolean): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === "/healthz" || req.url === "/livez" || req.url === "/readyz") {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok\n" : "not ready\n");
    } else if (req.url === "/metrics") {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(port, () => resolve(server)));
}
