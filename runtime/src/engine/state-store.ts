/**
 * What the engine needs from recovery: resume states, a place for snapshots, and a
 * record of each worker's progress. The SQLite implementation lives in recovery/.
 */
export interface StateStore {
  /** The epoch this execution starts at: 1 on a fresh start. */
  readonly resumeEpoch: number;
  /** The newest snapshot before the resume epoch of every key of `stepId` that `owns` accepts. */
  load(stepId: string, owns: (key: string) => boolean): Iterable<readonly [key: string, state: unknown]>;
  /** Records `state` for (step, key) as of the end of `epoch`; `undefined` deletes the key. */
  write(stepId: string, key: string, epoch: number, state: unknown): void;
  /** Every snapshot of this worker before `frontier` is written; makes them durable. */
  commit(worker: number, frontier: number): void | Promise<void>;
  /**
   * Calls `listener` each time every worker of the cluster has committed a higher
   * frontier: epochs below it are durable everywhere and no resume will run them again.
   */
  onClusterCommit?(listener: (frontier: number) => void): void;
}
