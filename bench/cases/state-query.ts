/**
 * State query latency: three `waxflow run --state-query` processes (one worker each, a
 * recovery store each) count 1M distinct keys (runtime/test/fixtures/state-query-flow.ts),
 * then GET /state/count?key=K for random keys, asked of the three processes in turn, so
 * two queries in three cross the mesh to the owner. Sequential requests over keep-alive
 * connections: the figures are one query's latency, live (taken by the owning worker
 * between two activations) and committed (read from the owner's recovery store); then
 * pages of 100 keys, which every process answers for its share and the asked one merges.
 * Measured once; loading the keys takes most of the time.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stateQueryToken } from "../../runtime/src/api/state-token.ts";
import { freePorts } from "../../runtime/test/support/ports.ts";
import type { BenchCase, Figure } from "../harness.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const KEYS = 1_000_000;
const QUERIES = 2_000;
/** Pages listed per consistency: each asks all three processes and scans their keys. */
const PAGES = 100;
const SECRET = "bench-state-query-secret-0123456789";
const TOKEN = stateQueryToken(Buffer.from(SECRET));
/** A live query's p99 must stay below this (ms): well under a human's notice, and under an HTTP client's patience. */
const P99_TARGET_MS = 50;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function get(agent: Agent, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request(
      { host: "127.0.0.1", port, path, agent, headers: { "x-waxflow-state-token": TOKEN } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", fail);
    req.end();
  });
}

/** Random keys' latencies (ms), sorted; every answer must be the count 1. */
async function latencies(agent: Agent, ports: readonly number[], consistency: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < QUERIES; i++) {
    const key = `k${Math.floor(Math.random() * KEYS)}`;
    const port = ports[i % ports.length] as number;
    const started = performance.now();
    const { status, body } = await get(agent, port, `/state/count?key=${key}&consistency=${consistency}`);
    times.push(performance.now() - started);
    if (status !== 200 || (JSON.parse(body) as { value: unknown }).value !== 1) {
      throw new Error(`${consistency} ${key} from port ${port}: ${status} ${body}`);
    }
  }
  return times.sort((a, b) => a - b);
}

/** Pages of 100 keys after random keys, `n` of them; latencies (ms), sorted. */
async function pageLatencies(
  agent: Agent,
  ports: readonly number[],
  consistency: string,
  n: number,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const after = `k${Math.floor(Math.random() * KEYS)}`;
    const started = performance.now();
    const { status, body } = await get(
      agent,
      ports[i % ports.length] as number,
      `/state/count?after=${after}&limit=100&consistency=${consistency}`,
    );
    times.push(performance.now() - started);
    if (status !== 200 || (JSON.parse(body) as { keys: string[] }).keys.length === 0) {
      throw new Error(`page after ${after}: ${status} ${body.slice(0, 200)}`);
    }
  }
  return times.sort((a, b) => a - b);
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export const stateQuery: BenchCase = {
  title: `state query latency: 3 processes, ${KEYS / 1e6}M keys, ${QUERIES} sequential GET /state per consistency`,
  targets: {},
  async prepare() {
    return {
      async measure(): Promise<Figure[]> {
        const root = mkdtempSync(join(tmpdir(), "waxflow-bench-state-"));
        const ports = await freePorts(6);
        const addresses = ports
          .slice(0, 3)
          .map((p) => `127.0.0.1:${p}`)
          .join(";");
        const apiPorts = ports.slice(3);
        const children: ChildProcess[] = apiPorts.map((api, i) =>
          spawn(
            process.execPath,
            [
              "--conditions=waxflow-source",
              "runtime/src/cli.ts",
              "run",
              "runtime/test/fixtures/state-query-flow.ts",
              ...["-i", String(i), "-a", addresses, "-r", join(root, `p${i}`), "--recovery-init", "-s", "2"],
              "--state-query",
              "--no-supervise",
            ],
            {
              cwd: ROOT,
              stdio: ["ignore", "ignore", "inherit"],
              env: {
                PATH: process.env.PATH ?? "",
                WAXFLOW_API_PORT: String(api),
                WAXFLOW_CLUSTER_SECRET: SECRET,
                WAXFLOW_QUIET: "true",
                SQ_KEYS: String(KEYS),
                SQ_TIMES: "1",
                SQ_BATCH: "10000",
                SQ_PACE_MS: "0",
              },
            },
          ),
        );
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        try {
          const loadedAt = performance.now();
          // Each of the 3 feeds emits its keys in order: all are in once each feed's last key is committed.
          const lastKeys = [1, 2, 3].map((back) => `/state/count?key=k${KEYS - back}&consistency=committed`);
          await until("the 1M keys to be committed", 600_000, async () => {
            const answers = await Promise.all(lastKeys.map((path, i) => get(agent, apiPorts[i] as number, path)));
            return answers.every((a) => a.status === 200);
          });
          const loadSeconds = (performance.now() - loadedAt) / 1000;
          const live = await latencies(agent, apiPorts, "live");
          const committed = await latencies(agent, apiPorts, "committed");
          const livePages = await pageLatencies(agent, apiPorts, "live", PAGES);
          const committedPages = await pageLatencies(agent, apiPorts, "committed", PAGES);
          return [
            { name: `live p50 (n=${QUERIES})`, value: percentile(live, 50), unit: "ms" },
            { name: `live p99 (n=${QUERIES})`, value: percentile(live, 99), unit: "ms", below: P99_TARGET_MS },
            { name: `committed p50 (n=${QUERIES})`, value: percentile(committed, 50), unit: "ms" },
            {
              name: `committed p99 (n=${QUERIES})`,
              value: percentile(committed, 99),
              unit: "ms",
              below: P99_TARGET_MS,
            },
            { name: `live page of 100 keys p50 (n=${PAGES})`, value: percentile(livePages, 50), unit: "ms" },
            { name: `live page of 100 keys p99 (n=${PAGES})`, value: percentile(livePages, 99), unit: "ms" },
            { name: `committed page of 100 keys p50 (n=${PAGES})`, value: percentile(committedPages, 50), unit: "ms" },
            { name: `committed page of 100 keys p99 (n=${PAGES})`, value: percentile(committedPages, 99), unit: "ms" },
            { name: `keys counted and committed (start-up included)`, value: loadSeconds, unit: "s" },
          ];
        } finally {
          agent.destroy();
          for (const child of children) child.kill("SIGKILL");
          rmSync(root, { recursive: true, force: true });
        }
      },
    };
  },
};
