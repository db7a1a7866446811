// Writes the CRD YAML and the TypeScript types generated from schema.ts.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderCrdYaml, renderTypes, TYPES_FILE, YAML_FILE } from "./render.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
writeFileSync(root + YAML_FILE, renderCrdYaml());
writeFileSync(root + TYPES_FILE, await renderTypes());
console.log(`wrote ${YAML_FILE} and ${TYPES_FILE}`);
