/**
 * The dataflow's graph as people read it: the steps the user wrote, each with the
 * operator that made it and whether it holds state, the steps they are composed of nested
 * inside them, and the streams between the core steps. `waxflow graph` prints it as
 * Mermaid or DOT; a running process reports the same steps on its API.
 */
import type { Dataflow } from "./dataflow.ts";
import { type CoreStep, inputsOf, outputsOf } from "./graph.ts";

export interface StepNode {
  /** Full id, `flow.step.sub`. */
  readonly id: string;
  /** The id the user gave: the last part of the full id. */
  readonly name: string;
  /** The operator that made it: a core kind (`statefulBatch`) or a composite (`countFinal`). */
  readonly kind: string;
  /** Holds keyed state (snapshotted with recovery): it is or contains a `statefulBatch`. */
  readonly stateful: boolean;
  /** The steps it is composed of; empty for a core step. */
  readonly children: readonly StepNode[];
}

/** A stream from the core step that emits it to one that consumes it. */
export interface StreamEdge {
  readonly from: string;
  readonly to: string;
  /** The producer's output: `down`, or `trues`/`falses` of a branch. */
  readonly port: string;
}

export interface DataflowGraph {
  readonly flowId: string;
  /** The top-level steps, in the order they were added. */
  readonly steps: readonly StepNode[];
  readonly streams: readonly StreamEdge[];
}

interface MutableNode {
  readonly id: string;
  readonly kind: string;
  readonly children: MutableNode[];
}

/** The graph of `flow`: a pure function of its steps. */
export function dataflowGraph(flow: Dataflow): DataflowGraph {
  const roots: MutableNode[] = [];
  const composites = new Map<string, MutableNode>();
  for (const step of flow.steps) {
    // Every prefix of the id below the flow that is a composite step is an enclosing one.
    const parts = step.stepId.split(".");
    let siblings = roots;
    for (let i = 2; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join(".");
      const kind = flow.composites.get(prefix);
      if (kind === undefined) continue;
      let node = composites.get(prefix);
      if (node === undefined) {
        node = { id: prefix, kind, children: [] };
        composites.set(prefix, node);
        siblings.push(node);
      }
      siblings = node.children;
    }
    siblings.push({ id: step.stepId, kind: step.kind, children: [] });
  }
  return { flowId: flow.flowId, steps: roots.map(freeze), streams: streamsOf(flow.steps) };
}

function freeze(node: MutableNode): StepNode {
  const children = node.children.map(freeze);
  return {
    id: node.id,
    name: node.id.slice(node.id.lastIndexOf(".") + 1),
    kind: node.kind,
    stateful: node.kind === "statefulBatch" || children.some((c) => c.stateful),
    children,
  };
}

function streamsOf(steps: readonly CoreStep[]): StreamEdge[] {
  const producers = new Map<string, { step: string; port: string }>();
  for (const step of steps) {
    for (const stream of outputsOf(step)) {
      producers.set(stream, { step: step.stepId, port: stream.slice(step.stepId.length + 1) });
    }
  }
  const edges: StreamEdge[] = [];
  for (const step of steps) {
    for (const stream of inputsOf(step)) {
      const producer = producers.get(stream);
      if (producer !== undefined) edges.push({ from: producer.step, to: step.stepId, port: producer.port });
    }
  }
  return edges;
}

/** Every step of the tree, depth first, in the order added. */
export function allSteps(steps: readonly StepNode[]): StepNode[] {
  return steps.flatMap((s) => [s, ...allSteps(s.children)]);
}

function label(step: StepNode): string {
  return `${step.name} (${step.kind}${step.stateful ? ", stateful" : ""})`;
}

/** Short ids for the diagram languages, which do not accept every character a step id may hold. */
function diagramIds(graph: DataflowGraph): Map<string, string> {
  const ids = new Map<string, string>();
  let nodes = 0;
  let groups = 0;
  for (const step of allSteps(graph.steps)) {
    ids.set(step.id, step.children.length === 0 ? `n${nodes++}` : `g${groups++}`);
  }
  return ids;
}

/** Mermaid text: entities stand for the characters that would end or mark up a label. */
function mermaidText(text: string): string {
  return text.replace(/[#"<>]/g, (c) => `#${c.charCodeAt(0)};`);
}

/** The graph as a Mermaid flowchart; composite steps are subgraphs. */
export function toMermaid(graph: DataflowGraph): string {
  const ids = diagramIds(graph);
  const lines = ["flowchart TD"];
  const emit = (steps: readonly StepNode[], depth: number): void => {
    const indent = "  ".repeat(depth);
    for (const step of steps) {
      const id = ids.get(step.id) as string;
      if (step.children.length === 0) {
        lines.push(`${indent}${id}["${mermaidText(label(step))}"]`);
      } else {
        lines.push(`${indent}subgraph ${id} ["${mermaidText(label(step))}"]`);
        emit(step.children, depth + 1);
        lines.push(`${indent}end`);
      }
    }
  };
  emit(graph.steps, 1);
  for (const { from, to, port } of graph.streams) {
    const arrow = port === "down" ? "-->" : `-- ${port} -->`;
    lines.push(`  ${ids.get(from)} ${arrow} ${ids.get(to)}`);
  }
  return `${lines.join("\n")}\n`;
}

function dotString(text: string): string {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The graph in Graphviz DOT; composite steps are clusters. */
export function toDot(graph: DataflowGraph): string {
  const ids = diagramIds(graph);
  const lines = [`digraph ${dotString(graph.flowId)} {`, "  node [shape=box];"];
  const emit = (steps: readonly StepNode[], depth: number): void => {
    const indent = "  ".repeat(depth);
    for (const step of steps) {
      const id = ids.get(step.id) as string;
      if (step.children.length === 0) {
        lines.push(`${indent}${id} [label=${dotString(label(step))}];`);
      } else {
        lines.push(`${indent}subgraph cluster_${id} {`, `${indent}  label=${dotString(label(step))};`);
        emit(step.children, depth + 1);
        lines.push(`${indent}}`);
      }
    }
  };
  emit(graph.steps, 1);
  for (const { from, to, port } of graph.streams) {
    lines.push(`  ${ids.get(from)} -> ${ids.get(to)}${port === "down" ? "" : ` [label=${dotString(port)}]`};`);
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}
