// Writes the CRD YAML and the TypeScript types generated from schema.ts, and the copy of
// the CRD that the operator's Helm chart ships (Helm installs a chart's crds/ verbatim).
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderCrdYaml, renderTypes, TYPES_FILE, YAML_FILE } from "./render.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const chartCrds = fileURLToPath(new URL("../../charts/waxflow-operator/crds/", import.meta.url));
const yaml = renderCrdYaml();
writeFileSync(root + YAML_FILE, yaml);
writeFileSync(chartCrds + YAML_FILE, yaml);
writeFileSync(root + TYPES_FILE, await renderTypes());
console.log(`wrote ${YAML_FILE} (and the chart's copy) and ${TYPES_FILE}`);
