// The mesh's wire formats as pure functions: the handshake's MACs bind everything they
// claim to, and the frame decoder turns any bytes into frames or a BadFrame, never a throw
// of anything else.
import { randomBytes } from "node:crypto";
import { serialize } from "node:v8";
import { expect, test } from "vitest";
import { BadFrame, checkControl, encodeFrame, FrameDecoder, MAX_CONTROL_BYTES } from "../src/cluster/frames.ts";
import {
  ANSWER_BYTES,
  decodeAnswer,
  decodeOffer,
  deriveKeys,
  encodeAnswer,
  encodeOffer,
  macMatches,
  macOf,
  newNonce,
  OFFER_BYTES,
  type Offer,
  type Transcript,
} from "../src/cluster/handshake.ts";

const secret = Buffer.from("a-cluster-secret-of-enough-bytes");

test("offers and answers round-trip in fixed sizes; anything else is not one", () => {
  const offer: Offer = { index: 3, role: "holder", nonce: newNonce() };
  expect(encodeOffer(offer)).toHaveLength(OFFER_BYTES);
  expect(decodeOffer(encodeOffer(offer))).toEqual(offer);
  const answer = { index: 0, role: "process" as const, nonce: newNonce(), mac: randomBytes(32) };
  expect(encodeAnswer(answer)).toHaveLength(ANSWER_BYTES);
  expect(decodeAnswer(encodeAnswer(answer))).toEqual(answer);
  expect(decodeOffer(randomBytes(OFFER_BYTES))).toBeUndefined();
  expect(decodeOffer(encodeOffer(offer).subarray(1))).toBeUndefined();
  const badRole = encodeOffer(offer);
  badRole[OFFER_BYTES - 1] = 7;
  expect(decodeOffer(badRole)).toBeUndefined();
});

test("a MAC changes with the side, the secret, the dataflow, either nonce, index or role", () => {
  const keys = deriveKeys(secret, "flow");
  const t: Transcript = {
    dialer: { index: 1, role: "process", nonce: newNonce() },
    listener: { index: 0, role: "process", nonce: newNonce() },
  };
  const mac = macOf(keys, "flow", "dialer", t);
  expect(macMatches(mac, macOf(keys, "flow", "dialer", t))).toBe(true);
  const variants = [
    macOf(keys, "flow", "listener", t),
    macOf(deriveKeys(Buffer.from("another-secret-of-enough-bytes!"), "flow"), "flow", "dialer", t),
    macOf(deriveKeys(secret, "other"), "other", "dialer", t),
    macOf(keys, "flow", "dialer", { ...t, dialer: { ...t.dialer, nonce: newNonce() } }),
    macOf(keys, "flow", "dialer", { ...t, listener: { ...t.listener, nonce: newNonce() } }),
    macOf(keys, "flow", "dialer", { ...t, dialer: { ...t.dialer, index: 2 } }),
    macOf(keys, "flow", "dialer", { ...t, dialer: { ...t.dialer, role: "holder" } }),
    macOf(keys, "flow", "dialer", { ...t, listener: { ...t.listener, index: 1 } }),
  ];
  for (const other of variants) expect(macMatches(mac, other)).toBe(false);
  expect(macMatches(mac, mac.subarray(1))).toBe(false);
  expect(keys.mac.equals(keys.psk)).toBe(false);
});

test("the decoder yields well-formed frames and refuses everything else with BadFrame", () => {
  const decoder = new FrameDecoder();
  const control = { kind: "control", tag: "recovery", payload: new Uint8Array([1, 2, 3]) } as const;
  const frame = encodeFrame(control);
  expect(decoder.push(frame.subarray(0, 3))).toEqual([]);
  expect(decoder.push(frame.subarray(3))).toEqual([control]);
  const framed = (body: Buffer): Buffer => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    return Buffer.concat([header, body]);
  };
  const hostile = [
    framed(serialize(null)),
    framed(serialize(7)),
    framed(serialize([])),
    framed(serialize({ kind: "nope" })),
    framed(serialize({ kind: "toString" })),
    // Recovery's frames travel inside control frames only.
    framed(serialize({ kind: "committed", worker: 1, frontier: 1 })),
    // A control frame's tag is a short lowercase name, its payload bytes.
    framed(serialize({ kind: "control", tag: "Recovery", payload: new Uint8Array(1) })),
    framed(serialize({ kind: "control", tag: "r".repeat(33), payload: new Uint8Array(1) })),
    framed(serialize({ kind: "control", tag: "recovery", payload: { kind: "resumed" } })),
    framed(serialize({ kind: "control", tag: "recovery", payload: "bytes" })),
    framed(serialize({ kind: "control", tag: "recovery" })),
    framed(
      serialize({
        kind: "exchange",
        from: 0,
        to: 1,
        messages: [{ kind: "pairs", exchange: 0, epoch: 1, keys: [1], values: [2] }],
      }),
    ),
    framed(randomBytes(64)),
    Buffer.from([0xff, 0xff, 0xff, 0xff]),
  ];
  for (const bytes of hostile) {
    expect(() => new FrameDecoder().push(bytes), bytes.toString("hex").slice(0, 40)).toThrow(BadFrame);
  }
  for (let i = 0; i < 500; i++) {
    try {
      new FrameDecoder().push(framed(randomBytes(1 + (i % 100))));
    } catch (err) {
      expect(err).toBeInstanceOf(BadFrame);
    }
  }
});

test("a control frame names what is wrong with it, whether sent or received", () => {
  expect(() =>
    new FrameDecoder().push(encodeFrame({ kind: "control", tag: "Bad tag", payload: new Uint8Array(1) })),
  ).toThrow(/^a malformed control frame$/);
  expect(() => checkControl({ tag: "Bad tag", payload: new Uint8Array(1) })).toThrow(/^control tag "Bad tag" is not /);
  // A payload one byte over the bound, without allocating it: only its byteLength is read.
  const huge = Object.create(Uint8Array.prototype, { byteLength: { value: MAX_CONTROL_BYTES + 1 } }) as Uint8Array;
  expect(() => checkControl({ tag: "recovery", payload: huge })).toThrow(
    `a recovery control payload of ${MAX_CONTROL_BYTES + 1} bytes exceeds the ${MAX_CONTROL_BYTES} limit`,
  );
});
