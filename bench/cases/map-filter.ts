/** Stateless throughput: map then filter over 1M numbers. */
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { runMain } from "waxflow/testing";
import { type BenchCase, expectEqual } from "../harness.ts";
import { ArraySource, CountingSink } from "../io.ts";

const N = 1_000_000;

const produce = (): number[] => Array.from({ length: N }, (_, i) => i);
const mapper = (x: number): number => x * 3 + 1;
const keep = (x: number): boolean => x % 5 !== 0;

// mapper(i) % 5 === 0 exactly when i % 5 === 3, so one in five items is dropped.
const EXPECTED_COUNT = N - N / 5;
const EXPECTED_LAST = mapper(N - 1);

export const mapFilter: BenchCase = {
  title: "map + filter, 1M items",
  targets: { minRatio: 0.2 },
  async prepare() {
    return {
      async engine(): Promise<number> {
        const items = produce();
        const sink = new CountingSink<number>();
        const flow = new Dataflow("bench_map_filter");
        const mapped = op.map("map", op.input("inp", flow, new ArraySource(items)), mapper);
        op.output("out", op.filter("filter", mapped, keep), sink);
        await runMain(flow);
        expectEqual("map-filter engine [count, last]", [sink.count, sink.last], [EXPECTED_COUNT, EXPECTED_LAST]);
        return items.length;
      },
      loop(probe): number {
        const items = produce();
        const out: number[] = [];
        for (const item of items) {
          const y = mapper(item);
          if (keep(y)) out.push(y);
        }
        probe.sample();
        expectEqual("map-filter loop [count, last]", [out.length, out.at(-1)], [EXPECTED_COUNT, EXPECTED_LAST]);
        return items.length;
      },
    };
  },
};
