// Spec diff classes, as in the Flink operator: the largest class decides the action.
// ignore: nothing the processes see (applied in place); scale: only spec.processes;
// upgrade: anything in the pod template. scale and upgrade both replace every process
// together, because a worker cluster is fixed-size.
import type { DefaultedDataflowSpec } from "@waxflow/crds";
import { hashOf } from "../desired/objects.ts";

export type DiffClass = "none" | "ignore" | "scale" | "upgrade";

export interface SpecDiff {
  readonly class: DiffClass;
  /** Dotted paths of the fields that changed, for status messages and events. */
  readonly fields: readonly string[];
}

const ORDER: readonly DiffClass[] = ["none", "ignore", "scale", "upgrade"];

function classOf(path: string): DiffClass {
  if (path === "state" || path.startsWith("recovery.retention")) return "ignore";
  if (path === "processes") return "scale";
  return "upgrade";
}

function leaves(spec: DefaultedDataflowSpec): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(spec)) {
    if (key === "recovery") {
      for (const [sub, v] of Object.entries(spec.recovery)) out.set(`recovery.${sub}`, hashOf(v));
    } else {
      out.set(key, hashOf(value));
    }
  }
  return out;
}

export function classifySpecDiff(before: DefaultedDataflowSpec | undefined, after: DefaultedDataflowSpec): SpecDiff {
  if (before === undefined) return { class: "upgrade", fields: [] };
  const a = leaves(before);
  const b = leaves(after);
  const fields = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
  const cls = fields.map(classOf).reduce<DiffClass>((m, c) => (ORDER.indexOf(c) > ORDER.indexOf(m) ? c : m), "none");
  return { class: cls, fields };
}
