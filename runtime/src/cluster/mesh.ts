/**
 * The TCP mesh between the processes of one cluster: one connection per pair (the
 * higher process index dials the lower one), authenticated before anything on it is
 * decoded (handshake.ts; optionally inside TLS-PSK keyed from the same secret), then a
 * hello that checks both sides run the same dataflow with the same shape, heartbeats,
 * an end that every process reaches together, and fate-sharing: a peer that
 * vanishes — its socket closes without a "done" frame, or it stops sending heartbeats —
 * fails every other process within seconds, not only when it is next sent to.
 *
 * Holders (processes with an index beyond the cluster's, serving the recovery store of a
 * process that is no longer in it) dial every cluster process too. They carry control
 * frames only, and losing one is reported to the recovery layer instead of failing the
 * cluster: only it knows whether that holder's store was still needed.
 *
 * Control frames carry the messages of the layer above (recovery's resume protocol) as
 * opaque, tagged, bounded payloads: the mesh checks their envelope and who sent them
 * (an authenticated process or holder), and the handler decodes them, checks them, and
 * refuses a sender (`refuse`) whose message it may not take.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import * as tls from "node:tls";
import { DEFAULT_PEER_TIMEOUT_MS } from "../defaults.ts";
import { type ExchangeMessage, packMessages, type Transport } from "../engine/transport.ts";
import {
  type ControlMessage,
  checkControl,
  encodeFrame,
  type Frame,
  FrameDecoder,
  type Hello,
  type StateFrame,
} from "./frames.ts";
import {
  ANSWER_BYTES,
  type ClusterKeys,
  type ClusterSecret,
  decodeAnswer,
  decodeOffer,
  deriveKeys,
  encodeAnswer,
  encodeOffer,
  type Identity,
  macMatches,
  macOf,
  newNonce,
  OFFER_BYTES,
  type Offer,
  PROOF_BYTES,
  startsWithMagic,
} from "./handshake.ts";
import { PeerError, PeerLostError } from "./peer-errors.ts";

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** How the mesh authenticates and bounds its connections: what a caller configures. */
export type MeshSecurity = Pick<
  MeshOptions,
  "secret" | "tls" | "listenHost" | "peerTimeoutMs" | "handshakeTimeoutMs" | "onRefused"
>;

export interface MeshOptions {
  readonly processId: number;
  readonly addresses: readonly PeerAddress[];
  readonly workersPerProcess: number;
  readonly flowId: string;
  /** Whether this process keeps a recovery store: every process of a cluster must agree. */
  readonly recovery?: boolean;
  /** This process is a holder: it dials every process of `addresses` and runs no workers. */
  readonly holder?: boolean;
  /**
   * The cluster secret every process shares; required for a cluster of more than one
   * process and for holders. "insecure": the same protocol with a well-known key.
   */
  readonly secret?: ClusterSecret;
  /** Encrypt the traffic too: TLS 1.2 with a pre-shared key derived from the secret. */
  readonly tls?: boolean;
  /** The address to listen on instead of this process's host in `addresses` (a pod's IP). */
  readonly listenHost?: string;
  /** How long to wait for every peer at start (default 60 s). */
  readonly connectTimeoutMs?: number;
  readonly heartbeatMs?: number;
  /** A peer silent for this long is declared lost (default DEFAULT_PEER_TIMEOUT_MS). */
  readonly peerTimeoutMs?: number;
  /** How long a connection has to authenticate and say hello (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** Told of every connection refused or closed for what it sent; the process goes on. */
  readonly onRefused?: (refusal: Refusal) => void;
  readonly signal?: AbortSignal;
}

/**
 * Why a connection was turned away: it failed the handshake, sent a frame that does not
 * decode or has the wrong shape, or a frame its sender's role does not allow.
 */
export interface Refusal {
  readonly kind: "handshake" | "frame" | "role";
  readonly detail: string;
}

export { DEFAULT_PEER_TIMEOUT_MS };

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Holders are numbered after the cluster's processes; no real cluster shrinks by more. */
const MAX_PROCESS_INDEX = 0xffff;
const PSK_IDENTITY = "waxflow";
/** ECDHE: forward secrecy on top of the pre-shared key. Node offers PSK with TLS 1.2 only. */
const TLS_OPTIONS = { ciphers: "ECDHE-PSK-CHACHA20-POLY1305", minVersion: "TLSv1.2", maxVersion: "TLSv1.2" } as const;

export { PeerError, PeerLostError };

