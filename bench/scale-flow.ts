/**
 * The scale bench's dataflow as a module, so worker threads can load it, as under
 * `waxflow run -w 2`: BENCH_SCALE_ITEMS items, BENCH_SCALE_WORK rounds of work each. With BENCH_SCALE_REPORT=1 each worker prints
 * its share of the output as a line `{"share":[count,max]}` when its sink closes, from
 * whichever thread it runs in.
 */
import { scaleFlow, Tally } from "./cases/scale.ts";

export function flow() {
  const report = process.env.BENCH_SCALE_REPORT === "1";
  const tally = new Tally(({ count, max }) => {
    if (report) process.stdout.write(`${JSON.stringify({ share: [count, max] })}\n`);
  });
  return scaleFlow(Number(process.env.BENCH_SCALE_ITEMS), tally, Number(process.env.BENCH_SCALE_WORK ?? 0));
}
