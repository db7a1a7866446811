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
