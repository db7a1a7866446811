/**
 * Recovery's messages between processes: the resume protocol (handoff.ts) and the
 * committed frontiers every store collects garbage against. The mesh carries them as
 * opaque control payloads tagged "recovery" (cluster/frames.ts); this module owns their
 * types, their encoding (V8 serialization, as the mesh's frames), and every check made
 * before one is used. Peers are authenticated before the mesh decodes anything of theirs
 * (cluster/handshake.ts) and are still checked: a payload that does not decode, has the
 * wrong shape, or that its sender's role may not send closes the sender's connection,
 * counted as a refusal ("frame" or "role").
 */
import { deserialize, serialize } from "node:v8";
import {
  arrayOf,
  type ControlMessage,
  fits,
  isEpoch,
  isIndex,
  isRecord,
  isString,
  type Shape,
} from "../cluster/frames.ts";
import type { ProcessMesh } from "../cluster/mesh.ts";
import type { ResumePlan, SnapshotRow, StoreRecords } from "./plan.ts";

/** The tag of recovery's control messages. */
export const RECOVERY_TAG = "recovery";

export type ControlFrame =
  /** A store's execution records: to process 0, which plans the resume. */
  | { readonly kind: "records"; readonly records: StoreRecords }
  /** Process 0's decision, to every process and holder. */
  | { readonly kind: "plan"; readonly plan: ResumePlan }
  /** Snapshots for the receiving process's workers. */
  | { readonly kind: "rows"; readonly rows: SnapshotRow[] }
  /** The sender has sent every row it holds for the receiver. */
  | { readonly kind: "resumed" }
  /** To a holder: the cluster no longer needs its store. */
  | { readonly kind: "released" }
  /** A worker's committed frontier, so every store collects garbage against the cluster's minimum. */
  | { readonly kind: "committed"; readonly worker: number; readonly frontier: number };

/** A recovery control message that cannot be used; `message` is one line naming the frame. */
export class BadControl extends Error {
  override name = "BadControl";
}

export function encodeControl(frame: ControlFrame): ControlMessage {
  return { tag: RECOVERY_TAG, payload: serialize(frame) };
}

/** The message a worker's committed frontier travels in. */
export function committedMessage(worker: number, frontier: number): ControlMessage {
  return encodeControl({ kind: "committed", worker, frontier });
}

const storedState = (v: unknown): boolean =>
  v === null || typeof v === "number" || typeof v === "string" || v instanceof Uint8Array;
const snapshotRow = (v: unknown): boolean =>
  Array.isArray(v) && v.length === 4 && isString(v[0]) && isString(v[1]) && isEpoch(v[2]) && storedState(v[3]);
const execution = (v: unknown): boolean =>
  fits(v, {
    execution: isIndex,
    processIndex: isIndex,
    processCount: isIndex,
    workersPerProcess: isIndex,
    resumeEpoch: isEpoch,
    stores: arrayOf(isString),
  });
const workerFrontier = (v: unknown): boolean => fits(v, { execution: isIndex, worker: isIndex, frontier: isEpoch });
const storeRecords = (v: unknown): boolean =>
  fits(v, {
    process: isIndex,
    storeId: isString,
    executions: arrayOf(execution),
    frontiers: arrayOf(workerFrontier),
  });
const resumePlan = (v: unknown): boolean =>
  fits(v, {
    execution: isIndex,
    resumeEpoch: isEpoch,
    resumedFrom: isIndex,
    sources: isIndex,
    processCount: isIndex,
    workersPerProcess: isIndex,
    stores: arrayOf(isString),
  });

/** The fields each kind of recovery frame must have; anything else about it is not read. */
const SHAPES: Readonly<Record<ControlFrame["kind"], Shape>> = {
  records: { records: storeRecords },
  plan: { plan: resumePlan },
  rows: { rows: arrayOf(snapshotRow) },
  resumed: {},
  released: {},
  committed: { worker: isIndex, frontier: isEpoch },
};

/** The frame a control message carries, if it is recovery's and well formed; BadControl naming it otherwise. */
export function decodeControl(message: ControlMessage): ControlFrame {
  const { tag, payload } = message;
  if (tag !== RECOVERY_TAG) throw new BadControl(`a control message tagged ${JSON.stringify(tag)}, not recovery's`);
  let value: unknown;
  try {
    value = deserialize(payload);
  } catch (err) {
    const reason = String((err as Error).message).split("\n")[0];
    throw new BadControl(`a recovery control frame of ${payload.byteLength} bytes that does not decode: ${reason}`);
  }
  const kind = isRecord(value) ? value.kind : undefined;
  if (!isString(kind) || !Object.hasOwn(SHAPES, kind)) {
    throw new BadControl(`a recovery control frame of unknown kind ${JSON.stringify(String(kind)).slice(0, 40)}`);
  }
  if (!fits(value, SHAPES[kind as ControlFrame["kind"]])) {
    throw new BadControl(`a malformed recovery control frame ${JSON.stringify(kind)}`);
  }
  return value as unknown as ControlFrame;
}

/** Who this end of the control channel is. */
export interface ControlRole {
  readonly processId: number;
  /** A holder serves a store to the cluster and runs no workers. */
  readonly holder: boolean;
  readonly workersPerProcess: number;
}

/** Why a sender in its role may not send `frame` to `me`; undefined when it may. */
export function forbiddenControl(
  frame: ControlFrame,
  from: number,
  fromHolder: boolean,
  me: ControlRole,
): string | undefined {
  switch (frame.kind) {
    case "committed":
      if (fromHolder || me.holder) return "a commit involving a holder";
      return Math.floor(frame.worker / me.workersPerProcess) === from
        ? undefined
        : `a commit for worker ${frame.worker}`;
    case "records":
      // Process 0 plans; every process hears holders, to release them.
      if (me.holder) return "records sent to a holder";
      return fromHolder || me.processId === 0 ? undefined : "records sent to a process other than 0";
    case "plan":
      return from === 0 && !fromHolder ? undefined : "a resume plan not from process 0";
    case "rows":
    case "resumed":
      return me.holder ? `${frame.kind} sent to a holder` : undefined;
    case "released":
      return me.holder && !fromHolder ? undefined : "released sent to a cluster process";
  }
}

/** The mesh as the control channel uses it. */
export type ControlMesh = Pick<ProcessMesh, "setControlHandler" | "refuse">;

/**
 * Hands `receive` each recovery frame that decodes, has its kind's shape and that its
 * sender's role may send; refuses the sender of anything else, and so stops reading it.
 */
export function receiveControl(
  mesh: ControlMesh,
  me: ControlRole,
  receive: (from: number, frame: ControlFrame) => void,
): void {
  mesh.setControlHandler((from, message, holder) => {
    const who = holder ? `holder ${from}` : `process ${from}`;
    let frame: ControlFrame;
    try {
      frame = decodeControl(message);
    } catch (err) {
      if (!(err instanceof BadControl)) throw err;
      mesh.refuse(from, "frame", `${who} sent ${err.message}`);
      return;
    }
    const forbidden = forbiddenControl(frame, from, holder, me);
    if (forbidden === undefined) receive(from, frame);
    else mesh.refuse(from, "role", `${who} sent ${forbidden}`);
  });
}
