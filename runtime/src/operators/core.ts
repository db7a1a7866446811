/**
 * The core primitives: the only operators the engine knows. Everything in
 * `waxflow/operators` is composed of these eight.
 */
import { commonScope, type Dataflow, type KeyedStream, type Scope, Stream } from "../dataflow.ts";
import { BuildError } from "../errors.ts";
import type { CoreStep, InPlaceLogic, Inspector, StatefulBatchLogic, StatefulBatchStep } from "../graph.ts";
import type { Source } from "../inputs.ts";
import type { DynamicSink, FixedPartitionedSink } from "../outputs.ts";
import { formatInspect } from "./format.ts";

function add(scope: Scope, stepId: string, make: (fullId: string) => CoreStep): string {
  const fullId = scope.flow.addStepId(scope.id, stepId);
  scope.flow.steps.push(make(fullId));
  return fullId;
}

function requireFunction(stepId: string, value: unknown, what: string): void {
  if (typeof value !== "function") {
    throw new BuildError(`step ${JSON.stringify(stepId)}: ${what} must be a function, got ${typeof value}`);
  }
}

/** Reads items from `source` into the dataflow. */
export function input<X>(stepId: string, flow: Dataflow, source: Source<X>): Stream<X> {
  const scope = flow.scope;
  if (source === null || typeof source !== "object") {
    throw new BuildError(`step ${JSON.stringify(stepId)}: source must be a source object, got ${typeof source}`);
  }
  const id = add(scope, stepId, (fullId) => ({
    kind: "input",
    stepId: fullId,
    source: source as Source<unknown>,
    down: `${fullId}.down`,
  }));
  return new Stream<X>(`${id}.down`, scope);
}

/** Writes `[key, value]` items to a partitioned sink, or any items to a dynamic sink. */
export function output<V>(stepId: string, up: KeyedStream<V>, sink: FixedPartitionedSink<V, unknown>): void;
export function output<X>(stepId: string, up: Stream<X>, sink: DynamicSink<X>): void;
export function output<X>(
  stepId: string,
  up: Stream<X>,
  sink: DynamicSink<X> | FixedPartitionedSink<unknown, unknown>,
): void {
  const scope = commonScope([up], stepId);
  if (sink === null || typeof sink !== "object") {
    throw new BuildError(`step ${JSON.stringify(stepId)}: sink must be a sink object, got ${typeof sink}`);
  }
  add(scope, stepId, (fullId) => ({
    kind: "output",
    stepId: fullId,
    up: up.streamId,
    sink: sink as DynamicSink<unknown>,
  }));
}

/** Transforms whole batches; batch sizes are not deterministic. */
export function flatMapBatch<X, Y>(stepId: string, up: Stream<X>, mapper: (batch: X[]) => Iterable<Y>): Stream<Y> {
  const scope = commonScope([up], stepId);
  requireFunction(stepId, mapper, "mapper");
  const id = add(scope, stepId, (fullId) => ({
    kind: "flatMapBatch",
    stepId: fullId,
    up: up.streamId,
    down: `${fullId}.down`,
    mapper: mapper as (batch: unknown[]) => Iterable<unknown>,
    ...(scope.pure === true ? { pure: true } : {}),
  }));
  return new Stream<Y>(`${id}.down`, scope);
}

export interface BranchOut<T, F> {
  readonly trues: Stream<T>;
  readonly falses: Stream<F>;
}

/** Splits a stream in two by a predicate, which must return a boolean. */
export function branch<X, Y extends X>(
  stepId: string,
  up: Stream<X>,
  predicate: (item: X) => item is Y,
): BranchOut<Y, Exclude<X, Y>>;
export function branch<X>(stepId: string, up: Stream<X>, predicate: (item: X) => boolean): BranchOut<X, X>;
export function branch<X>(stepId: string, up: Stream<X>, predicate: (item: X) => boolean): BranchOut<X, X> {
  const scope = commonScope([up], stepId);
  requireFunction(stepId, predicate, "predicate");
  const id = add(scope, stepId, (fullId) => ({
    kind: "branch",
    stepId: fullId,
    up: up.streamId,
    trues: `${fullId}.trues`,
    falses: `${fullId}.falses`,
    predicate: predicate as (item: unknown) => unknown,
  }));
  return { trues: new Stream<X>(`${id}.trues`, scope), falses: new Stream<X>(`${id}.falses`, scope) };
}

