/** Keyed state: keyOn + statefulMap keeping a running count per key, 1M items over 10k keys. */
import { Dataflow } from "waxflow";
import * as op from "waxflow/operators";
import { runMain } from "waxflow/testing";
import { type BenchCase, expectEqual } from "../harness.ts";
import { ArraySource, CountingSink } from "../io.ts";

const N = 1_000_000;
const KEYS = 10_000;

interface Click {
  readonly user: string;
  readonly n: number;
}

const produce = (): Click[] => Array.from({ length: N }, (_, n) => ({ user: `u${n % KEYS}`, n }));
const count = (state: number | undefined): readonly [number, number] => {
  const next = (state ?? 0) + 1;
  return [next, next];
};

// Every key gets N / KEYS items, and the last output overall is the last of its key.
const EXPECTED_COUNT = N;
const EXPECTED_LAST_COUNT = N / KEYS;

export const statefulCount: BenchCase = {
  title: "keyOn + statefulMap count, 1M items, 10k keys",
  targets: { minRatio: 0.8 }, // issue 18: keyed statefulMap >= 0.8 of its plain loop
  async prepare() {
    return {
      async engine(): Promise<number> {
        const items = produce();
        const sink = new CountingSink<[string, number]>();
        const flow = new Dataflow("bench_stateful_count");
        const keyed = op.keyOn("key", op.input("inp", flow, new ArraySource(items)), (c) => c.user);
        op.output("out", op.statefulMap("count", keyed, count), sink);
        await runMain(flow);
        expectEqual(
          "stateful-count engine [count, last count]",
          [sink.count, sink.last?.[1]],
          [EXPECTED_COUNT, EXPECTED_LAST_COUNT],
        );
        return items.length;
      },
      loop(probe): number {
        const items = produce();
        const counts = new Map<string, number>();
        const out: Array<[string, number]> = [];
        for (const click of items) {
          const [next, emit] = count(counts.get(click.user));
          counts.set(click.user, next);
          out.push([click.user, emit]);
        }
        probe.sample();
        expectEqual(
          "stateful-count loop [count, last count]",
          [out.length, out.at(-1)?.[1]],
          [EXPECTED_COUNT, EXPECTED_LAST_COUNT],
        );
        return items.length;
      },
    };
  },
};
