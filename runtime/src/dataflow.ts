/**
 * The dataflow graph: a `Dataflow` holds the core steps that operators add, and a
 * `Stream<T>` names the output of one step. Derived operators nest their core steps
 * under their own step id, so full ids read `flow.step.sub`; full ids of stateful
 * steps are the keys of recovery state.
 */
import { BuildError } from "./errors.ts";
import type { CoreStep } from "./graph.ts";

const STEP_ID = /^[^.\s][^.]*$/;

/** Rejects ids that cannot be nested: empty, containing a period, or starting with space. */
export function validateStepId(id: string, what = "step id"): void {
  if (typeof id !== "string" || !STEP_ID.test(id)) {
    throw new BuildError(`invalid ${what} ${JSON.stringify(id)}: ids must be non-empty and contain no periods`);
  }
}

export class Dataflow {
  readonly flowId: string;
  /** Core steps in the order they were added (a topological order by construction). */
  readonly steps: CoreStep[] = [];
  readonly #children = new Map<string, Set<string>>();
  /** Steps composed of others (`nest`), by full id, with the operator that made them. */
  readonly #composites = new Map<string, string>();

  constructor(flowId: string) {
    validateStepId(flowId, "dataflow id");
    this.flowId = flowId;
  }

  /** Registers `stepId` under `parentId` and returns its full id. */
  addStepId(parentId: string, stepId: string): string {
    validateStepId(stepId);
    let siblings = this.#children.get(parentId);
    if (siblings === undefined) {
      siblings = new Set();
      this.#children.set(parentId, siblings);
    }
    const fullId = `${parentId}.${stepId}`;
    if (siblings.has(stepId)) {
      throw new BuildError(`duplicate step id ${JSON.stringify(fullId)}: step ids must be unique`);
    }
    siblings.add(stepId);
    return fullId;
  }

  /** Records that `fullId` is a composite step made by the operator `kind` (e.g. `countFinal`). */
  addComposite(fullId: string, kind: string): void {
    this.#composites.set(fullId, kind);
  }

  /** Composite steps by full id, in the order they were added: each holds the steps below its id. */
  get composites(): ReadonlyMap<string, string> {
    return this.#composites;
  }

  /** The root scope, in which `input` steps are added. */
  get scope(): Scope {
    return { flow: this, id: this.flowId };
  }
}

/** Where new steps are added: the dataflow and the full id of the enclosing step. */
export interface Scope {
  readonly flow: Dataflow;
  readonly id: string;
  /** The flatMapBatch steps added here run only the engine's own effect-free code (see `pure`). */
  readonly pure?: boolean;
}

/**
 * `up` as seen by steps of the engine's own that only compute their output (unwrapping a
 * window's events, say): the flatMapBatch steps built on it are marked pure, and the engine
 * does not run one whose output nothing reads. Never for user functions, which may have effects.
 */
export function pure<T>(up: Stream<T>): Stream<T> {
  return up.inScope({ ...up.scope, pure: true });
}

/**
 * A stream of items of type `T`, the output of one step. Streams are values: pass them
 * to operators (`op.map("id", stream, fn)`) or chain with `stream.then(op.map, "id", fn)`.
 */
export class Stream<T> {
  /** Phantom field: makes `Stream<A>` and `Stream<B>` distinct types. Never set. */
  declare readonly __item: T;

  readonly streamId: string;
  readonly scope: Scope;

  constructor(streamId: string, scope: Scope) {
    this.streamId = streamId;
    this.scope = scope;
  }

  /** Applies `op` to this stream: `s.then(op.map, "id", fn)` is `op.map("id", s, fn)`. */
  // biome-ignore lint/suspicious/noThenProperty: the contract's chaining API; streams are never awaited.
  then<A extends unknown[], R>(op: (stepId: string, up: Stream<T>, ...args: A) => R, stepId: string, ...args: A): R {
    if (typeof stepId !== "string") {
      throw new BuildError("a Stream is not a promise: do not await it; use stream.then(op, stepId, ...args)");
    }
    return op(stepId, this, ...args);
  }

  /** The same stream seen from another scope (used when entering and leaving a step). */
  inScope(scope: Scope): Stream<T> {
    return new Stream<T>(this.streamId, scope);
  }
}

/** A stream of `[key, value]` pairs: what stateful operators consume and produce. */
export type KeyedStream<V> = Stream<[string, V]>;

/** Anything an operator can return: a stream, or a record or tuple of them. */
type Streams = Stream<unknown> | readonly Streams[] | { readonly [port: string]: Streams };

function rescope<R>(value: R, scope: Scope): R {
  if (value instanceof Stream) return value.inScope(scope) as R;
  if (Array.isArray(value)) return value.map((v) => rescope(v, scope)) as R;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = rescope(v as Streams, scope);
    return out as R;
  }
  return value;
}

/** The common scope of an operator's upstreams; they must all live in one. */
export function commonScope(ups: readonly Stream<unknown>[], stepId: string): Scope {
  const first = ups[0];
  if (first === undefined) throw new BuildError(`step ${JSON.stringify(stepId)} needs at least one upstream`);
  for (const up of ups) {
    if (!(up instanceof Stream)) {
      throw new BuildError(`step ${JSON.stringify(stepId)}: upstream is not a Stream (got ${describe(up)})`);
    }
    if (up.scope.flow !== first.scope.flow) {
      throw new BuildError(
        `step ${JSON.stringify(stepId)}: stream ${JSON.stringify(up.streamId)} belongs to another dataflow`,
      );
    }
    if (up.scope.id !== first.scope.id) {
      throw new BuildError(
        `step ${JSON.stringify(stepId)}: streams come from different scopes ` +
          `(${JSON.stringify(first.scope.id)} and ${JSON.stringify(up.scope.id)})`,
      );
    }
  }
  return first.scope;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

/**
 * Defines a step that is composed of other steps, made by the operator `kind` (what the
 * dataflow's graph shows). `body` receives its full id and its upstreams re-scoped inside
 * it; the streams it returns are re-scoped back out, so the caller continues in its own scope.
 */
export function nest<U extends readonly Stream<unknown>[], R>(
  kind: string,
  stepId: string,
  ups: U,
  body: (fullId: string, inner: Scope, ...ups: U) => R,
): R {
  const outer = commonScope(ups, stepId);
  const fullId = outer.flow.addStepId(outer.id, stepId);
  outer.flow.addComposite(fullId, kind);
  // A pure scope stays pure inside the steps nested in it.
  const inner: Scope = { ...outer, id: fullId };
  const scoped = ups.map((u) => u.inScope(inner)) as unknown as U;
  return rescope(body(fullId, inner, ...scoped), outer);
}
