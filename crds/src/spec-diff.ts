// Spec diff classes, as in the Flink operator: the largest class decides what a change does.
// ignore: nothing a process sees (applied in place: state, volume retention, how a roll
// carries state and when it rolls back); scale: only spec.processes; upgrade:
// anything in the pod template. scale and upgrade both replace every process together (a
// worker cluster is fixed-size): the operator rolls, and waxctl asks for --yes first.
import { isDeepStrictEqual } from "node:util";
import type { DataflowSpec } from "./types.gen.ts";

export type DiffClass = "none" | "ignore" | "scale" | "upgrade";

export interface SpecDiff {
  readonly class: DiffClass;
  /** Dotted paths of the fields that changed (`image`, `recovery.snapshotInterval`), sorted. */
  readonly fields: readonly string[];
}

const ORDER: readonly DiffClass[] = ["none", "ignore", "scale", "upgrade"];

/** Fields no process sees: how a roll carries state (upgradeMode) and when it is undone (rollback) steer the operator only. */
const IGNORED = new Set(["state", "upgradeMode", "rollback"]);

export function diffClassOf(path: string): DiffClass {
  if (IGNORED.has(path) || path.startsWith("recovery.retention")) return "ignore";
  if (path === "processes") return "scale";
  return "upgrade";
}

/** Whether a change of this class stops every running process. */
export function replacesProcesses(diff: DiffClass): boolean {
  return ORDER.indexOf(diff) > ORDER.indexOf("ignore");
}

/** As JSON sees a value (what the API server stores): a key whose value is undefined is no key. */
function asStored(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/** The spec's fields, `recovery` one level down (its parts change independently). */
function leaves(spec: DataflowSpec): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(spec)) {
    if (key === "recovery" && value !== null && typeof value === "object") {
      for (const [sub, v] of Object.entries(value)) out.set(`recovery.${sub}`, asStored(v));
    } else {
      out.set(key, asStored(value));
    }
  }
  return out;
}

export function changedSpecFields(before: DataflowSpec, after: DataflowSpec): string[] {
  const a = leaves(before);
  const b = leaves(after);
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => !isDeepStrictEqual(a.get(k), b.get(k))).sort();
}

/** `before` undefined: nothing ran a spec yet, so everything is new. */
export function classifySpecDiff(before: DataflowSpec | undefined, after: DataflowSpec): SpecDiff {
  if (before === undefined) return { class: "upgrade", fields: [] };
  const fields = changedSpecFields(before, after);
  const cls = fields
    .map(diffClassOf)
    .reduce<DiffClass>((m, c) => (ORDER.indexOf(c) > ORDER.indexOf(m) ? c : m), "none");
  return { class: cls, fields };
}
