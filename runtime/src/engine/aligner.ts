/**
 * Epoch alignment for steps that snapshot. Items of the lowest open epoch (the input
 * frontier) are processed as they arrive; items of later epochs, which only a faster
 * worker can send, wait until the frontier reaches them. So a snapshot of epoch `e`
 * holds the effect of every item of epochs <= e and of none after.
 */
export interface EpochHandler {
  process(epoch: number, batch: unknown[]): void;
  /** Every item of `epoch` has been processed: snapshot it. */
  closeEpoch(epoch: number): void;
  /** The input has ended; `lastEpoch` is the epoch of the end-of-stream work. */
  end(lastEpoch: number): void;
}

export class EpochAligner {
  frontier: number;
  readonly #pending = new Map<number, unknown[][]>();

  private readonly handler: EpochHandler;
  constructor(start: number, handler: EpochHandler) {
    this.handler = handler;
    this.frontier = start;
  }

  items(epoch: number, batch: unknown[]): void {
    if (epoch <= this.frontier) {
      this.handler.process(this.frontier, batch);
      return;
    }
    const waiting = this.#pending.get(epoch);
    if (waiting === undefined) this.#pending.set(epoch, [batch]);
    else waiting.push(batch);
  }

  advance(frontier: number): void {
    if (frontier <= this.frontier) return;
    let current = this.frontier;
    this.handler.closeEpoch(current);
    for (const epoch of [...this.#pending.keys()].sort((a, b) => a - b)) {
      if (epoch >= frontier) break;
      current = epoch;
      this.#drain(epoch);
      this.handler.closeEpoch(epoch);
    }
    if (frontier === Number.POSITIVE_INFINITY) {
      this.frontier = current;
      this.handler.end(current);
      this.frontier = frontier;
      return;
    }
    this.frontier = frontier;
    this.#drain(frontier);
  }

  #drain(epoch: number): void {
    const batches = this.#pending.get(epoch);
    if (batches === undefined) return;
    this.#pending.delete(epoch);
    for (const batch of batches) this.handler.process(epoch, batch);
  }
}
