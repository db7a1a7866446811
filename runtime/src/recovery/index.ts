/** Recovery: snapshots of state, source and sink positions in SQLite partitions. */
export type { RecoveryConfig } from "../process/execute.ts";
export {
  InconsistentPartitionsError,
  MissingPartitionsError,
  MissingProcessStoreError,
  MixedPartitionCountsError,
  NoPartitionsError,
  RecoveryDirectoryInUseError,
  RecoveryError,
  RemovedStepsError,
  ReplacedProcessStoreError,
} from "./errors.ts";
export { initRecoveryDirectory, partitionFile, RecoveryStore } from "./store.ts";
