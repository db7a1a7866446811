/**
 * `waxflow/windowing`: group a keyed stream's items into windows of time, per key.
 *
 * A clock gives each item a timestamp and keeps a watermark (how far time has got);
 * a windower assigns items to windows and closes a window once the watermark passes
 * it. Items behind the watermark are late and come out on `late`. Clock, windower and
 * windows are state of each key, so watermarks are per key and survive recovery.
 */
export type { Clock, ClockLogic, EventClockOptions, EventClockState } from "./clock.ts";
export { EventClock, projectClock, SystemClock } from "./clock.ts";
export type { JoinWindowOptions } from "./operators.ts";
export {
  collectWindow,
  countWindow,
  foldWindow,
  joinWindow,
  maxWindow,
  minWindow,
  reduceWindow,
} from "./operators.ts";
export type { WindowLogic, WindowOut, WindowSnapshot } from "./window.ts";
export { window } from "./window.ts";
export type {
  SessionWindowerState,
  SlidingWindowerState,
  WindowBounds,
  Windower,
  WindowerLogic,
  WindowMetadata,
} from "./windower.ts";
export { LATE_SESSION_ID, SessionWindower, SlidingWindower, TumblingWindower } from "./windower.ts";
