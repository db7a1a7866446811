/**
 * Which worker owns each piece of a step's state: the one place routing is decided.
 * Keyed state goes by the key's hash, source and sink positions by the partition's
 * primary worker, a transactional sink's slot by its worker index (slots beyond the
 * worker count go to `slot mod count`, which settles them). The steps route items and
 * load their state with these rules (`keyOwner`, `partitionOwners`, `slotOwner`: ops.ts,
 * worker.ts), and a resume sends every snapshot to the process of the owner the same
 * rules give for its step's kind (`routingOf`, `stateOwners`).
 */
import type { Dataflow } from "../dataflow.ts";
import { StepError } from "../errors.ts";
import type { CoreStep } from "../graph.ts";
import { isFixedPartitionedSource } from "../inputs.ts";
import { isFixedPartitionedSink, isTransactionalSink } from "../outputs.ts";
import { assignPartitions, workerForKey } from "./hash.ts";

/** How a step's state is routed to workers; undefined for a step that keeps none. */
export type Routing = "key" | "partition" | "slot" | undefined;

export function routingOf(step: CoreStep): Routing {
  if (step.kind === "statefulBatch") return "key";
  if (step.kind === "input") return isFixedPartitionedSource(step.source) ? "partition" : undefined;
  if (step.kind !== "output") return undefined;
  // A transactional sink keeps a slot per worker, whether or not it is partitioned too.
  if (isTransactionalSink(step.sink)) return "slot";
  return isFixedPartitionedSink(step.sink) ? "partition" : undefined;
}

/** The worker that owns keyed state, and receives the items, of `key` among `workerCount` workers. */
export function keyOwner(key: string, workerCount: number): number {
  return workerForKey(key, workerCount);
}

/** The worker of each partition among `workerCount`: sorted names dealt round-robin, one primary each. */
export function partitionOwners(names: readonly string[], workerCount: number): Map<string, number> {
  return assignPartitions(names, workerCount);
}

/**
 * The owner among `workerCount` workers of each key of `step`'s state; undefined for a
 * key no worker reads (a partition no longer listed, state of a step that keeps none).
 * `partitions`: the step's partition names, for a partitioned source or sink.
 */
export function stateOwner(
  step: CoreStep,
  workerCount: number,
  partitions?: readonly string[],
): (key: string) => number | undefined {
  switch (routingOf(step)) {
    case "key":
      return (key) => keyOwner(key, workerCount);
    case "slot":
      return (key) => slotOwner(key, workerCount);
    case "partition": {
      const owners = partitionOwners(partitions ?? [], workerCount);
      return (key) => owners.get(key);
    }
    case undefined:
      return () => undefined;
  }
}

/** The partition names of every partitioned source and sink, by step id. */
export type PartitionLists = ReadonlyMap<string, readonly string[]>;

/** Lists the partitions of every partitioned step once: a source may ask a remote system (Kafka's brokers). */
export async function listPartitions(flow: Dataflow): Promise<PartitionLists> {
  const lists = new Map<string, readonly string[]>();
  for (const step of flow.steps) {
    try {
      if (step.kind === "input" && isFixedPartitionedSource(step.source)) {
        lists.set(step.stepId, await step.source.listParts());
      } else if (step.kind === "output" && isFixedPartitionedSink(step.sink)) {
        lists.set(step.stepId, step.sink.listParts());
      }
    } catch (err) {
      throw StepError.wrap(step.stepId, err);
    }
  }
  return lists;
}

/** The state key of a transactional sink's slot `slot`. */
export function slotKey(slot: number): string {
  return `slot-${slot}`;
}

/** The worker that settles the transactions of `slot` among `workerCount` workers. */
export function slotOwner(key: string, workerCount: number): number | undefined {
  const slot = /^slot-(\d+)$/.exec(key);
  return slot === null ? undefined : Number(slot[1]) % workerCount;
}

/** Returns the owner of (step, key) among `workerCount` workers; undefined for state no step reads any more. */
export function stateOwners(
  flow: Dataflow,
  partitions: PartitionLists,
  workerCount: number,
): (stepId: string, key: string) => number | undefined {
  const owners = new Map<string, (key: string) => number | undefined>();
  for (const step of flow.steps) owners.set(step.stepId, stateOwner(step, workerCount, partitions.get(step.stepId)));
  return (stepId, key) => owners.get(stepId)?.(key);
}

/**
 * The steps whose state a recovery store keeps: stateful steps, partitioned sources and
 * sinks, and transactional sinks (their slots' pending transactions).
 */
export function statefulSteps(flow: Dataflow): Set<string> {
  return new Set(flow.steps.flatMap((step) => (routingOf(step) === undefined ? [] : [step.stepId])));
}
