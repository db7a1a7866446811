import { expect, test } from "vitest";
import {
  apiStatus,
  classifySpecDiff,
  dataflowLabels,
  durationMs,
  isCrdEstablished,
  isPodReady,
  podSelector,
  podSelectorString,
  replacesProcesses,
} from "../src/index.ts";

test("Go durations, as the spec writes them, in milliseconds; anything else is refused with an example", () => {
  expect(durationMs("500ms")).toBe(500);
  expect(durationMs("1m30s")).toBe(90_000);
  expect(durationMs("1.5h")).toBe(5_400_000);
  expect(durationMs("250us")).toBe(0.25);
  for (const bad of ["", "10", "5x", "1m 30s", "-1s", "s"]) {
    expect(() => durationMs(bad)).toThrow(`not a duration: "${bad}" (write it as Go does: 500ms, 30s, 1m30s, 2h)`);
  }
});

test("the selector is a subset of every object's labels, and its string form selects the same pods", () => {
  expect(podSelector("orders")).toEqual({ "app.kubernetes.io/name": "waxflow", "waxflow.io/dataflow": "orders" });
  expect(dataflowLabels("orders", "waxctl")).toMatchObject(podSelector("orders"));
  expect(podSelectorString("orders")).toBe("app.kubernetes.io/name=waxflow,waxflow.io/dataflow=orders");
});

test("Ready and Established only when their condition is True", () => {
  const withCondition = (type: string, status: string) => ({ status: { conditions: [{ type, status }] } });
  expect(isPodReady(withCondition("Ready", "True"))).toBe(true);
  expect(isPodReady(withCondition("Ready", "False"))).toBe(false);
  expect(isPodReady({})).toBe(false);
  expect(isCrdEstablished(withCondition("Established", "True"))).toBe(true);
  expect(isCrdEstablished(withCondition("NamesAccepted", "True"))).toBe(false);
});

test("a spec change is classed by its largest field; keys JSON would drop are no change", () => {
  const spec = { image: "a@sha256:1", module: "flow.js", processes: 2 };
  expect(classifySpecDiff(spec, { ...spec, env: undefined })).toEqual({ class: "none", fields: [] });
  expect(classifySpecDiff(spec, { ...spec, state: "suspended" }).class).toBe("ignore");
  // How a roll carries state, and when it is undone, steer the operator only.
  expect(classifySpecDiff(spec, { ...spec, upgradeMode: "savepoint", rollback: { enabled: true } })).toEqual({
    class: "ignore",
    fields: ["rollback", "upgradeMode"],
  });
  expect(classifySpecDiff(spec, { ...spec, processes: 3 })).toEqual({ class: "scale", fields: ["processes"] });
  expect(classifySpecDiff(spec, { ...spec, processes: 3, image: "b@sha256:2" })).toEqual({
    class: "upgrade",
    fields: ["image", "processes"],
  });
  expect(classifySpecDiff(undefined, spec).class).toBe("upgrade");
  expect(replacesProcesses("ignore")).toBe(false);
  expect(replacesProcesses("scale")).toBe(true);
});

test("a failed API call's status: the server's message from its body, as text or parsed; other errors have none", () => {
  const refused = {
    code: 422,
    message: "HTTP-Code: 422\nMessage: ...",
    body: '{"kind":"Status","message":"spec.x: Invalid"}',
  };
  expect(apiStatus(refused)).toEqual({ code: 422, message: "spec.x: Invalid" });
  expect(apiStatus({ code: 403, body: { message: "forbidden: pods" } })).toEqual({
    code: 403,
    message: "forbidden: pods",
  });
  expect(apiStatus({ code: 502, body: "<html>bad gateway</html>" })).toEqual({
    code: 502,
    message: "<html>bad gateway</html>",
  });
  expect(apiStatus({ code: 500, message: "boom" })).toEqual({ code: 500, message: "boom" });
  expect(apiStatus({ code: 503 })).toEqual({ code: 503, message: "HTTP 503" });
  expect(apiStatus(new Error("ECONNREFUSED"))).toBeUndefined();
  expect(apiStatus(null)).toBeUndefined();
});
