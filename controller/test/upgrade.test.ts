// Upgrade modes and rollback: the pure planning of reconcile(), fed what the watches (and
// process 0's savepoint API, through the executor) would show.
import type { V1Pod, V1StatefulSet } from "@kubernetes/client-node";
import { type Dataflow, type DataflowSpec, type DataflowStatus, withDefaults } from "@waxflow/crds";
import { describe, expect, test } from "vitest";
import { desiredStatefulSet } from "../src/desired/objects.ts";
import { type Observed, type Plan, reconcile, statusFirst } from "../src/reconcile/reconcile.ts";
import { type SavepointObservation, savepointId } from "../src/reconcile/upgrade.ts";
import { dataflow, IMAGE, now } from "./fixtures.ts";

const RECOVERY = { enabled: true, backup: { bucket: "bkt" } };
const OTHER_IMAGE = `registry.local/flow@sha256:${"b".repeat(64)}`;

function df(spec: Partial<DataflowSpec>, generation: number, status: DataflowStatus = {}): Dataflow {
  const d = dataflow({ processes: 2, recovery: RECOVERY, ...spec });
  return { ...d, metadata: { ...d.metadata, generation }, status };
}

const stsOf = (d: Dataflow, replicas: number, startFrom?: string): V1StatefulSet =>
  desiredStatefulSet(d, withDefaults(d.spec), replicas, startFrom);