/** A well-formed frame its sender's role does not allow. */
class RoleViolation extends Error {
  override name = "RoleViolation";
}

/** A connection the listener took and closed before it answered the handshake. */
class Unanswered extends Error {
  override name = "Unanswered";
}
const UNANSWERED_DIALS = 3;

const describePeer = (who: Identity): string => `${who.role} ${who.index}`;

export function parseAddresses(spec: string): PeerAddress[] {
  return spec
    .split(";")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s, i) => {
      const colon = s.lastIndexOf(":");
      const port = Number(s.slice(colon + 1));
      if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw new RangeError(`address ${i} ${JSON.stringify(s)} is not host:port`);
      }
      return { host: s.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port };
    });
}

const show = (a: PeerAddress | undefined): string => (a === undefined ? "?" : `${a.host}:${a.port}`);

interface Peer {
  readonly socket: Socket;
  readonly holder: boolean;
  lastSeen: number;
  done: boolean;
  /** Closed for what it sent: nothing else it sent is handled. */
  refused: boolean;
}

/** Told each control message, with its sender's index and whether the sender authenticated as a holder. */
export type ControlHandler = (from: number, message: ControlMessage, holder: boolean) => void;
type StateHandler = (from: number, frame: StateFrame) => void;

export class ProcessMesh {
  readonly #opts: MeshOptions;
  readonly #peers = new Map<number, Peer>();
  readonly #receivers = new Map<number, (from: number, messages: ExchangeMessage[]) => void>();
  /** Messages that arrived before their worker listened: peers may start first. */
  readonly #early = new Map<number, Array<[number, ExchangeMessage[]]>>();
  readonly #failureListeners: Array<(err: Error) => void> = [];
  readonly #drainListeners: Array<() => void> = [];
  readonly #holderLostListeners: Array<(holder: number, reason: string) => void> = [];
  #control: ControlHandler | undefined;
  #state: StateHandler | undefined;
  /** Control frames that arrived before a handler was set. */
  readonly #earlyControl: Array<[number, ControlMessage, Peer]> = [];
  #server: Server | undefined;
  #derived: ClusterKeys | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #failure: Error | undefined;
  /** Told of each peer's "done" while `finish` waits for the last one. */
  #onPeerDone: (() => void) | undefined;
  #closing = false;
  #paused = false;
  bytesSent = 0;
  bytesReceived = 0;

  private constructor(opts: MeshOptions) {
    this.#opts = opts;
  }

  get processCount(): number {
    return this.#opts.addresses.length;
  }

  get processId(): number {
    return this.#opts.processId;
  }

