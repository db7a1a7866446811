// What "exactly once" means for examples/running-count.ts, as a pure function of the
// output lines: every sensor's counts are exactly 1..n, each once.

export interface CountsReport {
  /** Sensors whose lines are exactly 1..expected. */
  readonly complete: number;
  /** `sensor: count` pairs written more than once. */
  readonly duplicates: string[];
  /** `sensor: count` pairs missing below the highest count written. */
  readonly gaps: string[];
  /** Lines that are not `sensor,count` of a known sensor. */
  readonly malformed: string[];
  /** Readings counted so far, over all sensors (the highest count of each). */
  readonly counted: number;
}

export function checkCounts(lines: Iterable<string>, expected: ReadonlyMap<string, number>): CountsReport {
  const seen = new Map<string, Map<number, number>>();
  const malformed: string[] = [];
  for (const line of lines) {
    if (line === "") continue;
    const match = /^([^,]+),(\d+)$/.exec(line);
    const sensor = match?.[1];
    if (match === null || sensor === undefined || !expected.has(sensor)) {
      malformed.push(line);
      continue;
    }
    const count = Number(match[2]);
    const times = seen.get(sensor) ?? new Map<number, number>();
    times.set(count, (times.get(count) ?? 0) + 1);
    seen.set(sensor, times);
  }
  const duplicates: string[] = [];
  const gaps: string[] = [];
  let complete = 0;
  let counted = 0;
  for (const [sensor, n] of expected) {
    const times = seen.get(sensor) ?? new Map<number, number>();
    const top = Math.max(0, ...times.keys());
    counted += top;
    for (let c = 1; c <= top; c++) {
      const t = times.get(c) ?? 0;
      if (t === 0) gaps.push(`${sensor}: ${c}`);
      if (t > 1) duplicates.push(`${sensor}: ${c} (${t}x)`);
    }
    if (top > n) duplicates.push(`${sensor}: counted to ${top}, only ${n} readings`);
    if (top === n && times.size === n && [...times.values()].every((t) => t === 1)) complete++;
  }
  return { complete, duplicates, gaps, malformed, counted };
}

export interface ResumedReport {
  /** Per sensor, the count it resumed after: one below the lowest count written (0: from the start). */
  readonly resumedAt: ReadonlyMap<string, number>;
  /** Sensors whose lines are exactly resumedAt+1..expected. */
  readonly complete: number;
  readonly duplicates: string[];
  /** Counts missing between a sensor's lowest and highest count written. */
  readonly gaps: string[];
  readonly malformed: string[];
}

/**
 * Exactly once for a dataflow that started from another's state (a fork from a savepoint):
 * per sensor the counts written are one unbroken run, each once, from where it resumed to
 * the expected total. A sensor with no line yet resumed at nothing known (absent).
 */
export function checkResumedCounts(lines: Iterable<string>, expected: ReadonlyMap<string, number>): ResumedReport {
  const seen = new Map<string, Map<number, number>>();
  const malformed: string[] = [];
  for (const line of lines) {
    const match = /^([^,]+),(\d+)$/.exec(line);
    const sensor = match?.[1];
    if (match === null || sensor === undefined || !expected.has(sensor)) {
      if (line !== "") malformed.push(line);
      continue;
    }
    const times = seen.get(sensor) ?? new Map<number, number>();
    times.set(Number(match[2]), (times.get(Number(match[2])) ?? 0) + 1);
    seen.set(sensor, times);
  }
  const resumedAt = new Map<string, number>();
  const duplicates: string[] = [];
  const gaps: string[] = [];
  let complete = 0;
  for (const [sensor, n] of expected) {
    const times = seen.get(sensor);
    if (times === undefined) continue;
    const low = Math.min(...times.keys());
    const top = Math.max(...times.keys());
    resumedAt.set(sensor, low - 1);
    for (let c = low; c <= top; c++) {
      const t = times.get(c) ?? 0;
      if (t === 0) gaps.push(`${sensor}: ${c}`);
      if (t > 1) duplicates.push(`${sensor}: ${c} (${t}x)`);
    }
    if (top > n) duplicates.push(`${sensor}: counted to ${top}, only ${n} readings`);
    if (top === n && times.size === n - low + 1 && [...times.values()].every((t) => t === 1)) complete++;
  }
  return { resumedAt, complete, duplicates, gaps, malformed };
}

/** `waxctl df deploy` of examples/running-count.ts as `name` in `namespace`, with recovery and 2 s snapshots: what each scenario adds to. */
export function runningCountDeploy(name: string, namespace: string): string[] {
  const flags = ["--name", name, "-n", namespace, "--recovery", "--recovery-snapshot-interval", "2s"];
  return ["df", "deploy", "examples/running-count.ts", ...flags];
}
