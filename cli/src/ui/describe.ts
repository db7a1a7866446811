// The text of `df list` rows and `df describe`: pure functions of what the API server returned.
import type { CoreV1Event, V1Pod } from "@kubernetes/client-node";
import type { Dataflow } from "@waxflow/crds";
import { isPodReady } from "@waxflow/crds";
import { dataflowState, podRestarts, podStatus, readyOfDesired } from "../deploy/status.ts";
import { eventTime } from "../kube.ts";
import { age, shortImage, table } from "./format.ts";
import {
  DESCRIBE_KAFKA_HEADERS,
  DESCRIBE_STEP_HEADERS,
  describeKafkaRows,
  describeStepRows,
  type StepsView,
} from "./steps.ts";

export const LIST_HEADERS = ["name", "namespace", "entry", "image", "ready", "state", "age"];

export function listRow(df: Dataflow, now: Date): string[] {
  return [
    df.metadata?.name ?? "",
    df.metadata?.namespace ?? "",
    df.spec.module,
    shortImage(df.spec.image),
    readyOfDesired(df),
    dataflowState(df),
    age(df.metadata?.creationTimestamp, now),
  ];
}

function recoveryText(df: Dataflow): string {
  const r = df.spec.recovery;
  if (r?.enabled !== true) return "off (state is lost when processes restart)";
  const storage = `${r.storage?.size ?? "1Gi"} volume per process${r.storage?.storageClassName ? ` (class ${r.storage.storageClassName})` : ""}`;
  return `snapshot every ${r.snapshotInterval ?? "10s"}, kept ${r.backupInterval ?? "30s"}, ${storage}, volumes on delete: ${r.retention?.whenDeleted ?? "Retain"}`;
}

function section(title: string, headers: string[], rows: string[][], empty: string): string[] {
  const body = rows.length === 0 ? `  ${empty}` : table(headers, rows).replace(/^/gm, "  ");
  return ["", `${title}:`, body];
}

export function describeText(
  df: Dataflow,
  pods: readonly V1Pod[],
  events: readonly CoreV1Event[],
  now: Date,
  steps?: StepsView,
): string {
  const { metadata = {}, spec, status } = df;
  const fields: [string, string | undefined][] = [
    ["Name", metadata.name],
    ["Namespace", metadata.namespace],
    ["Created", `${age(metadata.creationTimestamp, now)} ago`],
    ["Image", spec.image],
    ["Running image", status?.image !== undefined && status.image !== spec.image ? status.image : undefined],
    ["Entry", spec.module],
    ["Processes", `${spec.processes ?? 1} × ${spec.workersPerProcess ?? 1} worker(s)`],
    ["State", `${spec.state ?? "running"} (${dataflowState(df)}, ${readyOfDesired(df)} ready)`],
    ["Restart nonce", spec.restartNonce === undefined ? undefined : String(spec.restartNonce)],
    ["Recovery", recoveryText(df)],
    [
      "Env",
      spec.env === undefined || spec.env.length === 0
        ? undefined
        : spec.env.map((e) => `${e.name}=${e.value ?? "(from a reference)"}`).join(", "),
    ],
  ];
  const shown = fields.filter((f): f is [string, string] => f[1] !== undefined);
  const width = Math.max(...shown.map(([k]) => k.length)) + 2;
  const conditions = (status?.conditions ?? []).map((c) => [
    c.type,
    c.status,
    c.reason ?? "",
    age(c.lastTransitionTime, now),
    c.message ?? "",
  ]);
  const podRows = pods.map((p) => [
    p.metadata?.name ?? "",
    isPodReady(p) ? "1/1" : "0/1",
    podStatus(p),
    String(podRestarts(p)),
    age(p.metadata?.creationTimestamp, now),
  ]);
  const eventRows = [...events]
    .sort((a, b) => eventTime(a) - eventTime(b))
    .map((e) => [age(new Date(eventTime(e)), now), e.type ?? "", e.reason ?? "", e.message ?? ""]);
  return [
    ...shown.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`),
    ...section(
      "Conditions",
      ["type", "status", "reason", "age", "message"],
      conditions,
      "none reported yet: is the waxflow operator running? (`waxctl install`)",
    ),
    ...(steps === undefined
      ? []
      : section(
          "Steps",
          DESCRIBE_STEP_HEADERS,
          describeStepRows(steps),
          pods.length === 0
            ? "none reported: no process is running"
            : `none reported: no process answered (${steps.pods.map((p) => `${p.pod}: ${p.error ?? "no steps"}`).join("; ")})`,
        )),
    // Only a dataflow with Kafka sources has this section.
    ...(steps === undefined || steps.kafka.partitions.length === 0
      ? []
      : section("Kafka lag", DESCRIBE_KAFKA_HEADERS, describeKafkaRows(steps), "none")),
    ...section("Pods", ["name", "ready", "status", "restarts", "age"], podRows, "none"),
    ...section("Events", ["age", "type", "reason", "message"], eventRows, "none"),
  ].join("\n");
}