  /** Connected cluster processes other than this one (holders do not count). */
  get connectedPeers(): number {
    let n = 0;
    for (const peer of this.#peers.values()) if (!peer.holder) n += 1;
    return n;
  }

  /** Connects to every peer; resolves once all are connected. */
  static async connect(opts: MeshOptions): Promise<ProcessMesh> {
    const mesh = new ProcessMesh(opts);
    try {
      await mesh.#start();
    } catch (err) {
      mesh.close();
      throw err;
    }
    return mesh;
  }

  onFailure(listener: (err: Error) => void): void {
    if (this.#failure !== undefined) listener(this.#failure);
    else this.#failureListeners.push(listener);
  }

  /**
   * Receives every control message; those that came before the handler are replayed to
   * it, but none from a peer refused since.
   */
  setControlHandler(handler: ControlHandler): void {
    this.#control = handler;
    for (const [from, message, peer] of this.#earlyControl.splice(0)) {
      if (!peer.refused) handler(from, message, peer.holder);
    }
  }

  /**
   * Receives state queries from peers and their answers to ours. Queries that arrive
   * before it is set (this process still starting) are answered 503 at once.
   */
  setStateHandler(handler: StateHandler): void {
    this.#state = handler;
  }

  sendState(process: number, frame: StateFrame): void {
    this.#send(process, frame);
  }

  /** Called when a holder's connection ends before it said it was done. */
  onHolderLost(listener: (holder: number, reason: string) => void): void {
    this.#holderLostListeners.push(listener);
  }

  /** Sends a control message; a RangeError if its tag or size would be refused. */
  sendControl(process: number, message: ControlMessage): void {
    checkControl(message);
    this.#send(process, { kind: "control", tag: message.tag, payload: message.payload });
  }

  /** Sends a control message to every cluster process but this one. */
  broadcast(message: ControlMessage): void {
    checkControl(message);
    const frame: Frame = { kind: "control", tag: message.tag, payload: message.payload };
    for (const [process, peer] of this.#peers) if (!peer.holder) this.#send(process, frame);
  }

  /** Resolves once the link to `process` can take more: bulk senders wait on it to bound memory. */
  async writable(process: number): Promise<void> {
    const socket = this.#peers.get(process)?.socket;
    if (socket === undefined || !socket.writableNeedDrain || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off("drain", done);
        socket.off("close", done);
        resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }

  /**
   * Lets holders connect to a process that has no peers (a cluster of one): it listens
   * only once its recovery layer knows it needs them.
   */
  acceptHolders(): void {
    const me = this.#opts.addresses[this.#opts.processId];
    if (this.#server === undefined && me !== undefined && this.#opts.holder !== true) {
      try {
        this.#keys();
      } catch (err) {
        this.#fail(err as Error);
        return;
      }
      this.#listen(me).catch((err: unknown) => this.#fail(err as Error));
    }
  }

  /** Called when a congested link drains, so workers can resume reading sources. */
  onDrain(listener: () => void): void {
    this.#drainListeners.push(listener);
  }

  /** Whether any link has more queued than the socket buffers: sources should pause. */
  congested(): boolean {
    for (const peer of this.#peers.values()) if (!peer.holder && peer.socket.writableNeedDrain) return true;
    return false;
  }

  /**
   * Stops or restarts reading from peers, so worker threads that fall behind push back on
   * the senders through TCP. Paused links are not timed out: their heartbeats wait unread.
   */
  pauseReading(paused: boolean): void {
    if (paused === this.#paused) return;
    this.#paused = paused;
    for (const peer of this.#peers.values()) {
      if (peer.holder) continue;
      if (paused) peer.socket.pause();
      else peer.socket.resume();
    }
  }

  /** The transport of local worker `local`; global worker ids are process * W + local. */
  transport(local: number): Transport {
    const w = this.#opts.workersPerProcess;
    const me = this.#opts.processId * w + local;
    return {
      send: (to, messages) => {
        const process = Math.floor(to / w);
        if (process === this.#opts.processId) {
          this.#deliver(to - process * w, me, messages);
          return;
        }
        // Packed here, not for workers of this process: those get the objects themselves.
        this.#send(process, { kind: "exchange", from: me, to, messages: packMessages(messages) });
      },
      listen: (receive) => {
        this.#receivers.set(local, receive);
        for (const [from, messages] of this.#early.get(local) ?? []) receive(from, messages);
        this.#early.delete(local);
      },
    };
  }

  /**
   * Tells peers this process finished cleanly, waits until every cluster process has, then
   * closes the connections. A process whose workers ended first (none of them reads a
   * partition of an endless source, say) so stays in the cluster, idle and heartbeating,
   * until the end: had it left, the cluster could not re-form with it after a later fault.
   * Rejects, leaving the connections open, when the cluster fails or the run is stopped first.
   */
  async finish(): Promise<void> {
    for (const process of this.#peers.keys()) this.#send(process, { kind: "done" });
    // A holder leaves once released: the cluster goes on without it.
    if (this.#opts.holder !== true) await this.#everyPeerDone();
    this.#closing = true;
    await Promise.all(
      [...this.#peers.values()].map(
        (peer) =>
          new Promise<void>((resolve) => {
            peer.socket.end(resolve);
          }),
      ),
    );
    this.close();
  }

  #everyPeerDone(): Promise<void> {
    const signal = this.#opts.signal;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        this.#onPeerDone = undefined;
        signal?.removeEventListener("abort", stopped);
        if (err === undefined) resolve();
        else reject(err);
      };
      const stopped = (): void => settle(signal?.reason ?? new Error("stopped"));
      const check = (): void => {
        for (const peer of this.#peers.values()) if (!peer.holder && !peer.done) return;
        settle();
      };
      this.onFailure((err) => settle(err));
      if (signal?.aborted) stopped();
      if (settled) return;
      signal?.addEventListener("abort", stopped, { once: true });
      this.#onPeerDone = check;
      check();
    });
  }

  /**
   * Tells every peer why this process is stopping, then closes: peers report this cause
   * instead of blaming the closed connection on this process.
   */
  abort(reason: string): void {
    this.#closing = true;
    clearInterval(this.#heartbeat);
    for (const peer of this.#peers.values()) {
      if (!peer.socket.destroyed) peer.socket.end(encodeFrame({ kind: "abort", reason }));
    }
    this.#server?.close();
  }

  close(): void {
    this.#closing = true;
    clearInterval(this.#heartbeat);
    // A socket already ended (by `abort` or `finish`) is left to flush its last frame.
    for (const peer of this.#peers.values()) if (!peer.socket.writableEnded) peer.socket.destroy();
    this.#server?.close();
  }

  /** The handshake's keys; only a mesh that connects anywhere needs the secret. */
  #keys(): ClusterKeys {
    if (this.#derived !== undefined) return this.#derived;
    const { secret } = this.#opts;
    if (secret === undefined) {
      throw new PeerError(
        "a cluster of more than one process (or with holders) needs a cluster secret shared by every process: " +
          "set --cluster-secret or WAXFLOW_CLUSTER_SECRET (or WAXFLOW_CLUSTER_SECRET_FILE)",
      );
    }
    this.#derived = deriveKeys(secret, this.#opts.flowId);
    return this.#derived;
  }

  async #start(): Promise<void> {
    const { processId, addresses } = this.#opts;
    const holder = this.#opts.holder === true;
    const me = addresses[processId];
    if (holder ? me !== undefined : me === undefined) {
      throw new RangeError(
        holder
          ? `holder ${processId} must have an index beyond the cluster's ${addresses.length} processes`
          : `process id ${processId} is not an index of the ${addresses.length} addresses`,
      );
    }
    if (processId > MAX_PROCESS_INDEX) throw new RangeError(`process id ${processId} is above ${MAX_PROCESS_INDEX}`);
    this.#startHeartbeat();
    if (addresses.length === 1 && !holder) return;
    this.#keys();
    const timeoutMs = this.#opts.connectTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const accepted = me === undefined ? Promise.resolve() : this.#listen(me);
    const dialed = Array.from({ length: Math.min(processId, addresses.length) }, (_, peer) =>
      this.#dial(peer, deadline),
    );
    const timeout = sleep(timeoutMs, undefined, { ref: false, signal: this.#opts.signal }).then(() => {
      const missing = addresses.map((_, i) => i).filter((i) => i !== processId && !this.#peers.has(i));
      throw new PeerLostError(
        `timed out after ${timeoutMs} ms waiting for process(es) ${missing.map((i) => `${i} (${show(addresses[i])})`).join(", ")}; ` +
          "check that every process runs with the same address list and that they can reach each other",
      );
    });
    await Promise.race([Promise.all([accepted, ...dialed]), timeout]);
  }

  #startHeartbeat(): void {
    const heartbeatMs = this.#opts.heartbeatMs ?? 1000;
    const peerTimeoutMs = this.#opts.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
    let lastTick = Date.now();
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      // Timers run before pending socket reads: after this thread was blocked (a long
      // synchronous step or snapshot), peers' heartbeats are waiting unread, so their
      // silence is ours. They get the time back instead of being declared lost.
      const stalled = now - lastTick > 2 * heartbeatMs;
      lastTick = now;
      for (const [process, peer] of this.#peers) {
        if (stalled || (this.#paused && !peer.holder)) peer.lastSeen = now;
        if (!peer.done && now - peer.lastSeen > peerTimeoutMs) {
          this.#lost(
            process,
            peer,
            `process ${process} (${this.#show(process)}) sent nothing for ${peerTimeoutMs} ms ` +
              "(raise --peer-timeout/WAXFLOW_PEER_TIMEOUT if its processes are starved of CPU)",
          );
          if (!peer.holder) return;
          continue;
        }
        this.#send(process, { kind: "heartbeat" });
      }
    }, heartbeatMs);
    this.#heartbeat.unref();
  }

  /** Holders have no address in the list: they dial in. */
  #show(process: number): string {
    return process < this.#opts.addresses.length ? show(this.#opts.addresses[process]) : "holder";
  }

  #identity(): Identity {
    return { index: this.#opts.processId, role: this.#opts.holder === true ? "holder" : "process" };
  }

  #hello(): Hello {
    return {
      kind: "hello",
      process: this.#opts.processId,
      processCount: this.#opts.addresses.length,
      workersPerProcess: this.#opts.workersPerProcess,
      flowId: this.#opts.flowId,
      recovery: this.#opts.recovery === true,
      holder: this.#opts.holder === true,
    };
  }

  /** Explains how a peer's hello differs from ours, or returns undefined if it fits. */
  #mismatch(hello: Hello): string | undefined {
    const mine = this.#hello();
    if (hello.flowId !== mine.flowId)
      return `runs dataflow ${JSON.stringify(hello.flowId)}, not ${JSON.stringify(mine.flowId)}`;
    if (hello.processCount !== mine.processCount)
      return `has ${hello.processCount} addresses, not ${mine.processCount}`;
    if (hello.recovery !== mine.recovery)
      return hello.recovery ? "runs with recovery (-r), we do not" : "runs without recovery (-r)";
    // A holder runs no workers, so it has no worker count to compare.
    if (!hello.holder && !mine.holder && hello.workersPerProcess !== mine.workersPerProcess) {
      return `runs ${hello.workersPerProcess} workers per process, not ${mine.workersPerProcess}`;
    }
    return undefined;
  }

  /** Who may dial this process: cluster processes with a higher index, and holders. */
  #mayDial(who: Identity): boolean {
    const count = this.#opts.addresses.length;
    if (this.#opts.holder === true) return false;
    if (who.role === "holder") return who.index >= count && who.index <= MAX_PROCESS_INDEX;
    return who.index > this.#opts.processId && who.index < count;
  }

  #refused(refusal: Refusal): void {
    this.#opts.onRefused?.(refusal);
  }

  #listen(me: PeerAddress): Promise<void> {
    const expected = this.#opts.addresses.length - 1 - this.#opts.processId;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    if (expected === 0) resolve();
    let accepted = 0;
    const handshakeMs = this.#opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const onHello = (who: Identity, socket: Socket, hello: Hello, rest: Frame[]): void => {
      // The hello repeats what the handshake authenticated: a peer that disagrees with itself is refused.
      if (hello.process !== who.index || hello.holder !== (who.role === "holder")) {
        this.#refused({ kind: "frame", detail: `${describePeer(who)} said hello as another process` });
        socket.destroy();
        return;
      }
      const holder = who.role === "holder";
      // A process restarted while this one still runs the previous execution dials
      // too early: it is told to try again, not that its flags are wrong.
      if (this.#peers.has(who.index) || this.#closing) {
        const reason = `process ${this.#opts.processId} is still connected to a previous process ${who.index}`;
        socket.end(encodeFrame({ kind: "reject", reason, retry: true }));
        return;
      }
      const why = this.#mismatch(hello);
      if (why !== undefined) {
        socket.end(encodeFrame({ kind: "reject", reason: why, retry: false }));
        // A misconfigured holder is turned away; the cluster itself can still form.
        if (!holder) {
          reject(new PeerError(`process ${who.index} ${why}; every process must run the same dataflow and flags`));
        }
        return;
      }
      socket.write(encodeFrame(this.#hello()));
      this.#adopt(who.index, socket, rest, holder);
      if (holder) return;
      accepted += 1;
      if (accepted === expected) resolve();
    };
    const onConnection = (socket: Socket): void => {
      socket.setNoDelay(true);
      socket.on("error", () => undefined);
      const from = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
      const refuse = (kind: Refusal["kind"], detail: string): void => {
        clearTimeout(timer);
        socket.destroy();
        this.#refused({ kind, detail: `connection from ${from}: ${detail}` });
      };
      const timer = setTimeout(() => refuse("handshake", `no handshake within ${handshakeMs} ms`), handshakeMs);
      timer.unref();
      socket.once("close", () => clearTimeout(timer));
      // Before the proof, at most an offer and a proof are buffered, and none of it is decoded.
      let pending: Buffer = Buffer.alloc(0);
      let dialer: Offer | undefined;
      let expectedProof: Buffer | undefined;
      let decoder: FrameDecoder | undefined;
      let who: Identity | undefined;
      const onData = (chunk: Buffer): void => {
        if (decoder !== undefined && who !== undefined) {
          let frames: Frame[];
          try {
            frames = decoder.push(chunk);
          } catch (err) {
            refuse("frame", `${describePeer(who)}: ${(err as Error).message}`);
            return;
          }
          const [hello, ...rest] = frames;
          if (hello === undefined) return;
          clearTimeout(timer);
          socket.off("data", onData);
          if (hello.kind !== "hello") {
            refuse("frame", `${describePeer(who)} sent ${hello.kind} before hello`);
            return;
          }
          onHello(who, socket, hello, rest);
          return;
        }
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        const failed = authenticate();
        if (failed !== undefined) {
          refuse("handshake", failed);
          return;
        }
        if (who === undefined) return;
        decoder = new FrameDecoder();
        const rest = pending.subarray(PROOF_BYTES);
        pending = Buffer.alloc(0);
        if (rest.length > 0) onData(rest);
      };
      /** Takes the offer, then the proof, from `pending`; returns why the connection fails, if it does. */
      const authenticate = (): string | undefined => {
        if (dialer === undefined) {
          if (!startsWithMagic(pending)) return "did not speak the cluster protocol";
          // The dialer waits for our answer before it proves itself: more than an offer is foreign.
          if (pending.length > OFFER_BYTES) return "sent more than a handshake offer";
          if (pending.length < OFFER_BYTES) return undefined;
          const offer = decodeOffer(pending);
          if (offer === undefined) return "sent a malformed handshake offer";
          if (!this.#mayDial(offer)) return `${describePeer(offer)} may not dial process ${this.#opts.processId}`;
          const mine: Offer = { ...this.#identity(), nonce: newNonce() };
          const transcript = { dialer: offer, listener: mine };
          dialer = offer;
          expectedProof = macOf(this.#keys(), this.#opts.flowId, "dialer", transcript);
          socket.write(encodeAnswer({ ...mine, mac: macOf(this.#keys(), this.#opts.flowId, "listener", transcript) }));
          pending = Buffer.alloc(0);
          return undefined;
        }
        if (pending.length < PROOF_BYTES) return undefined;
        if (!macMatches(pending.subarray(0, PROOF_BYTES), expectedProof ?? Buffer.alloc(0))) {
          return `${describePeer(dialer)} failed authentication: wrong cluster secret or dataflow`;
        }
        who = dialer;
        return undefined;
      };
      socket.on("data", onData);
    };
    const server =
      this.#opts.tls === true
        ? tls.createServer(
            {
              ...TLS_OPTIONS,
              pskCallback: (_socket, identity) => (identity === PSK_IDENTITY ? this.#keys().psk : null),
              handshakeTimeout: handshakeMs,
            },
            onConnection,
          )
        : createServer(onConnection);
    if (server instanceof tls.Server) {
      server.on("tlsClientError", (err, socket) =>
        this.#refused({
          kind: "handshake",
          detail: `connection from ${socket.remoteAddress ?? "?"}: TLS handshake failed: ${err.message}`,
        }),
      );
    }
    const host = this.#opts.listenHost ?? me.host;
    server.on("error", (err) => reject(new PeerError(`cannot listen on ${host}:${me.port}: ${err.message}`)));
    server.listen(me.port, host);
    this.#server = server;
    return promise;
  }

  async #dial(peer: number, deadline: number): Promise<void> {
    const address = this.#opts.addresses[peer] as PeerAddress;
    let delay = 50;
    let lastError = "";
    let unanswered = 0;
    while (Date.now() < deadline) {
      this.#opts.signal?.throwIfAborted();
      try {
        const [socket, decoder, rest] = await this.#handshake(peer, address);
        this.#adopt(peer, socket, rest, false, decoder);
        return;
      } catch (err) {
        if (err instanceof PeerError) throw err;
        lastError = (err as Error).message;
        // A listener that takes the connection and closes it unanswered, again and again,
        // refuses this process: another TLS setting, or an index it does not expect.
        unanswered = err instanceof Unanswered ? unanswered + 1 : 0;
        if (unanswered === UNANSWERED_DIALS) {
          throw new PeerError(
            `process ${peer} at ${show(address)} closed ${UNANSWERED_DIALS} connections without answering the handshake: ` +
              "every process needs the same --cluster-tls setting and address list",
          );
        }
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 1000);
    }
    throw new PeerLostError(`could not reach process ${peer} at ${show(address)}: ${lastError}`);
  }

  #handshake(peer: number, address: PeerAddress): Promise<[Socket, FrameDecoder, Frame[]]> {
    return new Promise((resolve, reject) => {
      const secure = this.#opts.tls === true;
      const where = `process ${peer} at ${show(address)}`;
      const socket = secure
        ? tls.connect({
            ...TLS_OPTIONS,
            host: address.host,
            port: address.port,
            pskCallback: () => ({ psk: this.#keys().psk, identity: PSK_IDENTITY }),
            // The pre-shared key authenticates the peer; there is no certificate to check.
            checkServerIdentity: () => undefined,
          })
        : connect({ host: address.host, port: address.port });
      socket.setNoDelay(true);
      const handshakeMs = this.#opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
      const timer = setTimeout(
        () => fail(new Error(`${where} did not finish the handshake within ${handshakeMs} ms`)),
        handshakeMs,
      );
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once("error", (err: NodeJS.ErrnoException) => {
        // A TLS alert is a peer that speaks another protocol or has another key, not one still starting.
        if (secure && err.code?.startsWith("ERR_SSL") === true) {
          fail(
            new PeerError(
              `${where} failed the TLS handshake (${err.message}); every process needs the same cluster secret and --cluster-tls`,
            ),
          );
        } else fail(connected ? new Unanswered(`${where}: ${err.message}`) : err);
      });
      let connected = false;
      socket.once("connect", () => {
        connected = true;
      });
      socket.once("close", () =>
        fail(connected ? new Unanswered(`${where} closed the connection during the handshake`) : new Error("closed")),
      );
      const mine: Offer = { ...this.#identity(), nonce: newNonce() };
      socket.once(secure ? "secureConnect" : "connect", () => socket.write(encodeOffer(mine)));
      let pending: Buffer = Buffer.alloc(0);
      let decoder: FrameDecoder | undefined;
      const onData = (chunk: Buffer): void => {
        if (decoder === undefined) {
          pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
          if (!startsWithMagic(pending)) {
            const said = JSON.stringify(pending.subarray(0, 24).toString("latin1"));
            fail(
              new PeerError(
                `${where} did not speak the cluster protocol (it sent ${said}); check that the address is its cluster port, not its HTTP port`,
              ),
            );
            return;
          }
          if (pending.length < ANSWER_BYTES) return;
          const answer = decodeAnswer(pending.subarray(0, ANSWER_BYTES));
          const transcript = { dialer: mine, listener: answer ?? mine };
          if (
            answer === undefined ||
            answer.index !== peer ||
            answer.role !== "process" ||
            !macMatches(answer.mac, macOf(this.#keys(), this.#opts.flowId, "listener", transcript))
          ) {
            fail(
              new PeerError(
                `${where} did not prove it is process ${peer} of this dataflow: every process needs the same cluster secret (--cluster-secret) and the same address list`,
              ),
            );
            return;
          }
          socket.write(macOf(this.#keys(), this.#opts.flowId, "dialer", transcript));
          socket.write(encodeFrame(this.#hello()));
          decoder = new FrameDecoder();
          chunk = pending.subarray(ANSWER_BYTES);
          pending = Buffer.alloc(0);
        }
        let frames: Frame[];
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          fail(new PeerError(`${where} sent a bad handshake reply: ${(err as Error).message}`));
          return;
        }
        const [reply, ...rest] = frames;
        if (reply === undefined) return;
        clearTimeout(timer);
        // Hold further data until #adopt listens: a flowing socket drops unheard chunks.
        socket.pause();
        socket.off("data", onData);
        socket.removeAllListeners("error");
        socket.removeAllListeners("close");
        if (reply.kind === "reject") {
          const message = `process at ${show(address)} refused us: ${reply.reason}`;
          fail(reply.retry ? new Error(message) : new PeerError(message));
        } else if (reply.kind !== "hello" || reply.process !== peer || reply.holder) {
          fail(
            new PeerError(
              `${where} sent ${reply.kind === "hello" ? "a hello as another process" : reply.kind} instead of its hello`,
            ),
          );
        } else {
          const why = this.#mismatch(reply);
          if (why === undefined) resolve([socket, decoder, rest]);
          else fail(new PeerError(`process ${reply.process} ${why}`));
        }
      };
      socket.on("data", onData);
    });
  }

  /** Whether a peer in `peer`'s role may send `frame`; the reason it may not otherwise. */
  #forbidden(process: number, peer: Peer, frame: Frame): string | undefined {
    const w = this.#opts.workersPerProcess;
    const me = this.#opts.processId;
    const mineHolder = this.#opts.holder === true;
    switch (frame.kind) {
      case "heartbeat":
      case "done":
      case "abort":
        return undefined;
      case "hello":
      case "reject":
        return "a second hello";
      case "exchange": {
        if (peer.holder || mineHolder) return "exchange with a holder";
        const fromOwn = Math.floor(frame.from / w) === process;
        const toMine = Math.floor(frame.to / w) === me;
        return fromOwn && toMine ? undefined : `exchange from worker ${frame.from} to worker ${frame.to}`;
      }
      case "control":
        // Who may send which message is the handler's to check: it can read them.
        return undefined;
      case "query":
      case "answer":
        // Holders run no workers: they hold no live state and ask for none.
        return peer.holder || mineHolder ? `a state ${frame.kind} involving a holder` : undefined;
    }
  }

  #adopt(process: number, socket: Socket, early: Frame[], holder: boolean, given?: FrameDecoder): void {
    const decoder = given ?? new FrameDecoder();
    const peer: Peer = { socket, holder, lastSeen: Date.now(), done: false, refused: false };
    this.#peers.set(process, peer);
    const address = this.#show(process);
    const name = holder ? `holder ${process}` : `process ${process} (${address})`;
    const handle = (frame: Frame): void => {
      const forbidden = this.#forbidden(process, peer, frame);
      if (forbidden !== undefined) throw new RoleViolation(`${name} sent ${forbidden}`);
      switch (frame.kind) {
        case "exchange":
          this.#deliver(frame.to - this.#opts.processId * this.#opts.workersPerProcess, frame.from, frame.messages);
          break;
        case "done":
          peer.done = true;
          this.#onPeerDone?.();
          break;
        case "abort":
          this.#lost(process, peer, `process ${process} (${address}) stopped: ${frame.reason}`);
          break;
        case "control": {
          const message: ControlMessage = { tag: frame.tag, payload: frame.payload };
          if (this.#control === undefined) this.#earlyControl.push([process, message, peer]);
          else this.#control(process, message, holder);
          break;
        }
        case "query":
        case "answer":
          if (this.#state !== undefined) this.#state(process, frame);
          else if (frame.kind === "query") {
            const answer = {
              kind: "error",
              status: 503,
              message: `process ${this.#opts.processId} is starting`,
            } as const;
            this.#send(process, { kind: "answer", id: frame.id, answer });
          }
          break;
        case "heartbeat":
        case "hello":
        case "reject":
          break;
      }
    };
    const handleAll = (frames: readonly Frame[]): void => {
      try {
        // A handler may have refused the peer: what else it sent is not read.
        for (const frame of frames) if (!peer.refused) handle(frame);
      } catch (err) {
        this.refuse(process, err instanceof RoleViolation ? "role" : "frame", (err as Error).message);
      }
    };
    handleAll(early);
    socket.resume();
    socket.on("data", (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      // Any bytes are a sign of life: a large frame may take longer than a heartbeat to arrive.
      peer.lastSeen = Date.now();
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.refuse(process, "frame", `${name} sent ${(err as Error).message}`);
        return;
      }
      handleAll(frames);
    });
    socket.on("drain", () => {
      for (const listener of this.#drainListeners) listener();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (holder && this.#peers.get(process) === peer) this.#peers.delete(process);
      if (!peer.done && !this.#closing) {
        this.#lost(
          process,
          peer,
          `lost connection to process ${process} (${address}); the cluster stops so that it can restart and resume together`,
        );
      }
    });
  }

  /**
   * Closes the connection of a peer that sent what it must not (reported as refused): a
   * cluster process lost this way fails the cluster, a holder is the recovery layer's call.
   */
  refuse(process: number, kind: Refusal["kind"], detail: string): void {
    const peer = this.#peers.get(process);
    this.#refused({ kind, detail });
    if (peer === undefined) return;
    peer.refused = true;
    this.#lost(process, peer, `closed the connection to process ${process} (${this.#show(process)}): ${detail}`);
    peer.socket.destroy();
  }

  /** A cluster peer lost fails the mesh; a holder lost is the recovery layer's call. */
  #lost(process: number, peer: Peer, reason: string): void {
    if (!peer.holder) {
      this.#fail(new PeerLostError(reason));
      return;
    }
    peer.done = true;
    peer.socket.destroy();
    if (this.#peers.get(process) === peer) this.#peers.delete(process);
    for (const listener of this.#holderLostListeners) listener(process, reason);
  }

  #deliver(local: number, from: number, messages: ExchangeMessage[]): void {
    const receive = this.#receivers.get(local);
    if (receive !== undefined) {
      receive(from, messages);
      return;
    }
    const early = this.#early.get(local);
    if (early === undefined) this.#early.set(local, [[from, messages]]);
    else early.push([from, messages]);
  }

  #send(process: number, frame: Frame): void {
    const peer = this.#peers.get(process);
    if (peer === undefined || peer.socket.destroyed) return;
    const bytes = encodeFrame(frame);
    this.bytesSent += bytes.length;
    peer.socket.write(bytes);
  }

  #fail(err: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    for (const listener of this.#failureListeners.splice(0)) listener(err);
  }
}
