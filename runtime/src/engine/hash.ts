/**
 * The stable hash that routes keys to workers, sink partitions and recovery partitions.
 * It must give the same answer in every process and every version, or resumed state
 * lands on the wrong worker: FNV-1a (32 bit) over the UTF-16 code units of the key.
 */
export function stableHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The worker that owns `key` among `workerCount` workers. */
export function workerForKey(key: string, workerCount: number): number {
  return workerCount === 1 ? 0 : stableHash(key) % workerCount;
}

/**
 * Assigns named partitions to workers so that each has exactly one primary: sorted
 * names dealt round-robin, which is balanced and the same on every worker.
 */
export function assignPartitions(parts: readonly string[], workerCount: number): Map<string, number> {
  const sorted = [...new Set(parts)].sort();
  return new Map(sorted.map((part, i) => [part, i % workerCount]));
}
