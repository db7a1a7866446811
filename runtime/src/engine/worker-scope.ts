/**
 * Which worker a partition is being built for, for code the engine calls without saying
 * so: `buildPart(stepId, forPart, resumeState)` keeps Bytewax's signature, yet a
 * connector labels a partition's metrics with the worker that reads it. Carried across
 * the build's awaits by AsyncLocalStorage; undefined outside a worker's build.
 */
import { AsyncLocalStorage } from "node:async_hooks";

const building = new AsyncLocalStorage<number>();

export function buildingFor<T>(worker: number, build: () => T): T {
  return building.run(worker, build);
}

export function currentWorker(): number | undefined {
  return building.getStore();
}
