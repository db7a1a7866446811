/**
 * Average per user over 5-second tumbling windows of event time: the clock reads each
 * event's own timestamp, so the result does not depend on when the file is read.
 *
 *   npx node --conditions=waxflow-source runtime/src/cli.ts run examples/window-average.ts
 */
import { join } from "node:path";
import { Dataflow } from "waxflow";
import { CSVSource } from "waxflow/connectors/files";
import { StdOutSink } from "waxflow/connectors/stdio";
import * as op from "waxflow/operators";
import { EventClock, foldWindow, TumblingWindower } from "waxflow/windowing";

interface Event {
  readonly time: Date;
  readonly value: number;
}
interface Sum {
  readonly total: number;
  readonly count: number;
}

const WINDOW_MS = 5_000;
const ALIGN_TO = new Date("2024-05-01T00:00:00Z");

export const flow = new Dataflow("window_average");
const rows = op.input("inp", flow, new CSVSource(join(import.meta.dirname, "data", "events.csv")));
const events = op.map("parse", rows, (row): [string, Event] => [
  row.user ?? "",
  { time: new Date(row.time ?? ""), value: Number(row.value) },
]);
// Events may arrive up to a second out of order before a window is closed without them.
const clock = new EventClock((e: Event) => e.time, 1_000);
const sums = foldWindow(
  "sum",
  events,
  clock,
  new TumblingWindower(WINDOW_MS, ALIGN_TO),
  (): Sum => ({ total: 0, count: 0 }),
  (sum, e) => ({ total: sum.total + e.value, count: sum.count + 1 }),
  (a, b) => ({ total: a.total + b.total, count: a.count + b.count }),
);
const averages = op.map("format", sums.down, ([user, [windowId, sum]]) => {
  const start = new Date(ALIGN_TO.getTime() + windowId * WINDOW_MS).toISOString().slice(11, 19);
  return `${user} ${start} average ${sum.total / sum.count}`;
});
op.output("out", averages, new StdOutSink());
