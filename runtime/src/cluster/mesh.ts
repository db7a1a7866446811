/**
 * The TCP mesh between the processes of one cluster: one connection per pair (the
 * higher process index dials the lower one), a hello that checks both sides run the
 * same dataflow with the same shape, heartbeats, and fate-sharing: a peer that
 * vanishes — its socket closes without a "done" frame, or it stops sending heartbeats —
 * fails every other process within seconds, not only when it is next sent to.
 *
 * Holders (processes with an index beyond the cluster's, serving the recovery store of a
 * process that is no longer in it) dial every cluster process too. They carry control
 * frames only, and losing one is reported to the recovery layer instead of failing the
 * cluster: only it knows whether that holder's store was still needed.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { type ExchangeMessage, packMessages, type Transport } from "../engine/transport.ts";
import { type ControlFrame, encodeFrame, type Frame, FrameDecoder, type Hello } from "./frames.ts";

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface MeshOptions {
  readonly processId: number;
  readonly addresses: readonly PeerAddress[];
  readonly workersPerProcess: number;
  readonly flowId: string;
  /** Whether this process keeps a recovery store: every process of a cluster must agree. */
  readonly recovery?: boolean;
  /** This process is a holder: it dials every process of `addresses` and runs no workers. */
  readonly holder?: boolean;
  /** How long to wait for every peer at start (default 60 s). */
  readonly connectTimeoutMs?: number;
  readonly heartbeatMs?: number;
  /** A peer silent for this long is declared lost (default 5 heartbeats). */
  readonly peerTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** A peer process was lost or refused us; the cluster cannot go on. */
export class PeerError extends Error {
  override name = "PeerError";
}

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
}

