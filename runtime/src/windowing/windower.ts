/**
 * Windowers: which windows an item belongs to, and when each window closes. A
 * windower's logic lives per key. Instants are milliseconds since the Unix epoch (see
 * clock.ts); the metadata users see carries `Date`s.
 */
import { BuildError } from "../errors.ts";

/** What a closed window covered. */
export interface WindowMetadata {
  readonly openTime: Date;
  /** Exclusive for sliding and tumbling windows; the last item's time for sessions. */
  readonly closeTime: Date;
  /** Ids of the windows merged into this one before it closed (sessions only). */
  readonly mergedIds: number[];
}

/** A window's bounds as the windower logic keeps them. */
export interface WindowBounds {
  open: number;
  close: number;
  mergedIds: number[];
}

/** The per-key logic of a windower. */
export interface WindowerLogic<S> {
  /** The windows an on-time item at `timestamp` is in; opens them. The caller must not change the array. */
  openFor(timestamp: number): readonly number[];
  /** The windows a late item at `timestamp` would have been in; keeps no state. */
  lateFor(timestamp: number): readonly number[];
  /** Merges since the last call, as `[original, target]`: the original's state goes into the target. */
  merged(): readonly (readonly [original: number, target: number])[];
  /** The windows that close at `watermark`, forgotten once returned, in closing order. */
  closeFor(watermark: number): readonly [number, WindowBounds][];
  /** The watermark at which the next window closes, if any is open. */
  nextClose(): number | undefined;
  /** Whether the key's windower state can be dropped. */
  isEmpty(): boolean;
  /** State to resume from; structured-cloneable. */
  snapshot(): S;
}

/** A kind of window; builds one `WindowerLogic` per key. */
export interface Windower<S = unknown> {
  build(resumeState: S | undefined): WindowerLogic<S>;
}

export function toMetadata(bounds: WindowBounds): WindowMetadata {
  return { openTime: new Date(bounds.open), closeTime: new Date(bounds.close), mergedIds: [...bounds.mergedIds] };
}

// Returned whenever there is nothing to report, so the per-item path allocates nothing.
const NONE: readonly never[] = Object.freeze([]);

function requireDuration(what: string, ms: unknown): number {
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new BuildError(`${what} must be a finite number of milliseconds, got ${String(ms)}`);
  }
  return ms;
}

function requireInstant(what: string, at: unknown): number {
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
    throw new BuildError(`${what} must be a valid Date, got ${String(at)}`);
  }
  return at.getTime();
}

/** What a `SlidingWindower` keeps per key: the ids of its open windows. */
export interface SlidingWindowerState {
  readonly opened: number[];
}

/**
 * Windows of `lengthMs` starting every `offsetMs`, one of them opening at `alignTo`.
 * With `offsetMs < lengthMs` they overlap and an item is in several; windows are
 * `[open, close)` and close once the watermark reaches their close time. Window `n`
 * opens at `alignTo + n * offsetMs`, so ids before `alignTo` are negative.
 */
export class SlidingWindower implements Windower<SlidingWindowerState> {
  readonly lengthMs: number;
  readonly offsetMs: number;
  readonly alignTo: Date;
  readonly #alignMs: number;

  constructor(lengthMs: number, offsetMs: number, alignTo: Date) {
    const length = requireDuration("SlidingWindower lengthMs", lengthMs);
    const offset = requireDuration("SlidingWindower offsetMs", offsetMs);
    const alignMs = requireInstant("SlidingWindower alignTo", alignTo);
    if (length <= 0) throw new BuildError(`SlidingWindower lengthMs must be > 0, got ${length}`);
    if (offset <= 0) throw new BuildError(`SlidingWindower offsetMs must be > 0, got ${offset}`);
    if (offset > length) {
      throw new BuildError(
        `SlidingWindower offsetMs (${offset}) must not be longer than lengthMs (${length}): ` +
          "there would be gaps between windows that lose items",
      );
    }
    this.lengthMs = length;
    this.offsetMs = offset;
    this.alignTo = alignTo;
    this.#alignMs = alignMs;
  }

