import { readFileSync } from "node:fs";
import { type Dataflow, withDefaults } from "@waxflow/crds";
import { expect, test } from "vitest";
import { renderCrdYaml, renderTypes, TYPES_FILE, YAML_FILE } from "../src/render.ts";

const root = new URL("../", import.meta.url);

test("the checked-in CRD YAML is generated from the schema (run `npm run gen -w crds`)", () => {
  expect(readFileSync(new URL(YAML_FILE, root), "utf8")).toBe(renderCrdYaml());
});

test("the checked-in TypeScript types are generated from the schema (run `npm run gen -w crds`)", async () => {
  expect(readFileSync(new URL(TYPES_FILE, root), "utf8")).toBe(await renderTypes());
});

test("the YAML carries no type-generator hints and names the contract's resource", () => {
  const text = renderCrdYaml();
  expect(text).not.toContain("tsType");
  expect(text).toContain("name: dataflows.waxflow.io");
  expect(text).toMatch(/shortNames:\n\s+- df/);
  expect(text).toContain("specReplicasPath: .spec.processes");
});

test("withDefaults fills every defaulted field and keeps what is set", () => {
  const spec: Dataflow["spec"] = { image: `r/a@sha256:${"0".repeat(64)}`, module: "/app/flow.js", processes: 3 };
  const d = withDefaults(spec);
  expect(d.processes).toBe(3);
  expect(d.workersPerProcess).toBe(1);
  expect(d.state).toBe("running");
  expect(d.recovery).toEqual({
    enabled: false,
    snapshotInterval: "10s",
    backupInterval: "30s",
    storage: { size: "1Gi" },
    retention: { whenDeleted: "Retain", whenScaled: "Retain" },
  });
  expect(spec.recovery).toBeUndefined();
});
