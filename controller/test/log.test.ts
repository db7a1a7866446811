// The operator's log: the record format, the reconcile decision line, the flags that tune them.
import { expect, test } from "vitest";
import { DEFAULT_API_CLIENTS, desiredNetworkPolicy } from "../src/desired/network-policy.ts";
import { desiredApiService, desiredDisruptionBudget, desiredHeadlessService } from "../src/desired/objects.ts";
import { formatRecord } from "../src/log.ts";
import { parseOptions } from "../src/options.ts";
import { decisionOf } from "../src/reconcile/decision.ts";
import { reconcile } from "../src/reconcile/reconcile.ts";
import { dataflow, now, podOf, statefulSetOf } from "./fixtures.ts";

const fields = { dataflow: "ns1/wc", generation: 3, action: "apply StatefulSet/wc, write status", durationMs: 12 };

test("json: one object per line with time, level and message first", () => {
  expect(formatRecord(now, "info", "reconciled", fields, "json")).toBe(
    '{"time":"2026-11-23T12:00:00.000Z","level":"info","msg":"reconciled","dataflow":"ns1/wc","generation":3,' +
      '"action":"apply StatefulSet/wc, write status","durationMs":12}',
  );
});

test("text: time, padded level, message, then key=value with values that need it quoted", () => {
  expect(formatRecord(now, "warn", "reconciled", { ...fields, reason: undefined, ok: true }, "text")).toBe(
    '2026-11-23T12:00:00.000Z WARN  reconciled dataflow=ns1/wc generation=3 action="apply StatefulSet/wc, write status" durationMs=12 ok=true',
  );
});

test("a reconcile that creates objects is an info decision naming them, the phase and the reason", () => {
  const df = dataflow({ processes: 2 });
  df.metadata = { ...df.metadata, generation: 3 };
  const plan = reconcile({ dataflow: df, statefulSet: statefulSetOf(df, 2), pods: [], claims: [] }, now);
  const decision = decisionOf("ns1/wc", 3, df.status, plan, 12.4);
  expect(decision).toEqual({
    level: "info",
    fields: {
      dataflow: "ns1/wc",
      generation: 3,
      phase: "Pending",
      action:
        "apply NetworkPolicy/wc, apply Service/wc, apply Service/wc-api, apply PodDisruptionBudget/wc, write status",
      reason: "Starting",
      durationMs: 12,
    },
  });
});

test("a reconcile that only looked, or only refreshed the status stamp, is a debug decision", () => {
  const df = dataflow({ processes: 1 });
  const running = {
    dataflow: df,
    statefulSet: statefulSetOf(df, 1),
    pods: [podOf(df, 0, true)],
    claims: [],
    services: [desiredHeadlessService(df), desiredApiService(df)],
    networkPolicy: desiredNetworkPolicy(df, DEFAULT_API_CLIENTS),
    disruptionBudget: desiredDisruptionBudget(df),
  };
  const first = reconcile(running, now);
  const settled = { ...df, status: first.status };
  const again = reconcile({ ...running, dataflow: settled }, new Date(now.getTime() + 61_000));
  expect(again.status.lastReconcileTime).not.toBe(first.status.lastReconcileTime);
  expect(again.actions).toEqual([]);
  expect(decisionOf("ns1/wc", 1, settled.status, reconcile({ ...running, dataflow: settled }, now), 1).level).toBe(
    "debug",
  );
  const decision = decisionOf("ns1/wc", 1, settled.status, again, 1);
  expect(decision.level).toBe("debug");
  expect(decision.fields).toMatchObject({ action: "none", phase: "Running", reason: "ProcessesReady" });
});

test("--log-level and --log-format win over LOG_LEVEL and LOG_FORMAT; defaults info and json", () => {
  expect(parseOptions([], {})).toEqual({ help: false, level: "info", format: "json" });
  expect(parseOptions([], { LOG_LEVEL: "debug", LOG_FORMAT: "text" })).toEqual({
    help: false,
    level: "debug",
    format: "text",
  });
  expect(
    parseOptions(["--log-level", "warn", "--log-format=json"], { LOG_LEVEL: "debug", LOG_FORMAT: "text" }),
  ).toEqual({ help: false, level: "warn", format: "json" });
  expect(parseOptions(["-h"], {})).toEqual({ help: true });
});

test("a wrong flag or variable is one line naming it", () => {
  expect(() => parseOptions(["--log-level", "loud"], {})).toThrow(
    '--log-level must be one of debug, info, warn, error, not "loud"',
  );
  expect(() => parseOptions([], { LOG_FORMAT: "xml" })).toThrow('LOG_FORMAT must be one of text, json, not "xml"');
  expect(() => parseOptions(["--verbose"], {})).toThrow(/Unknown option '--verbose' \(see --help\)/);
});
