/**
 * Which worker owns each piece of recovered state, computed from the dataflow the way
 * the steps route it while running: keyed state by the key's hash, source and sink
 * positions by the partition's primary worker. A resume sends every snapshot to the
 * process of its owner, so this must agree with ops.ts.
 */
import type { Dataflow } from "../dataflow.ts";
import { StepError } from "../errors.ts";
import { isFixedPartitionedSource } from "../inputs.ts";
import { isFixedPartitionedSink } from "../outputs.ts";
import { assignPartitions, workerForKey } from "./hash.ts";

/** Returns the owner of (step, key) among `workerCount` workers; undefined for state no step reads any more. */
export function stateOwners(flow: Dataflow, workerCount: number): (stepId: string, key: string) => number | undefined {
  const keyed = new Set<string>();
  const partitions = new Map<string, Map<string, number>>();
  const deal = (stepId: string, listParts: () => string[]): void => {
    try {
      partitions.set(stepId, assignPartitions(listParts(), workerCount));
    } catch (err) {
      throw StepError.wrap(stepId, err);
    }
  };
  for (const step of flow.steps) {
    if (step.kind === "statefulBatch") keyed.add(step.stepId);
    else if (step.kind === "input" && isFixedPartitionedSource(step.source)) {
      const source = step.source;
      deal(step.stepId, () => source.listParts());
    } else if (step.kind === "output" && isFixedPartitionedSink(step.sink)) {
      const sink = step.sink;
      deal(step.stepId, () => sink.listParts());
    }
  }
  return (stepId, key) => (keyed.has(stepId) ? workerForKey(key, workerCount) : partitions.get(stepId)?.get(key));
}

/** The steps whose state a recovery store keeps: stateful steps, partitioned sources and sinks. */
export function statefulSteps(flow: Dataflow): Set<string> {
  const steps = new Set<string>();
  for (const step of flow.steps) {
    if (
      step.kind === "statefulBatch" ||
      (step.kind === "input" && isFixedPartitionedSource(step.source)) ||
      (step.kind === "output" && isFixedPartitionedSink(step.sink))
    ) {
      steps.add(step.stepId);
    }
  }
  return steps;
}
