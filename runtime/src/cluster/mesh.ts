/**
 * The TCP mesh between the processes of one cluster: one connection per pair (the
 * higher process index dials the lower one), a hello that checks both sides run the
 * same dataflow with the same shape, heartbeats, and fate-sharing: a peer that
 * vanishes — its socket closes without a "done" frame, or it stops sending heartbeats —
 * fails every other process within seconds, not only when it is next sent to.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { ExchangeMessage, Transport } from "../engine/transport.ts";
import { encodeFrame, type Frame, FrameDecoder, type Hello } from "./frames.ts";

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface MeshOptions {
  readonly processId: number;
  readonly addresses: readonly PeerAddress[];
  readonly workersPerProcess: number;
  readonly flowId: string;
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
  lastSeen: number;
  done: boolean;
}

export class ProcessMesh {
  readonly #opts: MeshOptions;
  readonly #peers = new Map<number, Peer>();
  readonly #receivers = new Map<number, (from: number, messages: ExchangeMessage[]) => void>();
  /** Messages that arrived before their worker listened: peers may start first. */
  readonly #early = new Map<number, Array<[number, ExchangeMessage[]]>>();
  readonly #failureListeners: Array<(err: Error) => void> = [];
  readonly #drainListeners: Array<() => void> = [];
  #server: Server | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #failure: Error | undefined;
  #closing = false;
  bytesSent = 0;
  bytesReceived = 0;

  private constructor(opts: MeshOptions) {
    this.#opts = opts;
  }

  get processCount(): number {
    return this.#opts.addresses.length;
  }

  get connectedPeers(): number {
    return this.#peers.size;
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

  /** Called when a congested link drains, so workers can resume reading sources. */
  onDrain(listener: () => void): void {
    this.#drainListeners.push(listener);
  }

  /** Whether any link has more queued than the socket buffers: sources should pause. */
  congested(): boolean {
    for (const peer of this.#peers.values()) if (peer.socket.writableNeedDrain) return true;
    return false;
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
        this.#send(process, { kind: "exchange", from: me, to, messages });
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
    const me = addresses[processId];
    if (me === undefined) {
      throw new RangeError(`process id ${processId} is not an index of the ${addresses.length} addresses`);
    }
    if (addresses.length === 1) return;
    const timeoutMs = this.#opts.connectTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const accepted = this.#listen(me);
    const dialed = Array.from({ length: processId }, (_, peer) => this.#dial(peer, deadline));
    const timeout = sleep(timeoutMs, undefined, { ref: false, signal: this.#opts.signal }).then(() => {
      const missing = addresses.map((_, i) => i).filter((i) => i !== processId && !this.#peers.has(i));
      throw new PeerError(
        `timed out after ${timeoutMs} ms waiting for process(es) ${missing.map((i) => `${i} (${show(addresses[i])})`).join(", ")}; ` +
          "check that every process runs with the same address list and that they can reach each other",
      );
    });
    await Promise.race([Promise.all([accepted, ...dialed]), timeout]);
    const heartbeatMs = this.#opts.heartbeatMs ?? 1000;
    const peerTimeoutMs = this.#opts.peerTimeoutMs ?? heartbeatMs * 5;
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      for (const [process, peer] of this.#peers) {
        if (!peer.done && now - peer.lastSeen > peerTimeoutMs) {
          this.#fail(
            new PeerError(`process ${process} (${show(addresses[process])}) sent nothing for ${peerTimeoutMs} ms`),
          );
          return;
        }
        this.#send(process, { kind: "heartbeat" });
      }
    }, heartbeatMs);
    this.#heartbeat.unref();
  }

  #hello(): Hello {
    return {
      kind: "hello",
      process: this.#opts.processId,
      processCount: this.#opts.addresses.length,
      workersPerProcess: this.#opts.workersPerProcess,
      flowId: this.#opts.flowId,
    };
  }

  /** Explains how a peer's hello differs from ours, or returns undefined if it fits. */
  #mismatch(hello: Hello): string | undefined {
    const mine = this.#hello();
    if (hello.flowId !== mine.flowId)
      return `runs dataflow ${JSON.stringify(hello.flowId)}, not ${JSON.stringify(mine.flowId)}`;
    if (hello.processCount !== mine.processCount)
      return `has ${hello.processCount} addresses, not ${mine.processCount}`;
    if (hello.workersPerProcess !== mine.workersPerProcess) {
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
        const why = this.#mismatch(hello);
        if (why !== undefined || hello.process <= this.#opts.processId || this.#peers.has(hello.process)) {
          const reason = why ?? `process ${hello.process} is not expected to dial process ${this.#opts.processId}`;
          socket.end(encodeFrame({ kind: "reject", reason }));
          reject(
            new PeerError(`process ${hello.process} ${reason}; every process must run the same dataflow and flags`),
          );
          return;
        }
        socket.write(encodeFrame(this.#hello()));
        this.#adopt(hello.process, socket, decoder, rest);
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
        this.#adopt(peer, socket, decoder, rest);
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
          fail(new PeerError(`process at ${show(address)} refused us: ${reply.reason}`));
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

  #adopt(process: number, socket: Socket, decoder: FrameDecoder, early: Frame[]): void {
    const peer: Peer = { socket, lastSeen: Date.now(), done: false };
    this.#peers.set(process, peer);
    const address = show(this.#opts.addresses[process]);
    const handle = (frame: Frame): void => {
      peer.lastSeen = Date.now();
      if (frame.kind === "exchange") {
        this.#deliver(frame.to - this.#opts.processId * this.#opts.workersPerProcess, frame.from, frame.messages);
      } else if (frame.kind === "done") {
        peer.done = true;
      } else if (frame.kind === "abort") {
        this.#fail(new PeerError(`process ${process} (${address}) stopped: ${frame.reason}`));
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
        this.#fail(new PeerError(`bad data from process ${process} (${address}): ${(err as Error).message}`));
        return;
      }
      for (const frame of frames) handle(frame);
    });
    socket.on("drain", () => {
      for (const listener of this.#drainListeners) listener();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (!peer.done && !this.#closing) {
        this.#fail(
          new PeerError(
            `lost connection to process ${process} (${address}); the cluster stops so that it can restart and resume together`,
          ),
        );
      }
    });
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