type ControlHandler = (from: number, frame: ControlFrame) => void;

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
  /** Control frames that arrived before a handler was set. */
  readonly #earlyControl: Array<[number, ControlFrame]> = [];
  #server: Server | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #failure: Error | undefined;
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

  /** Receives every control frame; frames that came before the handler are replayed to it. */
  setControlHandler(handler: ControlHandler): void {
    this.#control = handler;
    for (const [from, frame] of this.#earlyControl.splice(0)) handler(from, frame);
  }

  /** Called when a holder's connection ends before it said it was done. */
  onHolderLost(listener: (holder: number, reason: string) => void): void {
    this.#holderLostListeners.push(listener);
  }

  sendControl(process: number, frame: ControlFrame): void {
    this.#send(process, frame);
  }

  /** Sends `frame` to every cluster process but this one. */
  broadcast(frame: ControlFrame): void {
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

  /** Tells peers this process finished cleanly, then closes the connections. */
  async finish(): Promise<void> {
    for (const process of this.#peers.keys()) this.#send(process, { kind: "done" });
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
    this.#startHeartbeat();
    if (addresses.length === 1 && !holder) return;
    const timeoutMs = this.#opts.connectTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const accepted = me === undefined ? Promise.resolve() : this.#listen(me);
    const dialed = Array.from({ length: Math.min(processId, addresses.length) }, (_, peer) =>
      this.#dial(peer, deadline),
    );
    const timeout = sleep(timeoutMs, undefined, { ref: false, signal: this.#opts.signal }).then(() => {
      const missing = addresses.map((_, i) => i).filter((i) => i !== processId && !this.#peers.has(i));
      throw new PeerError(
        `timed out after ${timeoutMs} ms waiting for process(es) ${missing.map((i) => `${i} (${show(addresses[i])})`).join(", ")}; ` +
          "check that every process runs with the same address list and that they can reach each other",
      );
    });
    await Promise.race([Promise.all([accepted, ...dialed]), timeout]);
  }

  #startHeartbeat(): void {
    const heartbeatMs = this.#opts.heartbeatMs ?? 1000;
    const peerTimeoutMs = this.#opts.peerTimeoutMs ?? heartbeatMs * 5;
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      for (const [process, peer] of this.#peers) {
        if (this.#paused && !peer.holder) peer.lastSeen = now;
        if (!peer.done && now - peer.lastSeen > peerTimeoutMs) {
          this.#lost(process, peer, `process ${process} (${this.#show(process)}) sent nothing for ${peerTimeoutMs} ms`);
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

  #listen(me: PeerAddress): Promise<void> {
    const expected = this.#opts.addresses.length - 1 - this.#opts.processId;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    if (expected === 0) resolve();
    let accepted = 0;
    const server = createServer((socket) => {
      socket.setNoDelay(true);
      const decoder = new FrameDecoder();
      const onData = (chunk: Buffer): void => {
        let frames: Frame[];
        try {
          frames = decoder.push(chunk);
        } catch {
          socket.destroy();
          return;
        }
        const [hello, ...rest] = frames;
        if (hello === undefined) return;
        socket.off("data", onData);
        if (hello.kind !== "hello") {
          socket.destroy();
          return;
        }
        const holder = hello.holder && hello.process >= this.#opts.addresses.length;
        // A process restarted while this one still runs the previous execution dials
        // too early: it is told to try again, not that its flags are wrong.
        if (this.#peers.has(hello.process) || this.#closing) {
          const reason = `process ${this.#opts.processId} is still connected to a previous process ${hello.process}`;
          socket.end(encodeFrame({ kind: "reject", reason, retry: true }));
          return;
        }
        const why =
          this.#mismatch(hello) ??
          (hello.process <= this.#opts.processId || (hello.holder && !holder)
            ? `process ${hello.process} is not expected to dial process ${this.#opts.processId}`
            : undefined);
        if (why !== undefined) {
          socket.end(encodeFrame({ kind: "reject", reason: why, retry: false }));
          // A misconfigured holder is turned away; the cluster itself can still form.
          if (!hello.holder) {
            reject(
              new PeerError(`process ${hello.process} ${why}; every process must run the same dataflow and flags`),
            );
          }
          return;
        }
        socket.write(encodeFrame(this.#hello()));
        this.#adopt(hello.process, socket, decoder, rest, holder);
        if (holder) return;
        accepted += 1;
        if (accepted === expected) resolve();
      };
      socket.on("data", onData);
      socket.on("error", () => undefined);
    });
    server.on("error", (err) => reject(new PeerError(`cannot listen on ${show(me)}: ${err.message}`)));
    server.listen(me.port, "0.0.0.0");
    this.#server = server;
    return promise;
  }

  async #dial(peer: number, deadline: number): Promise<void> {
    const address = this.#opts.addresses[peer] as PeerAddress;
    let delay = 50;
    let lastError = "";
    while (Date.now() < deadline) {
      this.#opts.signal?.throwIfAborted();
      try {
        const [socket, decoder, rest] = await this.#handshake(address);
        this.#adopt(peer, socket, decoder, rest, false);
        return;
      } catch (err) {
        if (err instanceof PeerError) throw err;
        lastError = (err as Error).message;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 1000);
    }
    throw new PeerError(`could not reach process ${peer} at ${show(address)}: ${lastError}`);
  }

  #handshake(address: PeerAddress): Promise<[Socket, FrameDecoder, Frame[]]> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: address.host, port: address.port });
      socket.setNoDelay(true);
      const decoder = new FrameDecoder();
      const fail = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      socket.once("error", fail);
      socket.once("close", () => fail(new Error("connection closed during handshake")));
      socket.once("connect", () => socket.write(encodeFrame(this.#hello())));
      const onData = (chunk: Buffer): void => {
        const [reply, ...rest] = decoder.push(chunk);
        if (reply === undefined) return;
        // Hold further data until #adopt listens: a flowing socket drops unheard chunks.
        socket.pause();
        socket.off("data", onData);
        socket.removeAllListeners("error");
        socket.removeAllListeners("close");
        if (reply.kind === "reject") {
          const message = `process at ${show(address)} refused us: ${reply.reason}`;
          fail(reply.retry ? new Error(message) : new PeerError(message));
        } else if (reply.kind !== "hello") {
          fail(new Error("unexpected handshake reply"));
        } else {
          const why = this.#mismatch(reply);
          if (why === undefined) resolve([socket, decoder, rest]);
          else fail(new PeerError(`process ${reply.process} ${why}`));
        }
      };
      socket.on("data", onData);
    });
  }

  #adopt(process: number, socket: Socket, decoder: FrameDecoder, early: Frame[], holder: boolean): void {
    const peer: Peer = { socket, holder, lastSeen: Date.now(), done: false };
    this.#peers.set(process, peer);
    const address = this.#show(process);
    const handle = (frame: Frame): void => {
      peer.lastSeen = Date.now();
      switch (frame.kind) {
        case "exchange":
          this.#deliver(frame.to - this.#opts.processId * this.#opts.workersPerProcess, frame.from, frame.messages);
          break;
        case "done":
          peer.done = true;
          break;
        case "abort":
          this.#lost(process, peer, `process ${process} (${address}) stopped: ${frame.reason}`);
          break;
        case "records":
        case "plan":
        case "rows":
        case "resumed":
        case "released":
        case "committed":
          if (this.#control === undefined) this.#earlyControl.push([process, frame]);
          else this.#control(process, frame);
          break;
      }
    };
    for (const frame of early) handle(frame);
    socket.resume();
    socket.on("data", (chunk: Buffer) => {
      this.bytesReceived += chunk.length;
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.#lost(process, peer, `bad data from process ${process} (${address}): ${(err as Error).message}`);
        return;
      }
      for (const frame of frames) handle(frame);
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

  /** A cluster peer lost fails the mesh; a holder lost is the recovery layer's call. */
  #lost(process: number, peer: Peer, reason: string): void {
    if (!peer.holder) {
      this.#fail(new PeerError(reason));
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
