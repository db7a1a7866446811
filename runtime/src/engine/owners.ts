/**
 * Which worker owns each piece of recovered state, computed from the dataflow the way
 * the steps route it while running: keyed state by the key's hash, source and sink
 * positions by the partition's primary worker, a transactional sink's slot by its
 * worker index (slots beyond the worker count go to `slot mod count`, which settles
 * them). A resume sends every snapshot to the process of its owner, so this must agree
 * with ops.ts.
 */
import type { Dataflow } from "../dataflow.ts";
import { StepError } from "../errors.ts";
import { isFixedPartitionedSource } from "../inputs.ts";
import { isFixedPartitionedSink, isTransactionalSink } from "../outputs.ts";
import { assignPartitions, workerForKey } from "./hash.ts";

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
  const keyed = new Set<string>();
  const slotted = new Set<string>();
  const dealt = new Map<string, Map<string, number>>();
  for (const [stepId, names] of partitions) dealt.set(stepId, assignPartitions(names, workerCount));
  for (const step of flow.steps) {
    if (step.kind === "statefulBatch") keyed.add(step.stepId);
    else if (step.kind === "output" && isTransactionalSink(step.sink)) slotted.add(step.stepId);
  }
  return (stepId, key) => {
    if (keyed.has(stepId)) return workerForKey(key, workerCount);
    if (slotted.has(stepId)) return slotOwner(key, workerCount);
    return dealt.get(stepId)?.get(key);
  };
}

/**
 * The steps whose state a recovery store keeps: stateful steps, partitioned sources and
 * sinks, and transactional sinks (their slots' pending transactions).
 */
export function statefulSteps(flow: Dataflow): Set<string> {
  const steps = new Set<string>();
  for (const step of flow.steps) {
    if (
      step.kind === "statefulBatch" ||
      (step.kind === "input" && isFixedPartitionedSource(step.source)) ||
      (step.kind === "output" && (isFixedPartitionedSink(step.sink) || isTransactionalSink(step.sink)))
    ) {
      steps.add(step.stepId);
    }
  }
  return steps;
}
