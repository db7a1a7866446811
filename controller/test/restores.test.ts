// What processes restored their recovery stores from, told as events on the Dataflow: the
// pure part (whom to ask, the events and status.restoresReported from the answers, and
// answers of the wrong shape refused).
import type { V1Pod } from "@kubernetes/client-node";
import type { DataflowSpec } from "@waxflow/crds";
import { expect, test } from "vitest";
import { type Observed, reconcile } from "../src/reconcile/reconcile.ts";
import {
  MAX_FELL_BACK_LINES,
  MAX_RESTORE_TEXT,
  podsToAsk,
  RESTORE_ASK_AGAIN_MS,
  restoreReportOf,
} from "../src/reconcile/restores.ts";
import { dataflow, now, podOf, statefulSetOf } from "./fixtures.ts";

const BACKUP: DataflowSpec["recovery"] = { enabled: true, backup: { bucket: "wc-backups" } };
const FELL_BACK =
  "backup set 20261123T115500Z is unusable: wc/sets/20261123T115500Z/process-1/part-0.sqlite3 is truncated or padded " +
  "(100 bytes, the manifest says 4096); falling back to set 20261123T115000Z";

function pod(df: ReturnType<typeof dataflow>, i: number, ready = true): V1Pod {
  const p = podOf(df, i, ready);
  return { ...p, metadata: { ...p.metadata, uid: `pod-uid-${i}` } };
}

function observed(df: ReturnType<typeof dataflow>, pods: V1Pod[], restores?: Observed["restores"]): Observed {
  return {
    dataflow: df,
    statefulSet: statefulSetOf(df, 2),
    pods,
    claims: [],
    ...(restores === undefined ? {} : { restores }),
  };
}

test("only with a bucket to restore from are the Ready pods not asked before asked", () => {
  const plain = dataflow({ processes: 2 });
  expect(podsToAsk(plain, [pod(plain, 0), pod(plain, 1)])).toEqual([]);
  const df = dataflow({ processes: 3, recovery: BACKUP }, { status: { restoresReported: ["pod-uid-0"] } });
  expect(podsToAsk(df, [pod(df, 0), pod(df, 1), pod(df, 2, false)])).toEqual([{ pod: "wc-1", uid: "pod-uid-1" }]);
  const forked = dataflow({
    processes: 1,
    recovery: BACKUP,
    restoreFrom: { savepoint: "sp-1" },
  } as Partial<DataflowSpec>);
  expect(podsToAsk(forked, [pod(forked, 0)])).toEqual([{ pod: "wc-0", uid: "pod-uid-0" }]);
});

test("a fallback is a Warning naming the process and the unusable set, then Restored; the uids are recorded", () => {
  const df = dataflow({ processes: 2, recovery: BACKUP });
  const pods = [pod(df, 0), pod(df, 1)];
  const plan = reconcile(
    observed(df, pods, [
      { pod: "wc-0", uid: "pod-uid-0" },
      {
        pod: "wc-1",
        uid: "pod-uid-1",
        restore: { from: "backup set 20261123T115000Z", epoch: 42, fellBack: [FELL_BACK] },
      },
    ]),
    now,
  );
  const told = plan.events.filter((e) => e.reason === "Restored" || e.reason === "RestoreFellBack");
  expect(told).toEqual([
    { type: "Warning", reason: "RestoreFellBack", message: `process 1: ${FELL_BACK}` },
    {
      type: "Normal",
      reason: "Restored",
      message: "process 1 restored its recovery store from backup set 20261123T115000Z (epoch 42)",
    },
  ]);
  expect(plan.status.restoresReported).toEqual(["pod-uid-0", "pod-uid-1"]);
});

test("restoresReported is kept across passes with nothing new and pruned to the pods that exist", () => {
  const df = dataflow({ processes: 2, recovery: BACKUP }, { status: { restoresReported: ["gone", "pod-uid-0"] } });
  const plan = reconcile(observed(df, [pod(df, 0), pod(df, 1)], [{ pod: "wc-1", uid: "pod-uid-1" }]), now);
  expect(plan.status.restoresReported).toEqual(["pod-uid-0", "pod-uid-1"]);
  expect(plan.events.filter((e) => e.reason === "Restored")).toEqual([]);
  const again = reconcile(observed({ ...df, status: plan.status }, [pod(df, 0), pod(df, 1)]), now);
  expect(again.status.restoresReported).toEqual(["pod-uid-0", "pod-uid-1"]);
  const none = reconcile(observed({ ...df, status: plan.status }, []), now);
  expect(none.status).not.toHaveProperty("restoresReported");
});

test("an answer of the wrong shape tells nothing but counts as asked", () => {
  const long = "x".repeat(MAX_RESTORE_TEXT + 1);
  const refused: unknown[] = [
    "backup set a",
    null,
    [],
    { from: "a rumour", epoch: 1, fellBack: [] },
    { from: `backup set ${long}`, epoch: 1, fellBack: [] },
    { from: "backup set a", epoch: -1, fellBack: [] },
    { from: "backup set a", epoch: 1.5, fellBack: [] },
    { from: "backup set a", epoch: 1, fellBack: "one line" },
    { from: "backup set a", epoch: 1, fellBack: [long] },
    { from: "backup set a", epoch: 1, fellBack: [7] },
    { from: "backup set a", epoch: 1, fellBack: ["backup set b is unusable\nRestored: all is well"] },
    { from: "backup set a", epoch: 1, fellBack: Array(MAX_FELL_BACK_LINES + 1).fill("backup set b is unusable") },
  ];
  for (const restore of refused) expect(restoreReportOf(restore)).toHaveProperty("refused");
  expect(restoreReportOf({ from: "savepoint sp-1", epoch: 0, fellBack: [] })).toEqual({
    from: "savepoint sp-1",
    epoch: 0,
    fellBack: [],
  });
  const df = dataflow({ processes: 2, recovery: BACKUP });
  const plan = reconcile(
    observed(
      df,
      [pod(df, 0), pod(df, 1)],
      refused.map((restore, i) => ({ pod: "wc-1", uid: `pod-uid-${i % 2}`, restore })),
    ),
    now,
  );
  expect(plan.events.filter((e) => e.reason === "Restored" || e.reason === "RestoreFellBack")).toEqual([]);
  expect(plan.status.restoresReported).toEqual(["pod-uid-0", "pod-uid-1"]);
});

test("a pod that gave no answer is not recorded and is asked again within RESTORE_ASK_AGAIN_MS", () => {
  const df = dataflow({ processes: 2, recovery: BACKUP });
  const plan = reconcile(
    { ...observed(df, [pod(df, 0), pod(df, 1)], [{ pod: "wc-0", uid: "pod-uid-0" }]), restoresUnanswered: 1 },
    now,
  );
  expect(plan.status.restoresReported).toEqual(["pod-uid-0"]);
  expect(plan.requeueAfterMs).toBeLessThanOrEqual(RESTORE_ASK_AGAIN_MS);
  const answered = reconcile(observed(df, [pod(df, 0), pod(df, 1)], [{ pod: "wc-0", uid: "pod-uid-0" }]), now);
  expect(answered.requeueAfterMs).toBeGreaterThan(RESTORE_ASK_AGAIN_MS);
});