/** Calls `inspector(stepId, item, epoch, worker)` for each item and passes it on. */
export function inspectDebug<X>(stepId: string, up: Stream<X>, inspector: Inspector<X> = defaultInspector): Stream<X> {
  const scope = commonScope([up], stepId);
  requireFunction(stepId, inspector, "inspector");
  const id = add(scope, stepId, (fullId) => ({
    kind: "inspectDebug",
    stepId: fullId,
    up: up.streamId,
    down: `${fullId}.down`,
    inspector: inspector as Inspector<unknown>,
  }));
  return new Stream<X>(`${id}.down`, scope);
}

function defaultInspector(stepId: string, item: unknown, epoch: number, worker: number): void {
  process.stdout.write(`${stepId} W${worker} @${epoch}: ${formatInspect(item)}\n`);
}

/**
 * Combines streams into one. Within one activation the first upstream's items come
 * first, then the second's, in argument order (as Bytewax); across activations items
 * interleave as they arrive.
 */
export function merge<X>(stepId: string, ...ups: Stream<X>[]): Stream<X> {
  const scope = commonScope(ups, stepId);
  const id = add(scope, stepId, (fullId) => ({
    kind: "merge",
    stepId: fullId,
    ups: ups.map((u) => u.streamId),
    down: `${fullId}.down`,
  }));
  return new Stream<X>(`${id}.down`, scope);
}

/** Spreads items evenly over all workers. */
export function redistribute<X>(stepId: string, up: Stream<X>): Stream<X> {
  const scope = commonScope([up], stepId);
  const id = add(scope, stepId, (fullId) => ({
    kind: "redistribute",
    stepId: fullId,
    up: up.streamId,
    down: `${fullId}.down`,
  }));
  return new Stream<X>(`${id}.down`, scope);
}

/**
 * The stateful primitive: items are routed to the worker owning their key, and each
 * key has its own logic built from its resume state (see `StatefulBatchLogic`).
 */
export function statefulBatch<V, W, S>(
  stepId: string,
  up: KeyedStream<V>,
  builder: (resumeState: NoInfer<S> | undefined) => StatefulBatchLogic<V, W, S>,
  /** For the metrics of a windowed step: the watermark of one key's logic. */
  watermarkOf?: (logic: StatefulBatchLogic<V, W, S>) => number,
): KeyedStream<W> {
  const watermark = watermarkOf as StatefulBatchStep["watermarkOf"];
  return addStatefulBatch(stepId, up, builder, watermark === undefined ? {} : { watermarkOf: watermark });
}

/** `statefulBatch` whose logics also take a key's values in place (InPlaceLogic): statefulMap's. */
export function statefulBatchInPlace<V, W, S>(
  stepId: string,
  up: KeyedStream<V>,
  builder: (resumeState: NoInfer<S> | undefined) => StatefulBatchLogic<V, W, S> & InPlaceLogic,
): KeyedStream<W> {
  return addStatefulBatch(stepId, up, builder, { inPlace: true });
}

function addStatefulBatch<V, W, S>(
  stepId: string,
  up: KeyedStream<V>,
  builder: (resumeState: NoInfer<S> | undefined) => StatefulBatchLogic<V, W, S>,
  extras: Pick<StatefulBatchStep, "watermarkOf" | "inPlace">,
): KeyedStream<W> {
  const scope = commonScope([up], stepId);
  requireFunction(stepId, builder, "builder");
  const id = add(scope, stepId, (fullId) => ({
    kind: "statefulBatch",
    stepId: fullId,
    up: up.streamId,
    down: `${fullId}.down`,
    builder: builder as StatefulBatchStep["builder"],
    ...extras,
  }));
  return new Stream<[string, W]>(`${id}.down`, scope);
}