/** Pod `wc-<i>` of `d`'s template (with `startFrom`), Running. */
function pod(d: Dataflow, i: number, ready: boolean, startFrom?: string): V1Pod {
  const t = stsOf(d, 1, startFrom).spec?.template;
  return {
    metadata: { name: `wc-${i}`, namespace: "ns1", annotations: t?.metadata?.annotations },
    spec: { containers: t?.spec?.containers ?? [] },
    status: { phase: "Running", conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  };
}

const specText = (d: Dataflow) => JSON.stringify(withDefaults(d.spec));

function statefulSetApplied(plan: Plan): V1StatefulSet | undefined {
  const a = plan.actions.find((x) => x.type === "apply" && x.object.kind === "StatefulSet");
  return a?.type === "apply" ? (a.object as V1StatefulSet) : undefined;
}

const envOf = (sts: V1StatefulSet | undefined, name: string) =>
  sts?.spec?.template.spec?.containers[0]?.env?.find((e) => e.name === name)?.value;

const cond = (plan: Plan, type: string) => plan.status.conditions?.find((c) => c.type === type);

const minutes = (m: number) => new Date(now.getTime() - m * 60_000).toISOString();

/**
 * Generation 1 runs (2 ready pods, stable); generation 2 changes workersPerProcess (no
 * image check needed) under `mode`.
 */
function upgrade(mode: "stateless" | "last-state" | "savepoint", extra: Partial<DataflowSpec> = {}) {
  const old = df({ upgradeMode: mode, ...extra }, 1);
  const status: DataflowStatus = {
    lastReconciledSpec: specText(old),
    lastStableSpec: specText(old),
    lastStableGeneration: 1,
  };
  const next = df({ upgradeMode: mode, workersPerProcess: 2, ...extra }, 2, status);
  const pods = [pod(old, 0, true), pod(old, 1, true)];
  const observed: Observed = { dataflow: next, statefulSet: stsOf(old, 2), pods, claims: [] };
  return { old, next, pods, observed };
}

describe("last-state (the default)", () => {
  test("a roll stops the processes at once and starts the new ones from their volumes: no start-from, no savepoint", () => {
    const { observed } = upgrade("last-state");
    const stop = reconcile(observed, now);
    expect(stop.status.rollout).toMatchObject({ kind: "upgrade", stage: "Stopping", generation: 2 });
    expect(stop.status.rollout?.startFrom).toBeUndefined();
    expect(stop.actions.map((a) => a.type)).not.toContain("triggerSavepoint");
    const sts = statefulSetApplied(stop);
    expect(sts?.spec?.replicas).toBe(0);
    expect(envOf(sts, "WAXFLOW_START_FROM")).toBeUndefined();
    // The roll starts the readiness timer of generation 2.
    expect(stop.status.lastRoll).toEqual({ generation: 2, startedAt: now.toISOString() });
  });

  test("changing upgradeMode or rollback restarts nothing", () => {
    const old = df({}, 1);
    const next = df({ upgradeMode: "stateless", rollback: { enabled: true, readyTimeout: "1m" } }, 2, {
      lastReconciledSpec: specText(old),
    });
    const plan = reconcile(
      { dataflow: next, statefulSet: stsOf(old, 2), pods: [pod(old, 0, true), pod(old, 1, true)], claims: [] },
      now,
    );
    expect(plan.status.rollout).toBeUndefined();
    expect(statefulSetApplied(plan)).toBeUndefined();
    expect(cond(plan, "Ready")?.status).toBe("True");
  });
});

describe("stateless", () => {
  test("a roll that replaces processes starts the new ones from empty state, once: fresh:<generation>", () => {
    const { next } = upgrade("stateless");
    const stop = reconcile(upgrade("stateless").observed, now);
    expect(stop.status.rollout).toMatchObject({ stage: "Stopping", startFrom: "fresh:2" });
    expect(envOf(statefulSetApplied(stop), "WAXFLOW_START_FROM")).toBe("fresh:2");
    // Not committed until the roll is complete: a cancelled roll keeps what runs.
    expect(stop.status.startFrom).toBeUndefined();

    // Old pods gone: Starting applies the new template with it.
    const afterStop = { ...next, status: stop.status };
    const start = reconcile({ dataflow: afterStop, statefulSet: stsOf(next, 0, "fresh:2"), pods: [], claims: [] }, now);
    expect(start.status.rollout?.stage).toBe("Starting");
    const started = statefulSetApplied(start);
    expect(started?.spec?.replicas).toBe(2);
    expect(envOf(started, "WAXFLOW_START_FROM")).toBe("fresh:2");

    // The StatefulSet carries it: the roll is complete, status.startFrom keeps it, and the
    // new pods are what the spec runs (no second roll).
    const running = { ...next, status: start.status };
    const newPods = [pod(next, 0, true, "fresh:2"), pod(next, 1, true, "fresh:2")];
    const done = reconcile(
      { dataflow: running, statefulSet: stsOf(next, 2, "fresh:2"), pods: newPods, claims: [] },
      now,
    );
    expect(done.status.rollout).toBeUndefined();
    expect(done.status.startFrom).toBe("fresh:2");
    const steady = reconcile(
      { dataflow: { ...next, status: done.status }, statefulSet: stsOf(next, 2, "fresh:2"), pods: newPods, claims: [] },
      now,
    );
    expect(steady.status.rollout).toBeUndefined();
    expect(statefulSetApplied(steady)).toBeUndefined();
    expect(cond(steady, "Ready")).toMatchObject({ status: "True", reason: "ProcessesReady" });
    // Ready: generation 2 is the stable spec now.
    expect(steady.status.lastStableGeneration).toBe(2);
    expect(JSON.parse(steady.status.lastStableSpec ?? "{}").workersPerProcess).toBe(2);
  });

  test("a scale-down hands nothing over: the new processes start empty", () => {
    const old = df({ upgradeMode: "stateless", processes: 3 }, 1);
    const next = df({ upgradeMode: "stateless", processes: 1 }, 2, { lastReconciledSpec: specText(old) });
    const pods = [0, 1, 2].map((i) => pod(old, i, true));
    const stop = reconcile({ dataflow: next, statefulSet: stsOf(old, 3), pods, claims: [] }, now);
    expect(stop.status.rollout).toMatchObject({ kind: "scale", stage: "Stopping", startFrom: "fresh:2" });
    const start = reconcile(
      { dataflow: { ...next, status: stop.status }, statefulSet: stsOf(next, 0, "fresh:2"), pods: [], claims: [] },
      now,
    );
    expect(start.status.rollout?.stage).toBe("Starting");
    expect(statefulSetApplied(start)?.spec?.replicas).toBe(1);
  });
});

describe("savepoint", () => {
  const id = savepointId(now, 2);

  /** The pass after the record Savepointing was written, with what process 0 says. */
  function waiting(seen: SavepointObservation | undefined, at = now) {
    const { next, observed } = upgrade("savepoint");
    const begun = reconcile(observed, now);
    const d = { ...next, status: begun.status };
    return reconcile({ ...observed, dataflow: d, ...(seen === undefined ? {} : { savepoint: seen }) }, at);
  }

  test("before anything stops: the record names the savepoint, then it is requested; the pods run on untouched", () => {
    expect(id).toMatch(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
    const { next, observed } = upgrade("savepoint");
    const plan = reconcile(observed, now);
    expect(plan.status.rollout).toMatchObject({ stage: "Savepointing", generation: 2, savepoint: { id } });
    // Write-ahead: the record (with the id) is written before the request is sent.
    expect(statusFirst(next.status, plan)).toBe(true);
    expect(plan.actions).toContainEqual({ type: "triggerSavepoint", id });
    expect(statefulSetApplied(plan)).toBeUndefined();
    expect(plan.actions.map((a) => a.type)).not.toContain("scaleToZero");
    expect(cond(plan, "Progressing")).toMatchObject({ status: "True", reason: "SavepointInProgress" });
    expect(plan.requeueAfterMs).toBeLessThanOrEqual(5_000);
  });

  test("pending: keep waiting, nothing is applied; not known to process 0 (restarted): request it again", () => {
    const pending = waiting({ id, state: "pending", requestedAt: now.toISOString() });
    expect(pending.status.rollout?.stage).toBe("Savepointing");
    expect(cond(pending, "Progressing")).toMatchObject({ status: "True", reason: "SavepointInProgress" });
    expect(statefulSetApplied(pending)).toBeUndefined();
    expect(pending.actions.map((a) => a.type)).not.toContain("triggerSavepoint");
    const absent = waiting({ state: "absent" });
    expect(absent.actions).toContainEqual({ type: "triggerSavepoint", id });
    // An edit while it is pending: the same savepoint serves the newer spec, whose timer starts now.
    const { next, observed } = upgrade("savepoint");
    const begun = reconcile(observed, now);
    const later = new Date(now.getTime() + 60_000);
    const edited = { ...next, metadata: { ...next.metadata, generation: 3 }, status: begun.status };
    const moved = reconcile(
      { ...observed, dataflow: edited, savepoint: { id, state: "pending", requestedAt: "" } },
      later,
    );
    expect(moved.status.rollout).toMatchObject({ stage: "Savepointing", generation: 3, savepoint: { id } });
    expect(moved.status.lastRoll).toEqual({ generation: 3, startedAt: later.toISOString() });
    const unreachable = waiting({ state: "unreachable", error: "connection refused" });
    expect(cond(unreachable, "Progressing")?.message).toContain("connection refused");
    expect(statefulSetApplied(unreachable)).toBeUndefined();
  });

  test("failed: no roll, SavepointFailed with the error line, the running pods untouched, until the spec changes", () => {
    const failed = waiting({
      id,
      state: "failed",
      requestedAt: now.toISOString(),
      error: "bucket bkt: access denied\nstack",
    });
    expect(failed.status.rollout).toMatchObject({
      stage: "Savepointing",
      savepoint: { id, error: "bucket bkt: access denied" },
    });
    expect(cond(failed, "Degraded")).toMatchObject({ status: "True", reason: "SavepointFailed" });
    expect(cond(failed, "Degraded")?.message).toContain("bucket bkt: access denied");
    expect(cond(failed, "Degraded")?.message).not.toContain("stack");
    expect(cond(failed, "Progressing")).toMatchObject({ status: "False", reason: "SavepointFailed" });
    expect(failed.events.map((e) => e.reason)).toContain("SavepointFailed");
    expect(statefulSetApplied(failed)).toBeUndefined();
    expect(failed.actions.filter((a) => a.type !== "apply")).toEqual([]);
    expect(failed.requeueAfterMs).toBe(30_000);

    // Held: the next pass asks nothing and changes nothing.
    const { next, observed } = upgrade("savepoint");
    const held = reconcile({ ...observed, dataflow: { ...next, status: failed.status } }, now);
    expect(held.status.rollout).toEqual(failed.status.rollout);
    expect(held.actions.map((a) => a.type)).not.toContain("triggerSavepoint");
    expect(statefulSetApplied(held)).toBeUndefined();
    expect(held.events.map((e) => e.reason)).not.toContain("SavepointFailed");

    // A newer spec asks again, with a savepoint of its own.
    const later = new Date(now.getTime() + 60_000);
    const edited = { ...next, metadata: { ...next.metadata, generation: 3 }, status: failed.status };
    const again = reconcile({ ...observed, dataflow: edited }, later);
    expect(again.status.rollout).toMatchObject({
      stage: "Savepointing",
      generation: 3,
      savepoint: { id: savepointId(later, 3) },
    });
    expect(again.actions).toContainEqual({ type: "triggerSavepoint", id: savepointId(later, 3) });
  });

  test("held or pending past readyTimeout: a failed savepoint stays held; a pending one rolls back (nothing stopped)", () => {
    const failed = waiting({ id, state: "failed", requestedAt: now.toISOString(), error: "AccessDenied" });
    const { next, observed } = upgrade("savepoint", { rollback: { enabled: true, readyTimeout: "5m" } });
    const late = new Date(now.getTime() + 6 * 60_000);
    const held = reconcile({ ...observed, dataflow: { ...next, status: failed.status } }, late);
    expect(held.status.rolledBack).toBeUndefined();
    expect(cond(held, "Degraded")?.reason).toBe("SavepointFailed");

    const begun = reconcile(observed, now);
    const pending = { id, state: "pending", requestedAt: now.toISOString() } as const;
    const back = reconcile({ ...observed, dataflow: { ...next, status: begun.status }, savepoint: pending }, late);
    expect(back.status.rolledBack?.message).toContain(`savepoint ${id} of the running processes is not complete`);
    // The stable spec is what runs: the roll is dropped, nothing stops.
    expect(back.status.rollout).toBeUndefined();
    expect(statefulSetApplied(back)).toBeUndefined();
    expect(cond(back, "Ready")).toMatchObject({ status: "False", reason: "RolledBack" });
  });

  test("refused by process 0 (no backups): held the same way", () => {
    const refused = waiting({ state: "refused", error: "409: savepoints need spec.recovery.backup (a bucket)" });
    expect(cond(refused, "Degraded")).toMatchObject({ reason: "SavepointFailed" });
    expect(refused.status.rollout?.savepoint?.error).toContain("savepoints need");
  });

  test("complete: the processes stop, and the new ones start from it; status.lastSavepoint", () => {
    const done = waiting({
      id,
      state: "complete",
      requestedAt: now.toISOString(),
      createdAt: now.toISOString(),
      epoch: 42,
    });
    expect(done.status.rollout).toMatchObject({ stage: "Stopping", startFrom: `savepoint:${id}` });
    expect(done.status.lastSavepoint).toEqual({ id, epoch: 42, createdAt: now.toISOString() });
    expect(done.status.lastRoll).toMatchObject({ generation: 2, savepoint: id });
    const sts = statefulSetApplied(done);
    expect(sts?.spec?.replicas).toBe(0);
    expect(envOf(sts, "WAXFLOW_START_FROM")).toBe(`savepoint:${id}`);
    expect(done.events.map((e) => e.reason)).toContain("SavepointTaken");
  });

  test("a scale takes a savepoint too; with no ready process 0 it goes on as last-state", () => {
    const old = df({ upgradeMode: "savepoint" }, 1);
    const next = df({ upgradeMode: "savepoint", processes: 3 }, 2, { lastReconciledSpec: specText(old) });
    const ready = reconcile(
      { dataflow: next, statefulSet: stsOf(old, 2), pods: [pod(old, 0, true), pod(old, 1, true)], claims: [] },
      now,
    );
    expect(ready.status.rollout).toMatchObject({ kind: "scale", stage: "Savepointing" });
    const crashing = reconcile(
      { dataflow: next, statefulSet: stsOf(old, 2), pods: [pod(old, 0, false), pod(old, 1, true)], claims: [] },
      now,
    );
    expect(crashing.status.rollout).toMatchObject({ kind: "scale", stage: "Stopping" });
    expect(crashing.status.rollout?.savepoint).toBeUndefined();
    expect(crashing.events.map((e) => e.reason)).toContain("SavepointSkipped");
  });

  test("the spec goes back while the savepoint is taken: the roll is dropped, nothing stopped", () => {
    const { old, observed } = upgrade("savepoint");
    const begun = reconcile(observed, now);
    const back = df({ upgradeMode: "savepoint" }, 3, begun.status);
    const plan = reconcile(
      { ...observed, dataflow: back, savepoint: { id, state: "pending", requestedAt: now.toISOString() } },
      now,
    );
    expect(plan.status.rollout).toBeUndefined();
    expect(plan.events.map((e) => e.reason)).toContain("RollCancelled");
    expect(statefulSetApplied(plan)).toBeUndefined();
    expect(specText(old)).toBe(specText(back));
  });
});

describe("rollback and the readiness timer", () => {
  /** Generation 2 (a new image) runs after its roll, not ready: crash looping pods. */
  function rolled(
    rollback: DataflowSpec["rollback"],
    startedMinutesAgo: number,
    mode: DataflowSpec["upgradeMode"] = "last-state",
  ) {
    const stable = df({ upgradeMode: mode, rollback }, 1);
    const next = df({ upgradeMode: mode, rollback, image: OTHER_IMAGE }, 2, {
      lastReconciledSpec: specText(df({ upgradeMode: mode, rollback, image: OTHER_IMAGE }, 2)),
      lastStableSpec: specText(stable),
      lastStableGeneration: 1,
      lastRoll: {
        generation: 2,
        startedAt: minutes(startedMinutesAgo),
        ...(mode === "savepoint" ? { savepoint: "sp-before" } : {}),
      },
      ...(mode === "savepoint" ? { startFrom: "savepoint:sp-before" } : {}),
    });
    const startFrom = mode === "savepoint" ? "savepoint:sp-before" : undefined;
    const pods = [pod(next, 0, false, startFrom), pod(next, 1, false, startFrom)];
    const observed: Observed = { dataflow: next, statefulSet: stsOf(next, 2, startFrom), pods, claims: [] };
    return { stable, next, pods, observed };
  }

  test("within readyTimeout: nothing happens, and the timer is looked at again when it runs out", () => {
    const { observed } = rolled({ enabled: true, readyTimeout: "5m" }, 4.5);
    const plan = reconcile(observed, now);
    expect(plan.status.rolledBack).toBeUndefined();
    expect(statefulSetApplied(plan)).toBeUndefined();
    expect(plan.requeueAfterMs).toBeLessThanOrEqual(30_000);
    expect(plan.requeueAfterMs).toBeGreaterThan(0);
  });

  test("past readyTimeout with rollback enabled: the last stable spec is rendered, the CR spec stays", () => {
    const { next, observed } = rolled({ enabled: true, readyTimeout: "5m" }, 6);
    const plan = reconcile(observed, now);
    expect(plan.status.rolledBack).toMatchObject({ generation: 2, toGeneration: 1, at: now.toISOString() });
    expect(plan.status.rolledBack?.message).toContain("0/2 processes ready");
    // A roll to the stable spec's template: the pods of generation 2 stop first.
    expect(plan.status.rollout).toMatchObject({ stage: "Stopping", generation: 2 });
    const sts = statefulSetApplied(plan);
    expect(sts?.spec?.template.spec?.containers[0]?.image).toBe(IMAGE);
    expect(sts?.spec?.replicas).toBe(0);
    expect(plan.events.find((e) => e.reason === "RolledBack")?.type).toBe("Warning");
    expect(cond(plan, "Ready")).toMatchObject({ status: "False", reason: "RolledBack" });
    expect(cond(plan, "Degraded")).toMatchObject({ status: "True", reason: "RolledBack" });
    // No savepoint for a rollback, and the timer is not restarted by it.
    expect(plan.actions.map((a) => a.type)).not.toContain("triggerSavepoint");
    expect(plan.status.lastRoll?.generation).toBe(2);
    expect(next.spec.image).toBe(OTHER_IMAGE);
  });

  test("savepoint mode rolls back from the savepoint taken before the upgrade", () => {
    const { observed } = rolled({ enabled: true, readyTimeout: "5m" }, 6, "savepoint");
    const plan = reconcile(observed, now);
    // A new value: the failed roll's processes already applied sp-before, and must restore it again.
    const again = "savepoint:sp-before@rollback-2";
    expect(plan.status.rolledBack?.startFrom).toBe(again);
    expect(plan.status.rollout).toMatchObject({ stage: "Stopping", startFrom: again });
    expect(envOf(statefulSetApplied(plan), "WAXFLOW_START_FROM")).toBe(again);
  });

  test("rolled back and the stable spec's processes ready: still not Ready (the spec as written does not run)", () => {
    const { stable, next } = rolled({ enabled: true, readyTimeout: "5m" }, 20);
    const status: DataflowStatus = {
      ...next.status,
      lastReconciledSpec: specText(stable),
      rolledBack: {
        generation: 2,
        toGeneration: 1,
        at: minutes(3),
        message: "generation 2 is not Ready 5m after its roll started: crash",
      },
    };
    const pods = [pod(stable, 0, true), pod(stable, 1, true)];
    const plan = reconcile({ dataflow: { ...next, status }, statefulSet: stsOf(stable, 2), pods, claims: [] }, now);
    expect(plan.status.phase).toBe("Running");
    expect(statefulSetApplied(plan)).toBeUndefined();
    expect(cond(plan, "Ready")).toMatchObject({ status: "False", reason: "RolledBack" });
    expect(cond(plan, "Ready")?.message).toContain("2/2 processes ready");
    expect(plan.status.rolledBack?.generation).toBe(2);
    // Generation 2 never became stable.
    expect(plan.status.lastStableGeneration).toBe(1);
    // Not ready either, readyTimeout after the rollback: RollbackFailed.
    const failing = [pod(stable, 0, false), pod(stable, 1, true)];
    const late = { ...status, rolledBack: { ...status.rolledBack, at: minutes(6) } } as DataflowStatus;
    const failed = reconcile(
      { dataflow: { ...next, status: late }, statefulSet: stsOf(stable, 2), pods: failing, claims: [] },
      now,
    );
    expect(cond(failed, "Ready")).toMatchObject({ status: "False", reason: "RollbackFailed" });
    expect(cond(failed, "Degraded")).toMatchObject({ status: "True", reason: "RollbackFailed" });
  });

  test("past readyTimeout without rollback: UpgradeStuck, once, and the pods stay", () => {
    const { next, observed } = rolled({ enabled: false, readyTimeout: "5m" }, 6);
    const plan = reconcile(observed, now);
    expect(plan.status.rolledBack).toBeUndefined();
    expect(statefulSetApplied(plan)).toBeUndefined();
    expect(cond(plan, "Progressing")).toMatchObject({ status: "False", reason: "UpgradeStuck" });
    expect(cond(plan, "Progressing")?.message).toContain("spec.rollback.enabled");
    expect(plan.events.filter((e) => e.reason === "UpgradeStuck")).toHaveLength(1);
    const again = reconcile({ ...observed, dataflow: { ...next, status: plan.status } }, now);
    expect(again.events.map((e) => e.reason)).not.toContain("UpgradeStuck");
    // Rollback enabled but nothing ever became Ready: stuck as well, saying so.
    const { observed: first } = rolled({ enabled: true, readyTimeout: "5m" }, 6);
    const never = {
      ...first.dataflow,
      status: { ...first.dataflow.status, lastStableSpec: undefined, lastStableGeneration: undefined },
    };
    const stuck = reconcile({ ...first, dataflow: never }, now);
    expect(cond(stuck, "Progressing")).toMatchObject({ status: "False", reason: "UpgradeStuck" });
    expect(cond(stuck, "Progressing")?.message).toContain("nothing to roll back to");
  });

  test("the newest spec wins: an edit ends a rollback and a stuck roll, and starts a new roll", () => {
    const { stable, next } = rolled({ enabled: true, readyTimeout: "5m" }, 20);
    const status: DataflowStatus = {
      ...next.status,
      lastReconciledSpec: specText(stable),
      rolledBack: { generation: 2, toGeneration: 1, at: minutes(3), message: "crash" },
    };
    const fixed = df(
      { rollback: { enabled: true, readyTimeout: "5m" }, image: OTHER_IMAGE, workersPerProcess: 4 },
      3,
      status,
    );
    const pods = [pod(stable, 0, true), pod(stable, 1, true)];
    const preflight: V1Pod = {
      metadata: {
        name: "wc-preflight",
        labels: { "waxflow.io/preflight": "true" },
        annotations: stsOf(fixed, 1).spec?.template.metadata?.annotations,
      },
      status: { phase: "Succeeded" },
    };
    const plan = reconcile(
      { dataflow: fixed, statefulSet: stsOf(stable, 2), pods: [...pods, preflight], claims: [] },
      now,
    );
    expect(plan.status.rolledBack).toBeUndefined();
    expect(plan.status.rollout).toMatchObject({ stage: "Stopping", generation: 3 });
    expect(plan.status.lastRoll).toEqual({ generation: 3, startedAt: now.toISOString() });
    expect(statefulSetApplied(plan)?.spec?.template.spec?.containers[0]?.image).toBe(OTHER_IMAGE);

    // A stuck roll (rollback off): an edit is acted on at once, and its timer starts anew.
    const { observed } = rolled({ enabled: false, readyTimeout: "5m" }, 30);
    const stuck = reconcile(observed, now);
    const edited = df(
      { rollback: { enabled: false, readyTimeout: "5m" }, image: OTHER_IMAGE, workersPerProcess: 3 },
      3,
      stuck.status,
    );
    const moved = reconcile({ ...observed, dataflow: edited }, now);
    expect(moved.status.rollout).toMatchObject({ stage: "Stopping", generation: 3 });
    expect(cond(moved, "Progressing")).toMatchObject({ status: "True" });
  });

  test("turning rollback on for a stuck roll (an edit that restarts nothing) rolls it back; the timer is the roll's", () => {
    const { next, observed } = rolled({ enabled: false, readyTimeout: "5m" }, 6);
    const stuck = reconcile(observed, now);
    expect(cond(stuck, "Progressing")?.reason).toBe("UpgradeStuck");
    const enabled = df({ rollback: { enabled: true, readyTimeout: "5m" }, image: OTHER_IMAGE }, 3, stuck.status);
    const plan = reconcile({ ...observed, dataflow: enabled }, now);
    expect(plan.status.rolledBack).toMatchObject({ generation: 3, toGeneration: 1 });
    expect(plan.status.rolledBack?.message).toContain("generation 2 is not Ready 5m after its roll started");
    expect(statefulSetApplied(plan)?.spec?.template.spec?.containers[0]?.image).toBe(IMAGE);
    expect(next.spec.image).toBe(OTHER_IMAGE);
    // Within the timeout, the same edit only waits.
    const { observed: young } = rolled({ enabled: false, readyTimeout: "5m" }, 1);
    const early = df({ rollback: { enabled: true, readyTimeout: "5m" }, image: OTHER_IMAGE }, 3, young.dataflow.status);
    const waiting = reconcile({ ...young, dataflow: early }, now);
    expect(waiting.status.rolledBack).toBeUndefined();
    expect(waiting.requeueAfterMs).toBeLessThanOrEqual(4 * 60_000);
  });

  test("a generation that becomes Ready is recorded as the stable one", () => {
    const d = df({}, 4, { lastReconciledSpec: specText(df({}, 4)), lastStableGeneration: 3, lastStableSpec: "{}" });
    const plan = reconcile(
      { dataflow: d, statefulSet: stsOf(d, 2), pods: [pod(d, 0, true), pod(d, 1, true)], claims: [] },
      now,
    );
    expect(plan.status.lastStableGeneration).toBe(4);
    expect(plan.status.lastStableSpec).toBe(specText(d));
    const notYet = reconcile(
      { dataflow: d, statefulSet: stsOf(d, 2), pods: [pod(d, 0, true), pod(d, 1, false)], claims: [] },
      now,
    );
    expect(notYet.status.lastStableGeneration).toBe(3);
  });
});
