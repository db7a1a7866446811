/**
 * Moves items to the worker that must process them (the owner of a key, of a sink
 * partition, or the next one in turn). Items for this worker are delivered at once;
 * the rest go through the transport, followed by this worker's frontier, so the
 * receiver knows when every sender has finished an epoch.
 */

import { type Consumer, MinFrontier } from "./stream.ts";
import { type ExchangeMessage, itemsOf } from "./transport.ts";

export interface ExchangeContext {
  readonly index: number;
  readonly count: number;
  readonly startEpoch: number;
  send(to: number, message: ExchangeMessage): void;
}

export class Exchange implements Consumer {
  readonly #senders: MinFrontier;
  #frontier: number;

  readonly id: number;
  private readonly ctx: ExchangeContext;
  private readonly route: (item: unknown) => number;
  private readonly target: Consumer;
  constructor(id: number, ctx: ExchangeContext, route: (item: unknown) => number, target: Consumer) {
    this.id = id;
    this.ctx = ctx;
    this.route = route;
    this.target = target;
    this.#senders = new MinFrontier(ctx.count, ctx.startEpoch);
    this.#frontier = ctx.startEpoch;
  }

  items(epoch: number, batch: unknown[]): void {
    const { count, index } = this.ctx;
    if (count === 1) {
      this.target.items(epoch, batch);
      return;
    }
    const parts: unknown[][] = Array.from({ length: count }, () => []);
    for (const item of batch) (parts[this.route(item)] as unknown[]).push(item);
    parts.forEach((items, to) => {
      if (items.length === 0) return;
      if (to === index) this.target.items(epoch, items);
      else this.ctx.send(to, { kind: "items", exchange: this.id, epoch, items });
    });
  }

  frontier(frontier: number): void {
    const { count, index } = this.ctx;
    for (let to = 0; to < count; to++) {
      if (to !== index) this.ctx.send(to, { kind: "frontier", exchange: this.id, frontier });
    }
    this.receiveFrontier(index, frontier);
  }

  receive(from: number, message: ExchangeMessage): void {
    if (message.kind === "frontier") this.receiveFrontier(from, message.frontier);
    else this.target.items(message.epoch, itemsOf(message));
  }

  receiveFrontier(from: number, frontier: number): void {
    const min = this.#senders.set(from, frontier);
    if (min > this.#frontier) {
      this.#frontier = min;
      this.target.frontier(min);
    }
  }
}
