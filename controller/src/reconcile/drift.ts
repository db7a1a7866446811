// What of an owned object was changed behind the operator's back: a pure comparison of
// the fields we set with the live object's. Only our fields count: the API server adds
// defaults (imagePullPolicy, terminationMessagePath, a fieldRef's apiVersion, ...) and
// canonicalises quantities, and neither is a change anyone made.
import type { V1StatefulSet } from "@kubernetes/client-node";

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A zero value the API server omits when it stores an object ("", 0, false, [], {}, null). */
function isEmpty(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    v === "" ||
    v === 0 ||
    v === false ||
    (Array.isArray(v) && v.length === 0) ||
    (isObject(v) && Object.keys(v).length === 0)
  );
}

const SUFFIX: Record<string, number> = {
  "": 1,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A Kubernetes quantity's value ("500m" = 0.5, "1Gi" = 2^30), or undefined if the text is none. */
export function quantityValue(text: string): number | undefined {
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(
    text,
  );
  if (m === null) return undefined;
  const [, number, exponent, suffix = ""] = m;
  return Number(`${number}${exponent ?? ""}`) * (SUFFIX[suffix] ?? 1);
}

function sameScalar(wanted: unknown, live: unknown): boolean {
  if (wanted === live) return true;
  if (typeof wanted === "string" && typeof live === "string") {
    const a = quantityValue(wanted);
    const b = quantityValue(live);
    return a !== undefined && b !== undefined && Math.abs(a - b) <= Math.abs(a) * 1e-12;
  }
  return false;
}

const named = (v: unknown): string | undefined =>
  isObject(v) && typeof v.name === "string" ? v.name : isObject(v) && typeof v.key === "string" ? v.key : undefined;

/**
 * The paths where `live` differs from `wanted` in what `wanted` sets. Keys only `live` has
 * are defaults, not changes; list items with a name (containers, env, volumes) are matched
 * by it, so one added by hand is named (`env[FOO] added`).
 */
export function changedFields(wanted: unknown, live: unknown, path: string): string[] {
  if (isEmpty(wanted) && isEmpty(live)) return [];
  if (isObject(wanted)) {
    if (!isObject(live)) return [path];
    return Object.keys(wanted)
      .sort()
      .flatMap((k) => changedFields(wanted[k], live[k], `${path}.${k}`));
  }
  if (Array.isArray(wanted)) {
    if (!Array.isArray(live)) return [path];
    const names = wanted.map(named);
    if (names.every((n) => n !== undefined) && new Set(names).size === names.length) {
      const liveNames = live.map(named);
      const out: string[] = [];
      for (const [i, name] of names.entries()) {
        const j = liveNames.indexOf(name);
        out.push(...(j < 0 ? [`${path}[${name}] removed`] : changedFields(wanted[i], live[j], `${path}[${name}]`)));
      }
      for (const name of liveNames) if (!names.some((n) => n === name)) out.push(`${path}[${name ?? "?"}] added`);
      return out;
    }
    if (wanted.length !== live.length) return [path];
    return wanted.flatMap((w, i) => changedFields(w, live[i], `${path}[${i}]`));
  }
  return sameScalar(wanted, live) ? [] : [path];
}

/**
 * What of a StatefulSet the operator built was changed outside it, besides replicas
 * (replicasDrift): its labels, pod template (`kubectl set env`, `kubectl set image`) and
 * update strategy. Empty when nothing was.
 */
export function statefulSetDrift(live: V1StatefulSet, wanted: V1StatefulSet): string[] {
  return [
    ...changedFields(wanted.metadata?.labels, live.metadata?.labels, "metadata.labels"),
    ...changedFields(wanted.spec?.template, live.spec?.template, "spec.template"),
    ...changedFields(wanted.spec?.updateStrategy, live.spec?.updateStrategy, "spec.updateStrategy"),
  ];
}
