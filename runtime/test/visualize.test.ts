import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, test } from "vitest";
import { Dataflow } from "../src/dataflow.ts";
import * as op from "../src/operators/index.ts";
import { TestingSink, TestingSource } from "../src/testing.ts";
import { dataflowGraph, toDot, toMermaid } from "../src/visualize.ts";
import { type Output, output } from "./support/output.ts";

const ROOT = resolve(import.meta.dirname, "../..");

function waxflow(...args: string[]): Promise<Output> {
  return output(
    spawn(process.execPath, ["--conditions=waxflow-source", "runtime/src/cli.ts", ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "" },
    }),
  );
}

describe("waxflow graph prints the examples as Mermaid", { timeout: 30_000 }, () => {
  test("wordcount: countFinal is stateful through its reduceFinal", async () => {
    expect(await waxflow("graph", "examples/wordcount.ts")).toEqual({
      code: 0,
      stderr: "",
      stdout: `flowchart TD
  n0["inp (input)"]
  subgraph g0 ["split (flatMap)"]
    n1["flat_map_batch (flatMapBatch)"]
  end
  subgraph g1 ["count (countFinal, stateful)"]
    subgraph g2 ["key (keyOn)"]
      n2["flat_map_batch (flatMapBatch)"]
    end
    subgraph g3 ["init_count (map)"]
      n3["flat_map_batch (flatMapBatch)"]
    end
    subgraph g4 ["sum (reduceFinal, stateful)"]
      n4["stateful_batch (statefulBatch, stateful)"]
    end
  end
  subgraph g5 ["format (map)"]
    n5["flat_map_batch (flatMapBatch)"]
  end
  n6["out (output)"]
  n0 --> n1
  n1 --> n2
  n2 --> n3
  n3 --> n4
  n4 --> n5
  n5 --> n6
`,
    });
  });

  test("join: two inputs meet in the join's merge", async () => {
    expect(await waxflow("graph", "examples/join.ts", "--format", "mermaid")).toEqual({
      code: 0,
      stderr: "",
      stdout: `flowchart TD
  n0["users (input)"]
  subgraph g0 ["name_by_id (map)"]
    n1["flat_map_batch (flatMapBatch)"]
  end
  n2["emails (input)"]
  subgraph g1 ["email_by_id (map)"]
    n3["flat_map_batch (flatMapBatch)"]
  end
  subgraph g2 ["join (join, stateful)"]
    subgraph g3 ["side_0 (mapValue)"]
      subgraph g4 ["map (map)"]
        n4["flat_map_batch (flatMapBatch)"]
      end
    end
    subgraph g5 ["side_1 (mapValue)"]
      subgraph g6 ["map (map)"]
        n5["flat_map_batch (flatMapBatch)"]
      end
    end
    n6["merge_sides (merge)"]
    n7["join (statefulBatch, stateful)"]
  end
  subgraph g7 ["format (map)"]
    n8["flat_map_batch (flatMapBatch)"]
  end
  n9["out (output)"]
  n0 --> n1
  n2 --> n3
  n1 --> n4
  n3 --> n5
  n4 --> n6
  n5 --> n6
  n6 --> n7
  n7 --> n8
  n8 --> n9
`,
    });
  });

  test("window-average: the window's one stateful step feeds its three unwrapped outputs", async () => {
    expect(await waxflow("graph", "examples/window-average.ts")).toEqual({
      code: 0,
      stderr: "",
      stdout: `flowchart TD
  n0["inp (input)"]
  subgraph g0 ["parse (map)"]
    n1["flat_map_batch (flatMapBatch)"]
  end
  subgraph g1 ["sum (foldWindow, stateful)"]
    subgraph g2 ["window (window, stateful)"]
      n2["stateful_batch (statefulBatch, stateful)"]
      subgraph g3 ["unwrap_down (filterMapValue)"]
        subgraph g4 ["filter_map (filterMap)"]
          n3["flat_map_batch (flatMapBatch)"]
        end
      end
      subgraph g5 ["unwrap_late (filterMapValue)"]
        subgraph g6 ["filter_map (filterMap)"]
          n4["flat_map_batch (flatMapBatch)"]
        end
      end
      subgraph g7 ["unwrap_meta (filterMapValue)"]
        subgraph g8 ["filter_map (filterMap)"]
          n5["flat_map_batch (flatMapBatch)"]
        end
      end
    end
  end
  subgraph g9 ["format (map)"]
    n6["flat_map_batch (flatMapBatch)"]
  end
  n7["out (output)"]
  n0 --> n1
  n1 --> n2
  n2 --> n3
  n2 --> n4
  n2 --> n5
  n3 --> n6
  n6 --> n7
`,
    });
  });
});

