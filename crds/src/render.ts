// Renders the generated artifacts from schema.ts. Used by gen.ts and by the staleness test.
import { dump } from "js-yaml";
import { compile, type JSONSchema } from "json-schema-to-typescript";
import { crdManifest } from "./index.ts";
import { openAPIV3Schema } from "./schema.ts";

export const YAML_FILE = "dataflows.waxflow.io.yaml";
export const TYPES_FILE = "src/types.gen.ts";

const GENERATED = "Generated from src/schema.ts by `npm run gen -w crds`. Do not edit.";

export function renderCrdYaml(): string {
  return `# ${GENERATED}\n${dump(crdManifest(), { lineWidth: -1, noRefs: true })}`;
}

export async function renderTypes(): Promise<string> {
  const root = structuredClone(openAPIV3Schema) as unknown as JSONSchema;
  root.title = "Dataflow";
  return compile(root, "Dataflow", {
    additionalProperties: false,
    bannerComment: `// ${GENERATED}\nimport type { V1EnvFromSource, V1EnvVar, V1ObjectMeta, V1PodTemplateSpec, V1ResourceRequirements } from "@kubernetes/client-node";\n`,
    format: false,
    strictIndexSignatures: true,
  });
}
