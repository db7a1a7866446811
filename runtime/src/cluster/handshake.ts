/**
 * How a connection proves membership before anything on it is decoded: an HMAC
 * challenge-response over both sides' nonces, keyed by the cluster secret, in raw
 * fixed-size messages that are compared, never parsed into objects.
 *
 *   dialer -> listener  OFFER   magic | dialer nonce | dialer index | dialer role
 *   listener -> dialer  ANSWER  magic | listener nonce | listener index | listener role | listener MAC
 *   dialer -> listener  PROOF   dialer MAC
 *
 * Each MAC covers a label for its side (so one side's MAC is never valid for the other),
 * the dataflow id, both nonces and both sides' index and role. Fresh nonces make a
 * recorded handshake worthless on a new connection.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

const MAGIC = Buffer.from("WAXFLOW1", "latin1");
const NONCE = 32;
const MAC = 32;
export const OFFER_BYTES = MAGIC.length + NONCE + 4 + 1;
export const ANSWER_BYTES = OFFER_BYTES + MAC;
export const PROOF_BYTES = MAC;
/** The most a listener reads from a connection before it is authenticated. */
export const PRE_AUTH_BYTES = OFFER_BYTES + PROOF_BYTES;

export type Role = "process" | "holder";

/** Who one side of a connection says it is. */
export interface Identity {
  readonly index: number;
  readonly role: Role;
}

/**
 * Keys derived from the cluster secret: one for handshake MACs, one as the TLS pre-shared
 * key, so neither use can be turned against the other.
 */
export interface ClusterKeys {
  readonly mac: Buffer;
  readonly psk: Buffer;
}

/** The cluster secret; "insecure" runs the same protocol with a well-known key (a local, trusted network only). */
export type ClusterSecret = Uint8Array | "insecure";

export function deriveKeys(secret: ClusterSecret, flowId: string): ClusterKeys {
  const base = secret === "insecure" ? Buffer.alloc(0) : secret;
  const derive = (purpose: string): Buffer =>
    createHmac("sha256", base).update(`waxflow ${purpose}\0`).update(flowId, "utf8").digest();
  return { mac: derive("mesh mac"), psk: derive("mesh tls psk") };
}

export interface Offer extends Identity {
  readonly nonce: Buffer;
}

export interface Answer extends Offer {
  readonly mac: Buffer;
}

const ROLE_BYTE: Record<Role, number> = { process: 0, holder: 1 };

function identityBytes(id: Identity): Buffer {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt32BE(id.index, 0);
  b.writeUInt8(ROLE_BYTE[id.role], 4);
  return b;
}

export function newNonce(): Buffer {
  return randomBytes(NONCE);
}

export function encodeOffer(offer: Offer): Buffer {
  return Buffer.concat([MAGIC, offer.nonce, identityBytes(offer)]);
}

export function encodeAnswer(answer: Answer): Buffer {
  return Buffer.concat([MAGIC, answer.nonce, identityBytes(answer), answer.mac]);
}

/** Whether `bytes` start like this protocol: the dialer tells a foreign service from a peer by it. */
export function startsWithMagic(bytes: Buffer): boolean {
  const n = Math.min(bytes.length, MAGIC.length);
  return bytes.subarray(0, n).equals(MAGIC.subarray(0, n));
}

/** Reads an offer (exactly OFFER_BYTES), or undefined if it is not one. */
export function decodeOffer(bytes: Buffer): Offer | undefined {
  if (bytes.length !== OFFER_BYTES || !startsWithMagic(bytes)) return undefined;
  return readIdentity(bytes);
}

/** Reads an answer (exactly ANSWER_BYTES), or undefined if it is not one. */
export function decodeAnswer(bytes: Buffer): Answer | undefined {
  if (bytes.length !== ANSWER_BYTES || !startsWithMagic(bytes)) return undefined;
  const offer = readIdentity(bytes.subarray(0, OFFER_BYTES));
  return offer === undefined ? undefined : { ...offer, mac: Buffer.from(bytes.subarray(OFFER_BYTES)) };
}

function readIdentity(bytes: Buffer): Offer | undefined {
  const at = MAGIC.length + NONCE;
  const role = bytes.readUInt8(at + 4);
  if (role !== ROLE_BYTE.process && role !== ROLE_BYTE.holder) return undefined;
  return {
    nonce: Buffer.from(bytes.subarray(MAGIC.length, at)),
    index: bytes.readUInt32BE(at),
    role: role === ROLE_BYTE.holder ? "holder" : "process",
  };
}

export interface Transcript {
  readonly dialer: Offer;
  readonly listener: Offer;
}

/** The MAC one side sends: `side` is the side that computes it. */
export function macOf(keys: ClusterKeys, flowId: string, side: "dialer" | "listener", t: Transcript): Buffer {
  return createHmac("sha256", keys.mac)
    .update(`waxflow ${side}\0`)
    .update(createHash("sha256").update(flowId, "utf8").digest())
    .update(t.dialer.nonce)
    .update(t.listener.nonce)
    .update(identityBytes(t.dialer))
    .update(identityBytes(t.listener))
    .digest();
}

/** Constant-time comparison of a received MAC with the expected one. */
export function macMatches(received: Buffer, expected: Buffer): boolean {
  return received.length === expected.length && timingSafeEqual(received, expected);
}
