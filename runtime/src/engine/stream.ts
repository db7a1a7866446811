/**
 * Edges between operator instances inside one worker. Items travel in batches tagged
 * with their epoch; a frontier `f` promises that no item with epoch < f will follow.
 * `Infinity` is the end of the stream.
 */
export interface Consumer {
  items(epoch: number, batch: unknown[]): void;
  frontier(frontier: number): void;
}

export class Emitter {
  readonly consumers: Consumer[] = [];
  frontier: number;
  count = 0;

  constructor(startEpoch: number) {
    this.frontier = startEpoch;
  }

  push(epoch: number, batch: unknown[]): void {
    if (batch.length === 0) return;
    this.count += batch.length;
    for (const c of this.consumers) c.items(epoch, batch);
  }

  advance(frontier: number): void {
    if (frontier <= this.frontier) return;
    this.frontier = frontier;
    for (const c of this.consumers) c.frontier(frontier);
  }
}

/** Combines the frontiers of several inputs: the output frontier is their minimum. */
export class MinFrontier {
  readonly #inputs: number[];

  constructor(inputs: number, start: number) {
    this.#inputs = new Array<number>(inputs).fill(start);
  }

  /** Records input `i` at `f`; returns the new minimum. */
  set(i: number, f: number): number {
    if (f > (this.#inputs[i] ?? Number.NEGATIVE_INFINITY)) this.#inputs[i] = f;
    return Math.min(...this.#inputs);
  }
}
