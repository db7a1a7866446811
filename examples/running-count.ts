/**
 * Running count per sensor: a paced, replayable stream of readings from
 * `READINGS_PARTITIONS` sensor feeds is keyed by sensor, counted with `statefulMap`, and
 * printed as `sensor,count` lines on stdout (so `waxctl df logs` shows them). With
 * recovery on, a killed, suspended or rescaled cluster resumes each count where its last
 * snapshot left it, not at 1.
 *
 *   npm run waxflow -- run examples/running-count.ts -w 2
 *
 * With OUTPUT_DIR set, the lines go to `DirSink` files there instead, exactly once: every
 * sensor's lines are then exactly `1, 2, ..., n` (a lost count is a gap, a replayed one a
 * duplicate), which the kill and rescale tests check.
 *
 * Settings (environment): READINGS_PARTITIONS (4), READINGS_PER_PARTITION (3000),
 * READINGS_BATCH (1) readings every READINGS_INTERVAL_MS (100) per feed, so about five
 * minutes of readings; SENSORS (12), OUTPUT_DIR (unset: stdout), OUTPUT_FILES (6), and
 * READINGS_FOLLOW=true to keep waiting for more readings after the last one, as an
 * unbounded source on Kubernetes does (the pods stay up instead of exiting and being
 * restarted).
 */
import { mkdirSync } from "node:fs";
import { Dataflow } from "waxflow";
import { DirSink } from "waxflow/connectors/files";
import { StdOutSink } from "waxflow/connectors/stdio";
import type { FixedPartitionedSource, StatefulSourcePartition } from "waxflow/inputs";
import * as op from "waxflow/operators";

export interface ReadingsSettings {
  readonly partitions: number;
  readonly perPartition: number;
  readonly batch: number;
  readonly intervalMs: number;
  readonly sensors: number;
  readonly follow: boolean;
}

function whole(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${name} must be a whole number >= ${min}, got "${raw}"`);
  return n;
}

export function settingsFromEnv(): ReadingsSettings {
  return {
    partitions: whole("READINGS_PARTITIONS", 4, 1),
    perPartition: whole("READINGS_PER_PARTITION", 3000, 0),
    batch: whole("READINGS_BATCH", 1, 1),
    intervalMs: whole("READINGS_INTERVAL_MS", 100, 0),
    sensors: whole("SENSORS", 12, 1),
    follow: process.env.READINGS_FOLLOW === "true",
  };
}

/** The variables settingsFromEnv reads back as `settings` (sensors aside): what a deploy passes with -e. */
export function settingsEnv(settings: ReadingsSettings): Record<string, string> {
  return {
    READINGS_PARTITIONS: String(settings.partitions),
    READINGS_PER_PARTITION: String(settings.perPartition),
    READINGS_BATCH: String(settings.batch),
    READINGS_INTERVAL_MS: String(settings.intervalMs),
    READINGS_FOLLOW: String(settings.follow),
  };
}

/** The sensor of reading `offset` of feed `feed`: a pure function, so a replay is identical. */
export function sensorOf(settings: ReadingsSettings, feed: number, offset: number): string {
  return `sensor-${(feed * 7 + offset * 5) % settings.sensors}`;
}

/** How many readings each sensor gets in a complete run: what every count must end at. */
export function expectedCounts(settings: ReadingsSettings): Map<string, number> {
  const counts = new Map<string, number>();
  for (let feed = 0; feed < settings.partitions; feed++) {
    for (let offset = 0; offset < settings.perPartition; offset++) {
      const sensor = sensorOf(settings, feed, offset);
      counts.set(sensor, (counts.get(sensor) ?? 0) + 1);
    }
  }
  return counts;
}

/** One feed: its position is the offset of the next reading, so it resumes on any worker. */
class Feed implements StatefulSourcePartition<string, number> {
  readonly #settings: ReadingsSettings;
  readonly #feed: number;
  #offset: number;
  #due = 0;

  constructor(settings: ReadingsSettings, feed: number, offset: number) {
    this.#settings = settings;
    this.#feed = feed;
    this.#offset = offset;
  }

  nextBatch(): string[] | null {
    const { perPartition, batch, intervalMs, follow } = this.#settings;
    if (this.#offset >= perPartition) {
      if (!follow) return null;
      this.#due = Date.now() + 60_000;
      return [];
    }
    const end = Math.min(perPartition, this.#offset + batch);
    const readings: string[] = [];
    for (; this.#offset < end; this.#offset++) readings.push(sensorOf(this.#settings, this.#feed, this.#offset));
    this.#due = Date.now() + intervalMs;
    return readings;
  }

  nextAwake(): Date {
    return new Date(this.#due);
  }

  snapshot(): number {
    return this.#offset;
  }
}

class Readings implements FixedPartitionedSource<string, number> {
  readonly #settings: ReadingsSettings;

  constructor(settings: ReadingsSettings) {
    this.#settings = settings;
  }

  listParts(): string[] {
    return Array.from({ length: this.#settings.partitions }, (_, i) => `feed-${i}`);
  }

  buildPart(_stepId: string, part: string, resume: number | undefined): Feed {
    return new Feed(this.#settings, Number(part.slice("feed-".length)), resume ?? 0);
  }
}

const settings = settingsFromEnv();
const outputDir = process.env.OUTPUT_DIR;

export const flow = new Dataflow("running-count");
const readings = op.input("readings", flow, new Readings(settings));
const bySensor = op.keyOn("by_sensor", readings, (sensor) => sensor);
const counts = op.statefulMap("count", bySensor, (count: number | undefined) => {
  const next = (count ?? 0) + 1;
  return [next, next] as const;
});
const lines = op.map("format", counts, ([sensor, n]): [string, string] => [sensor, `${sensor},${n}`]);
if (outputDir) {
  mkdirSync(outputDir, { recursive: true });
  op.output("out", lines, new DirSink(outputDir, whole("OUTPUT_FILES", 6, 1)));
} else {
  op.output(
    "out",
    op.map("line", lines, ([, line]) => line),
    new StdOutSink(),
  );
}
