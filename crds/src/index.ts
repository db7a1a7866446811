import { customResourceDefinition, specSchema } from "./schema.ts";
import type { DataflowRecovery, DataflowRollback, DataflowSpec, DataflowVolumeRetention } from "./types.gen.ts";

export * from "./api-status.ts";
export * from "./contract.ts";
export * from "./schema.ts";
export * from "./spec-diff.ts";
export * from "./state-token.ts";
export type * from "./types.gen.ts";

/** A spec as the API server stores it: every field that has a default is present. */
export type DefaultedDataflowSpec = DataflowSpec &
  Required<Pick<DataflowSpec, "processes" | "workersPerProcess" | "state" | "upgradeMode">> & {
    rollback: Required<DataflowRollback>;
    recovery: Required<Pick<DataflowRecovery, "enabled" | "snapshotInterval" | "backupInterval">> & {
      storage: { size: string; storageClassName?: string };
      retention: Required<DataflowVolumeRetention>;
    };
  };

interface SchemaNode {
  readonly type?: string;
  readonly default?: unknown;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
}

function defaulted(schema: SchemaNode, value: unknown): unknown {
  const v = value === undefined ? structuredClone(schema.default) : value;
  if (schema.properties === undefined || v === null || typeof v !== "object" || Array.isArray(v)) return v;
  const out: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  for (const [key, sub] of Object.entries(schema.properties)) {
    const d = defaulted(sub, out[key]);
    if (d !== undefined) out[key] = d;
  }
  return out;
}

/**
 * Applies the schema's defaults the way the API server does, so code that reads a spec
 * (from a test, from a dry run, from an older stored object) sees the same values.
 */
export function withDefaults(spec: DataflowSpec): DefaultedDataflowSpec {
  return defaulted(specSchema, spec) as DefaultedDataflowSpec;
}

/** Deep copy without the keys that only steer the type generator. */
function withoutTypeHints(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutTypeHints);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => key !== "tsType")
        .map(([key, v]) => [key, withoutTypeHints(v)]),
    );
  }
  return value;
}

/** The CRD as the API server receives it (what crds/dataflows.waxflow.io.yaml holds). */
export function crdManifest(): { apiVersion: string; kind: string; metadata: { name: string } } & Record<
  string,
  unknown
> {
  return withoutTypeHints(customResourceDefinition) as ReturnType<typeof crdManifest>;
}
