import { readFileSync } from "node:fs";
import { crdManifest, type Dataflow, withDefaults } from "@waxflow/crds";
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

interface SchemaNode {
  readonly description?: string;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
}

/**
 * Paths (as `kubectl explain` spells them) of every field and list item without a
 * description. The API server forbids one on `metadata` and explains it as ObjectMeta.
 */
function undescribed(node: SchemaNode, path: string): string[] {
  if (path === "metadata") return [];
  const own = node.description?.trim() ? [] : [path];
  const fields = Object.entries(node.properties ?? {}).flatMap(([key, sub]) =>
    undescribed(sub, path === "" ? key : `${path}.${key}`),
  );
  const items = node.items === undefined ? [] : undescribed(node.items, `${path}[]`);
  return [...own, ...fields, ...items];
}

test("every field of the CRD has a description, so `kubectl explain` shows none empty", () => {
  const version = (crdManifest().spec as { versions: { schema: { openAPIV3Schema: SchemaNode } }[] }).versions[0];
  expect(undescribed(version?.schema.openAPIV3Schema ?? {}, "")).toEqual([]);
});

test("the description check finds a field without one", () => {
  expect(undescribed({ description: "root", properties: { a: { description: "a" }, b: { items: {} } } }, "")).toEqual([
    "b",
    "b[]",
  ]);
});
