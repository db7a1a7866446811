// statefulSetDrift(): what was changed by hand, apart from what the API server defaults.
import type { V1StatefulSet } from "@kubernetes/client-node";
import { expect, test } from "vitest";
import { changedFields, quantityValue, statefulSetDrift } from "../src/reconcile/drift.ts";
import { dataflow, statefulSetOf } from "./fixtures.ts";

const wanted = statefulSetOf(dataflow({ processes: 2, resources: { requests: { cpu: "0.5", memory: "1Gi" } } }), 2);

/** The StatefulSet as the API server hands it back: defaults added, quantities canonical. */
function served(): V1StatefulSet {
  const sts = structuredClone(wanted);
  const container = sts.spec?.template.spec?.containers[0];
  if (container === undefined) throw new Error("no container");
  Object.assign(container, {
    imagePullPolicy: "IfNotPresent",
    terminationMessagePath: "/dev/termination-log",
    resources: { requests: { cpu: "500m", memory: "1Gi" } },
  });
  for (const env of container.env ?? []) if (env.valueFrom?.fieldRef) env.valueFrom.fieldRef.apiVersion = "v1";
  Object.assign(sts.spec?.template.spec ?? {}, { dnsPolicy: "ClusterFirst", restartPolicy: "Always" });
  sts.metadata = { ...sts.metadata, labels: { ...sts.metadata?.labels, "team/owner": "data" } };
  return sts;
}

test("defaults, canonical quantities and labels added by others are no drift", () => {
  expect(statefulSetDrift(served(), wanted)).toEqual([]);
});

test("kubectl set env, set image, a changed label and a changed update strategy are named", () => {
  const sts = served();
  const container = sts.spec?.template.spec?.containers[0];
  container?.env?.push({ name: "FOO", value: "1" });
  if (container) container.image = "other:1";
  sts.metadata = { ...sts.metadata, labels: { ...sts.metadata?.labels, "app.kubernetes.io/instance": "x" } };
  if (sts.spec) sts.spec.updateStrategy = { type: "RollingUpdate" };
  expect(statefulSetDrift(sts, wanted)).toEqual([
    "metadata.labels.app.kubernetes.io/instance",
    "spec.template.spec.containers[waxflow].env[FOO] added",
    "spec.template.spec.containers[waxflow].image",
    "spec.updateStrategy.type",
  ]);
  const removed = served();
  removed.spec?.template.spec?.containers[0]?.env?.splice(0, 1);
  expect(statefulSetDrift(removed, wanted)).toEqual([
    "spec.template.spec.containers[waxflow].env[WAXFLOW_WORKERS_PER_PROCESS] removed",
  ]);
});

test("quantities compare by value; zero values match what the API server omits", () => {
  expect(quantityValue("500m")).toBe(0.5);
  expect(quantityValue("1Gi")).toBe(2 ** 30);
  expect(quantityValue("1e3")).toBe(1000);
  expect(quantityValue("hello")).toBeUndefined();
  expect(changedFields({ cpu: "1000m" }, { cpu: "1" }, "r")).toEqual([]);
  expect(changedFields({ cpu: "2" }, { cpu: "1" }, "r")).toEqual(["r.cpu"]);
  expect(changedFields({ value: "", list: [], flag: false }, {}, "e")).toEqual([]);
  expect(changedFields({ args: ["a", "b"] }, { args: ["a"] }, "c")).toEqual(["c.args"]);
});