test("the README shows the word count's graph as the command prints it", async () => {
  const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
  const block = /```mermaid\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(block).toBe((await waxflow("graph", "examples/wordcount.ts")).stdout);
});

describe("the graph of a dataflow built in the test", () => {
  // A branch's two outputs, a merge, and step ids with characters Mermaid and DOT would misread.
  const flow = new Dataflow("odd");
  const nums = op.input('say "hi"', flow, new TestingSource([1, 2, 3]));
  const { trues, falses } = op.branch("<even>", nums, (n) => n % 2 === 0);
  op.output("out", op.merge("both", trues, falses), new TestingSink<number>([]));

  test("Mermaid: branch ports label their streams; quotes and brackets become entities", () => {
    expect(toMermaid(dataflowGraph(flow))).toBe(`flowchart TD
  n0["say #34;hi#34; (input)"]
  n1["#60;even#62; (branch)"]
  n2["both (merge)"]
  n3["out (output)"]
  n0 --> n1
  n1 -- trues --> n2
  n1 -- falses --> n2
  n2 --> n3
`);
  });

  test("DOT: the same graph, composites as clusters, labels quoted", () => {
    const keyed = new Dataflow("dot");
    const words = op.input("in", keyed, new TestingSource(["a"]));
    op.output(
      "out",
      op.countFinal("count", words, (w) => w),
      new TestingSink<[string, number]>([]),
    );
    expect(toDot(dataflowGraph(keyed))).toBe(`digraph "dot" {
  node [shape=box];
  n0 [label="in (input)"];
  subgraph cluster_g0 {
    label="count (countFinal, stateful)";
    subgraph cluster_g1 {
      label="key (keyOn)";
      n1 [label="flat_map_batch (flatMapBatch)"];
    }
    subgraph cluster_g2 {
      label="init_count (map)";
      n2 [label="flat_map_batch (flatMapBatch)"];
    }
    subgraph cluster_g3 {
      label="sum (reduceFinal, stateful)";
      n3 [label="stateful_batch (statefulBatch, stateful)"];
    }
  }
  n4 [label="out (output)"];
  n0 -> n1;
  n1 -> n2;
  n2 -> n3;
  n3 -> n4;
}
`);
    expect(toDot(dataflowGraph(flow))).toContain('n0 [label="say \\"hi\\" (input)"];');
    expect(toDot(dataflowGraph(flow))).toContain('n1 -> n2 [label="trues"];');
  });
});

describe("waxflow graph refuses bad input in one line", { timeout: 30_000 }, () => {
  test("a file without a Dataflow", async () => {
    const r = await waxflow("graph", "runtime/test/cli-fixtures/no-flow.ts");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^error: runtime\/test\/cli-fixtures\/no-flow\.ts exports no Dataflow as `flow` or default.*\n$/,
    );
  });

  test("a missing file, an unknown format, an unknown flag", async () => {
    const missing = await waxflow("graph", "examples/nope.ts");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error: dataflow module "examples\/nope\.ts" not found .*\n$/);
    const format = await waxflow("graph", "examples/wordcount.ts", "--format", "svg");
    expect(format).toEqual({ code: 2, stdout: "", stderr: 'error: --format must be one of mermaid, dot, got "svg"\n' });
    const flag = await waxflow("graph", "examples/wordcount.ts", "-w", "2");
    expect(flag.code).toBe(2);
    expect(flag.stderr).toBe(
      "error: unknown flag -w; expected `waxflow graph <module>[:name] [--format mermaid|dot]`\n",
    );
  });
});
