// A hand-driven client of a process's cluster port, for the tests that play a hostile
// peer: raw bytes, a handshake under any secret and identity, then any frame.
import { connect, type Socket } from "node:net";
import { encodeFrame, type Frame } from "../../src/cluster/frames.ts";
import {
  ANSWER_BYTES,
  decodeAnswer,
  deriveKeys,
  encodeOffer,
  type Identity,
  macOf,
  newNonce,
  type Offer,
} from "../../src/cluster/handshake.ts";

export interface RawConnection {
  readonly socket: Socket;
  /** Everything the process sent. */
  readonly received: () => Buffer;
  /** Resolves when the process (or we) closed the connection. */
  readonly closed: Promise<void>;
}

export function openRaw(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let received = Buffer.alloc(0);
    const closed = new Promise<void>((done) => socket.once("close", () => done()));
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
    });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.on("error", () => undefined);
      resolve({ socket, received: () => received, closed });
    });
  });
}

/** Writes `bytes` to a new connection and waits until the process closes it. */
export async function sendRaw(port: number, bytes: Buffer): Promise<void> {
  const conn = await openRaw(port);
  conn.socket.write(bytes);
  await conn.closed;
}

export interface Member extends RawConnection {
  send(frame: Frame): void;
  /** The bytes this client sent to authenticate: an offer and a proof. */
  readonly handshake: Buffer;
}

/**
 * Completes the handshake as `who` with `secret`; resolves once the proof is sent. A wrong
 * secret fails here only on the listener's side: the client cannot tell, so it proves anyway.
 */
export async function dialAs(
  port: number,
  opts: { secret: Uint8Array; flowId: string; who: Identity; listener: number },
): Promise<Member> {
  const conn = await openRaw(port);
  const keys = deriveKeys(opts.secret, opts.flowId);
  const mine: Offer = { ...opts.who, nonce: newNonce() };
  const offer = encodeOffer(mine);
  conn.socket.write(offer);
  const deadline = Date.now() + 10_000;
  while (conn.received().length < ANSWER_BYTES) {
    if (Date.now() > deadline) throw new Error("no handshake answer");
    await new Promise((r) => setTimeout(r, 10));
  }
  const answer = decodeAnswer(conn.received().subarray(0, ANSWER_BYTES));
  if (answer === undefined) throw new Error("not a handshake answer");
  const proof = macOf(keys, opts.flowId, "dialer", { dialer: mine, listener: answer });
  conn.socket.write(proof);
  return {
    ...conn,
    handshake: Buffer.concat([offer, proof]),
    send: (frame) => conn.socket.write(encodeFrame(frame)),
  };
}
