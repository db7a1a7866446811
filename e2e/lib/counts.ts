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