  /** The first (earliest) window containing `timestamp`. */
  #firstOf(timestamp: number): number {
    return Math.floor((timestamp - this.#alignMs - this.lengthMs) / this.offsetMs) + 1;
  }

  /** The last (latest) window containing `timestamp`. */
  #lastOf(timestamp: number): number {
    return Math.floor((timestamp - this.#alignMs) / this.offsetMs);
  }

  #closeOf(id: number): number {
    return this.#alignMs + id * this.offsetMs + this.lengthMs;
  }

  /** The ids of the windows containing `timestamp`, in increasing order. */
  windowsOf(timestamp: number): number[] {
    const first = this.#firstOf(timestamp);
    const ids = new Array<number>(this.#lastOf(timestamp) - first + 1);
    for (let i = 0; i < ids.length; i++) ids[i] = first + i;
    return ids;
  }

  /** The bounds of window `id`. */
  boundsOf(id: number): WindowBounds {
    const open = this.#alignMs + id * this.offsetMs;
    return { open, close: open + this.lengthMs, mergedIds: [] };
  }

  build(resumeState: SlidingWindowerState | undefined): WindowerLogic<SlidingWindowerState> {
    // Open ids in increasing order, which is also the order they close in.
    const opened = [...new Set(resumeState?.opened)].sort((a, b) => a - b);
    const open = (id: number): void => {
      // Items mostly open the newest window, so search from the end.
      let at = opened.length;
      while (at > 0 && (opened[at - 1] as number) > id) at--;
      if (opened[at - 1] === id) return;
      // push when appending, the usual case: splice would allocate the (empty) array it removed.
      if (at === opened.length) opened.push(id);
      else opened.splice(at, 0, id);
    };
    // A key's consecutive items mostly fall in the same windows, so the last item's
    // ids are handed out again, already open, rather than built and opened per item.
    let current: readonly number[] = NONE;
    return {
      openFor: (timestamp) => {
        const first = this.#firstOf(timestamp);
        const last = this.#lastOf(timestamp);
        if (first !== current[0] || last !== current[current.length - 1]) {
          current = this.windowsOf(timestamp);
          for (const id of current) open(id);
        }
        return current;
      },
      lateFor: (timestamp) => this.windowsOf(timestamp),
      merged: () => NONE,
      closeFor: (watermark) => {
        if (opened.length === 0 || this.#closeOf(opened[0] as number) > watermark) return NONE;
        // Sized before it is filled: a first push would reserve room for 16 windows.
        let count = 1;
        while (count < opened.length && this.#closeOf(opened[count] as number) <= watermark) count++;
        const closed = new Array<[number, WindowBounds]>(count);
        for (let i = 0; i < count; i++) {
          const id = opened.shift() as number;
          closed[i] = [id, this.boundsOf(id)];
        }
        // The next item's windows must be opened again even if they are the same ids.
        current = NONE;
        return closed;
      },
      nextClose: () => (opened.length === 0 ? undefined : this.#closeOf(opened[0] as number)),
      isEmpty: () => opened.length === 0,
      snapshot: () => ({ opened: [...opened] }),
    };
  }
}

/** Non-overlapping windows of `lengthMs`, one of them opening at `alignTo`. */
export class TumblingWindower extends SlidingWindower {
  constructor(lengthMs: number, alignTo: Date) {
    super(lengthMs, lengthMs, alignTo);
  }
}

/** The window id late items get from a `SessionWindower`: there is no session to name. */
export const LATE_SESSION_ID = -1;

/** What a `SessionWindower` keeps per key. */
export interface SessionWindowerState {
  /** The last session id handed out; ids are never reused for a key. */
  readonly maxId: number;
  readonly sessions: [number, WindowBounds][];
  readonly mergeQueue: [number, number][];
}

/**
 * Sessions: an item within `gapMs` of a session joins it (extending it), otherwise it
 * starts a new one. Sessions that come within `gapMs` of each other merge, the later
 * into the earlier. A session closes once the watermark is more than `gapMs` past its
 * last item. Session ids count from 0 per key.
 */
export class SessionWindower implements Windower<SessionWindowerState> {
  readonly gapMs: number;

  constructor(gapMs: number) {
    const gap = requireDuration("SessionWindower gapMs", gapMs);
    if (gap < 0) throw new BuildError(`SessionWindower gapMs must not be negative, got ${gap}`);
    this.gapMs = gap;
  }

  build(resumeState: SessionWindowerState | undefined): WindowerLogic<SessionWindowerState> {
    const gap = this.gapMs;
    let maxId = resumeState?.maxId ?? LATE_SESSION_ID;
    const sessions = new Map<number, WindowBounds>(resumeState?.sessions);
    let mergeQueue: [number, number][] = [...(resumeState?.mergeQueue ?? [])];

    // Merges every pair of sessions that a changed bound brought within the gap.
    const findMerges = () => {
      const byOpen = [...sessions].sort(([ia, a], [ib, b]) => a.open - b.open || ia - ib);
      let [lastId, last] = byOpen[0] as [number, WindowBounds];
      for (const [id, bounds] of byOpen.slice(1)) {
        if (bounds.open - last.close <= gap) {
          last.close = Math.max(last.close, bounds.close);
          last.mergedIds.push(id, ...bounds.mergedIds);
          mergeQueue.push([id, lastId]);
          sessions.delete(id);
        } else {
          [lastId, last] = [id, bounds];
        }
      }
    };

    // As for sliding windows: consecutive items mostly land in the same session.
    let current: readonly number[] = NONE;
    const session = (id: number): readonly number[] => {
      if (current[0] !== id) current = [id];
      return current;
    };

    return {
      openFor: (timestamp) => {
        for (const [id, bounds] of sessions) {
          if (bounds.open <= timestamp && timestamp <= bounds.close) return session(id);
          if (timestamp < bounds.open && bounds.open - timestamp <= gap) {
            bounds.open = timestamp;
            findMerges();
            return session(id);
          }
          if (timestamp > bounds.close && timestamp - bounds.close <= gap) {
            bounds.close = timestamp;
            findMerges();
            return session(id);
          }
        }
        maxId += 1;
        sessions.set(maxId, { open: timestamp, close: timestamp, mergedIds: [] });
        return session(maxId);
      },
      lateFor: () => [LATE_SESSION_ID],
      merged: () => {
        if (mergeQueue.length === 0) return NONE;
        const merged = mergeQueue;
        mergeQueue = [];
        return merged;
      },
      closeFor: (watermark) => {
        const closeBefore = watermark - gap;
        // Called on every activation of every key: allocate only when a session closes.
        let closed: [number, WindowBounds][] | undefined;
        for (const entry of sessions) {
          if (entry[1].close >= closeBefore) continue;
          if (closed === undefined) closed = [];
          closed.push(entry);
        }
        if (closed === undefined) return NONE;
        closed.sort(([ia, a], [ib, b]) => a.close - b.close || ia - ib);
        for (const [id] of closed) sessions.delete(id);
        return closed;
      },
      nextClose: () => {
        if (sessions.size === 0) return undefined;
        let min = Number.POSITIVE_INFINITY;
        for (const b of sessions.values()) min = Math.min(min, b.close);
        // A session closes once the watermark is strictly past close + gap.
        return min + gap + 1;
      },
      // Ids are never reused for a key, so a downstream join on window id stays
      // correct; keeping the counter means keeping the key.
      isEmpty: () => false,
      snapshot: () => ({
        maxId,
        sessions: [...sessions].map(([id, b]): [number, WindowBounds] => [id, { ...b, mergedIds: [...b.mergedIds] }]),
        mergeQueue: [...mergeQueue],
      }),
    };
  }
}
