// A Dataflow's savepoints, through process 0's HTTP API (POST/GET/DELETE /savepoints) on
// the API server's pod proxy, with the state token derived from the cluster Secret, as
// `df state` reaches its processes. The runtime serves savepoints from process 0 only.
import { CONTAINER, type Dataflow, SAVEPOINT_ID, type SavepointRecord } from "@waxflow/crds";
import { STATE_TOKEN_HEADER } from "waxflow/state-token";
import { refusal, stateToken } from "./commands/df/state.ts";
import { UsageError, UserError } from "./errors.ts";
import type { Cluster, ProxySend } from "./kube.ts";

export type { SavepointRecord };

/** A savepoint id as `label` (the flag or argument) gave it. */
export function savepointId(label: string, id: string): string {
  if (!SAVEPOINT_ID.test(id)) {
    throw new UsageError(
      `${label} "${id}" is not a savepoint id: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
    );
  }
  return id;
}

/** The prefix a Dataflow's backups (and so its savepoints) live under; "" for the bucket's root. */
export function backupPrefix(df: Dataflow): string | undefined {
  const backup = df.spec.recovery?.backup;
  return backup === undefined ? undefined : (backup.prefix ?? "");
}

/** Process 0 of one Dataflow, ready to be asked about savepoints. */
export class SavepointClient {
  readonly #cluster: Cluster;
  readonly #namespace: string;
  readonly #pod: import("@kubernetes/client-node").V1Pod;
  readonly #token: string;
  readonly podName: string;

  private constructor(
    cluster: Cluster,
    namespace: string,
    pod: import("@kubernetes/client-node").V1Pod,
    token: string,
  ) {
    this.#cluster = cluster;
    this.#namespace = namespace;
    this.#pod = pod;
    this.#token = token;
    this.podName = pod.metadata?.name ?? "";
  }

  /** Refuses in one line a Dataflow without backups, or whose process 0 is not running. */
  static async connect(cluster: Cluster, namespace: string, df: Dataflow): Promise<SavepointClient> {
    const name = df.metadata?.name ?? "";
    if (df.spec.recovery?.enabled !== true || df.spec.recovery.backup === undefined) {
      throw new UserError(
        `dataflow ${name} has no backups to take savepoints from: deploy it with --recovery --backup-bucket BUCKET (spec.recovery.backup)`,
      );
    }
    const pod = (await cluster.pods(namespace, name)).find((p) => p.metadata?.name === `${name}-0`);
    const running = pod?.status?.containerStatuses?.find((c) => c.name === CONTAINER)?.state?.running !== undefined;
    if (pod === undefined || !running) {
      throw new UserError(
        `pod ${name}-0 (process 0, which takes savepoints) is not running; \`waxctl df describe ${name} -n ${namespace}\` shows why`,
      );
    }
    return new SavepointClient(cluster, namespace, pod, await stateToken(cluster, namespace, name));
  }

  async create(id: string | undefined): Promise<SavepointRecord> {
    const body = JSON.stringify(id === undefined ? {} : { id });
    return (await this.#ask("savepoints", { method: "POST", body }, [202])) as SavepointRecord;
  }

  async list(): Promise<SavepointRecord[]> {
    return ((await this.#ask("savepoints", {}, [200])) as { savepoints: SavepointRecord[] }).savepoints;
  }

  async get(id: string): Promise<SavepointRecord> {
    return (await this.#ask(`savepoints/${id}`, {}, [200])) as SavepointRecord;
  }

  async delete(id: string): Promise<void> {
    await this.#ask(`savepoints/${id}`, { method: "DELETE" }, [200]);
  }

  async #ask(path: string, send: ProxySend, ok: readonly number[]): Promise<unknown> {
    const headers = { [STATE_TOKEN_HEADER]: this.#token };
    const { status, body } = await this.#cluster.processRequest(this.#namespace, this.#pod, path, headers, send);
    if (!ok.includes(status)) throw new UserError(`pod ${this.podName}: ${answerLine(status, body)}`);
    return JSON.parse(body);
  }
}

/** The process's `{"error": ...}`, else the API server's refusal. */
export function answerLine(status: number, body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === "string") return parsed.error;
  } catch {
    // Not JSON: the API server's or a proxy's answer.
  }
  return refusal(status, body);
}

/**
 * Polls until the savepoint is complete (returned) or failed (one line), telling each
 * poll to `progress`; gives up after `timeoutMs`, saying the savepoint may still complete.
 */
export async function waitForSavepoint(
  client: Pick<SavepointClient, "get">,
  id: string,
  timeoutMs: number,
  progress: (record: SavepointRecord, waitedMs: number) => void,
  intervalMs = 1000,
): Promise<SavepointRecord> {
  const started = Date.now();
  for (;;) {
    const record = await client.get(id);
    progress(record, Date.now() - started);
    if (record.state === "complete") return record;
    if (record.state === "failed") throw new UserError(`savepoint ${id} failed: ${record.error ?? "no reason given"}`);
    if (Date.now() - started >= timeoutMs) {
      throw new UserError(
        `savepoint ${id} is still pending after ${Math.round(timeoutMs / 1000)} s (it completes with the next complete backup set); ` +
          "check later with `waxctl df savepoint list`, or raise --timeout",
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
