/**
 * Clocks: how a windowing step tells the time of each item and how far time has got
 * (the watermark). A clock's logic lives per key, so every key has its own watermark.
 *
 * Inside the logic, instants are milliseconds since the Unix epoch as numbers, because
 * the watermark must reach -Infinity (nothing seen yet) and +Infinity (upstream ended),
 * which a `Date` cannot hold.
 */
import { BuildError } from "../errors.ts";

/** The per-key logic of a clock. */
export interface ClockLogic<V, S> {
  /** Called once before the items of one activation. */
  beforeBatch(): void;
  /**
   * The item's timestamp; the item may advance the watermark. Returns a number, not a
   * pair with the watermark, because it runs once per item and must not allocate.
   */
  onItem(value: V): number;
  /** The watermark after the items so far; it never goes back. */
  watermark(): number;
  /** The watermark now, when there is no item. */
  onNotify(): number;
  /** The watermark once the upstream has ended. */
  onEof(): number;
  /**
   * The system time (ms since the Unix epoch) at which the watermark reaches `watermark`,
   * or `undefined` if the passing of system time alone never gets it there; it may have
   * passed already. Bytewax's `to_system_utc`. Reads no clock: the windows ask it after every
   * activation of every key, and the answer does not depend on the time it is asked.
   */
  toSystemTime(watermark: number): number | undefined;
  /** State to resume from; structured-cloneable. */
  snapshot(): S;
}

/** A definition of time for windowing; builds one `ClockLogic` per key. */
export interface Clock<V, S = unknown> {
  build(resumeState: S | undefined): ClockLogic<V, S>;
}

/** The current time as milliseconds, never earlier than the last reading. */
class MonotonicNow {
  #last = Number.NEGATIVE_INFINITY;
  private readonly read: () => number;
  constructor(read: () => number) {
    this.read = read;
  }
  /** Reads the time; a clock stepping back (NTP, leap seconds) holds it steady instead. */
  tick(): number {
    const now = this.read();
    if (now > this.#last) this.#last = now;
    return this.#last;
  }
  get last(): number {
    return this.#last;
  }
}

/**
 * Each item's timestamp is the system time it is processed at, and so is the
 * watermark: no item is ever late. When the upstream ends every window closes.
 */
export class SystemClock implements Clock<unknown, null> {
  build(_resumeState?: null): ClockLogic<unknown, null> {
    const now = new MonotonicNow(Date.now);
    now.tick();
    return {
      beforeBatch: () => void now.tick(),
      onItem: () => now.last,
      watermark: () => now.last,
      onNotify: () => now.tick(),
      onEof: () => Number.POSITIVE_INFINITY,
      // The watermark is the system time.
      toSystemTime: (watermark) => (Number.isFinite(watermark) ? watermark : undefined),
      snapshot: () => null,
    };
  }
}

/** What an `EventClock` keeps per key. */
export interface EventClockState {
  /** The largest `timestamp - wait` seen, or -Infinity. */
  readonly watermarkBase: number;
  /** System time at which `watermarkBase` was last raised. */
  readonly systemTimeOfMax: number;
}

export interface EventClockOptions {
  /** The system time; inject a fake to test watermark arithmetic. */
  readonly now?: () => Date;
}

/**
 * Each item's timestamp is `tsGetter(value)`. The watermark is the largest
 * `timestamp - waitForSystemDurationMs` seen so far plus the system time elapsed since
 * it was seen, so it also advances while no items arrive. It starts at -Infinity and
 * is +Infinity once the upstream ends.
 */
export class EventClock<V> implements Clock<V, EventClockState> {
  readonly tsGetter: (value: V) => Date;
  readonly waitForSystemDurationMs: number;
  readonly now: () => Date;
  /** `now` in milliseconds; without an injected `now`, read with no `Date` made per activation. */
  readonly #nowMs: () => number;

