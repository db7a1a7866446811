/**
 * How workers exchange items and frontiers. Messages between two workers arrive in the
 * order they were sent; that order is what makes a frontier message safe (every item
 * sent before it has arrived).
 */
export type ExchangeMessage =
  | { readonly kind: "items"; readonly exchange: number; readonly epoch: number; readonly items: unknown[] }
  | { readonly kind: "frontier"; readonly exchange: number; readonly frontier: number };

export interface Transport {
  send(to: number, messages: ExchangeMessage[]): void;
  listen(receive: (from: number, messages: ExchangeMessage[]) => void): void;
}

/** Workers in one thread: delivery is a push onto the receiver's inbox. */
export class LocalMesh {
  readonly #receivers: Array<((from: number, messages: ExchangeMessage[]) => void) | undefined>;

  readonly workerCount: number;
  constructor(workerCount: number) {
    this.workerCount = workerCount;
    this.#receivers = new Array(workerCount).fill(undefined);
  }

  transport(index: number): Transport {
    return {
      send: (to, messages) => {
        const receive = this.#receivers[to];
        if (receive === undefined) throw new Error(`worker ${to} is not listening`);
        receive(index, messages);
      },
      listen: (receive) => {
        this.#receivers[index] = receive;
      },
    };
  }
}
