import { expect, test } from "vitest";
import { FINALIZER } from "../src/desired/objects.ts";
import { actionStage, finalizersAfter, withFinalizer } from "../src/reconcile/finalizer.ts";
import type { Action, Plan } from "../src/reconcile/reconcile.ts";
import { dataflow } from "./fixtures.ts";

test("ours is added after others' finalizers and removed without touching them", () => {
  const df = dataflow({}, { metadata: { name: "wc", namespace: "ns1", uid: "u", finalizers: ["example.com/x"] } });
  expect(finalizersAfter(df, "addFinalizer")).toEqual(["example.com/x", FINALIZER]);
  const added = dataflow({}, { metadata: { name: "wc", namespace: "ns1", uid: "u", finalizers: ["a/b", FINALIZER] } });
  expect(finalizersAfter(added, "removeFinalizer")).toEqual(["a/b"]);
  expect(finalizersAfter(added, "addFinalizer")).toEqual(["a/b", FINALIZER]);
});

test("the finalizer is asked for only with recovery volumes, once", () => {
  const plan: Plan = { status: {}, actions: [], events: [] };
  const observe = (recovery: boolean, finalizers: string[] = []) => ({
    dataflow: dataflow(
      { recovery: { enabled: recovery } },
      { metadata: { name: "wc", namespace: "ns1", uid: "u", finalizers } },
    ),
    statefulSet: undefined,
    pods: [],
    claims: [],
  });
  expect(withFinalizer(plan, observe(false)).actions).toEqual([]);
  expect(withFinalizer(plan, observe(true)).actions).toEqual([{ type: "addFinalizer" }]);
  expect(withFinalizer(plan, observe(true, [FINALIZER])).actions).toEqual([]);
});

test("checks run first, the Secret before the pods that mount it, the finalizer's removal last", () => {
  const actions: Action[] = [
    { type: "removeFinalizer" },
    { type: "apply", object: { apiVersion: "v1", kind: "Service" } },
    { type: "ensureClusterSecret" },
    { type: "check", object: { apiVersion: "apps/v1", kind: "StatefulSet" } },
  ];
  expect([...actions].sort((a, b) => actionStage(a) - actionStage(b)).map((a) => a.type)).toEqual([
    "check",
    "ensureClusterSecret",
    "apply",
    "removeFinalizer",
  ]);
});