  constructor(tsGetter: (value: V) => Date, waitForSystemDurationMs: number, opts: EventClockOptions = {}) {
    if (typeof tsGetter !== "function") throw new BuildError("EventClock tsGetter must be a function");
    if (typeof waitForSystemDurationMs !== "number" || Number.isNaN(waitForSystemDurationMs)) {
      throw new BuildError(`EventClock waitForSystemDurationMs must be a number, got ${waitForSystemDurationMs}`);
    }
    if (waitForSystemDurationMs < 0) {
      throw new BuildError(`EventClock waitForSystemDurationMs must be >= 0, got ${waitForSystemDurationMs}`);
    }
    this.tsGetter = tsGetter;
    this.waitForSystemDurationMs = waitForSystemDurationMs;
    const { now } = opts;
    this.now = now ?? (() => new Date());
    this.#nowMs = now === undefined ? Date.now : () => now().getTime();
  }

  build(resumeState: EventClockState | undefined): ClockLogic<V, EventClockState> {
    return new EventClockLogic(this.tsGetter, this.waitForSystemDurationMs, new MonotonicNow(this.#nowMs), resumeState);
  }
}

/**
 * The per-key logic of an `EventClock`. A class rather than a closure: its instants
 * are doubles, which a closure would box anew on every item that moves them.
 */
class EventClockLogic<V> implements ClockLogic<V, EventClockState> {
  // Declared with a double, not left undefined until the constructor: a field that first
  // holds undefined is stored tagged, so every later write of a double boxes a new
  // heap number (two per item that raises the watermark).
  #base = Number.NEGATIVE_INFINITY;
  #systemTimeOfMax = Number.NEGATIVE_INFINITY;
  private readonly tsGetter: (value: V) => Date;
  private readonly wait: number;
  private readonly now: MonotonicNow;

  constructor(tsGetter: (value: V) => Date, wait: number, now: MonotonicNow, resumeState: EventClockState | undefined) {
    this.tsGetter = tsGetter;
    this.wait = wait;
    this.now = now;
    const start = now.tick();
    this.#base = resumeState?.watermarkBase ?? Number.NEGATIVE_INFINITY;
    this.#systemTimeOfMax = resumeState?.systemTimeOfMax ?? start;
  }

  beforeBatch(): void {
    this.now.tick();
  }

  onItem(value: V): number {
    const ts = timestampOf(this.tsGetter(value));
    const candidate = ts - this.wait;
    if (candidate > this.watermark()) {
      this.#base = candidate;
      this.#systemTimeOfMax = this.now.last;
    }
    return ts;
  }

  watermark(): number {
    return this.#base + (this.now.last - this.#systemTimeOfMax);
  }

  onNotify(): number {
    this.now.tick();
    return this.watermark();
  }

  onEof(): number {
    return Number.POSITIVE_INFINITY;
  }

  /** The watermark is `#base` at `#systemTimeOfMax` and rises with system time from there. */
  toSystemTime(target: number): number | undefined {
    const at = this.#systemTimeOfMax + (target - this.#base);
    return Number.isFinite(at) ? at : undefined;
  }

  snapshot(): EventClockState {
    return { watermarkBase: this.#base, systemTimeOfMax: this.#systemTimeOfMax };
  }
}

function timestampOf(ts: unknown): number {
  const ms = ts instanceof Date ? ts.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new TypeError(`EventClock tsGetter must return a valid Date, got ${String(ts)}`);
  return ms;
}

/** The same clock reading its items through `project` (e.g. to strip a join side tag). */
export function projectClock<U, V, S>(clock: Clock<V, S>, project: (value: U) => V): Clock<U, S> {
  return {
    build(resumeState) {
      const logic = clock.build(resumeState);
      return {
        beforeBatch: () => logic.beforeBatch(),
        onItem: (value) => logic.onItem(project(value)),
        watermark: () => logic.watermark(),
        onNotify: () => logic.onNotify(),
        onEof: () => logic.onEof(),
        toSystemTime: (watermark) => logic.toSystemTime(watermark),
        snapshot: () => logic.snapshot(),
      };
    },
  };
}
