/** Why a recovery directory cannot be resumed from; each names what to do. */

export class RecoveryError extends Error {
  override name = "RecoveryError";
}

/** The directory holds no partition files. */
export class NoPartitionsError extends RecoveryError {
  override name = "NoPartitionsError";
}

/** Some of the partitions the directory was initialized with are gone. */
export class MissingPartitionsError extends RecoveryError {
  override name = "MissingPartitionsError";
  readonly missing: readonly number[];

  constructor(message: string, missing: readonly number[]) {
    super(message);
    this.missing = missing;
  }
}

/** Partitions disagree on the latest execution: one was restored from an older copy. */
export class InconsistentPartitionsError extends RecoveryError {
  override name = "InconsistentPartitionsError";
}

/** Partitions from directories initialized with different partition counts. */
export class MixedPartitionCountsError extends RecoveryError {
  override name = "MixedPartitionCountsError";
}

/**
 * A process of the execution to resume from is neither in the cluster nor served by a
 * holder, so the state in its store cannot be reached.
 */
export class MissingProcessStoreError extends RecoveryError {
  override name = "MissingProcessStoreError";
  readonly missing: readonly number[];

  constructor(message: string, missing: readonly number[]) {
    super(message);
    this.missing = missing;
  }
}

/** A process's store is not the one it ran with: its volume was emptied or replaced. */
export class ReplacedProcessStoreError extends RecoveryError {
  override name = "ReplacedProcessStoreError";
  readonly replaced: readonly number[];

  constructor(message: string, replaced: readonly number[]) {
    super(message);
    this.replaced = replaced;
  }
}

/** Another live process holds the recovery directory: two writers would corrupt each other's state. */
export class RecoveryDirectoryInUseError extends RecoveryError {
  override name = "RecoveryDirectoryInUseError";
}

/** The store holds state of steps the dataflow no longer has: resuming would drop it silently. */
export class RemovedStepsError extends RecoveryError {
  override name = "RemovedStepsError";
  readonly steps: readonly string[];

  constructor(message: string, steps: readonly string[]) {
    super(message);
    this.steps = steps;
  }
}
