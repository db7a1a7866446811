import type { DataflowCondition } from "@waxflow/crds";
import { expect, test } from "vitest";
import { condition, STATUS_REFRESH_MS, stamped } from "../src/reconcile/status.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const later = new Date(t0.getTime() + 30_000);

test("a condition keeps its lastTransitionTime while its status holds, even as reason and message change", () => {
  const first = condition(undefined, "Ready", false, "ProcessesNotReady", "0/3 processes ready", 1, t0);
  expect(first).toEqual({
    type: "Ready",
    status: "False",
    reason: "ProcessesNotReady",
    message: "0/3 processes ready",
    lastTransitionTime: t0.toISOString(),
    observedGeneration: 1,
  });
  const same = condition([first], "Ready", false, "RollInProgress", "1/3 processes ready", 2, later);
  expect(same.lastTransitionTime).toBe(t0.toISOString());
  expect(same.observedGeneration).toBe(2);
});

test("a condition's lastTransitionTime moves when its status flips", () => {
  const prev: DataflowCondition[] = [
    { type: "Ready", status: "False", reason: "X", message: "", lastTransitionTime: t0.toISOString() },
    { type: "Degraded", status: "False", reason: "AsExpected", message: "", lastTransitionTime: t0.toISOString() },
  ];
  const flipped = condition(prev, "Ready", true, "ProcessesReady", "3/3 processes ready", 4, later);
  expect(flipped).toMatchObject({ status: "True", lastTransitionTime: later.toISOString(), observedGeneration: 4 });
  // Another type's history does not count.
  expect(condition(prev, "Progressing", true, "Starting", "", 4, later).lastTransitionTime).toBe(later.toISOString());
});

test("lastReconcileTime is kept while nothing changed and refreshed once older than the refresh period", () => {
  const prev = { phase: "Running" as const, lastReconcileTime: t0.toISOString() };
  expect(stamped({ phase: "Running" }, prev, later)).toEqual(prev);
  const due = new Date(t0.getTime() + STATUS_REFRESH_MS);
  expect(stamped({ phase: "Running" }, prev, due).lastReconcileTime).toBe(due.toISOString());
});

test("lastReconcileTime is now whenever the status changes or was never stamped", () => {
  const prev = { phase: "Running" as const, lastReconcileTime: t0.toISOString() };
  expect(stamped({ phase: "Deploying" }, prev, later)).toEqual({
    phase: "Deploying",
    lastReconcileTime: later.toISOString(),
  });
  expect(stamped({ phase: "Running" }, { phase: "Running" }, later).lastReconcileTime).toBe(later.toISOString());
});
