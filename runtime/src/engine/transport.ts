/**
 * How workers exchange items and frontiers. Messages between two workers arrive in the
 * order they were sent; that order is what makes a frontier message safe (every item
 * sent before it has arrived).
 */
export type ExchangeMessage =
  | { readonly kind: "items"; readonly exchange: number; readonly epoch: number; readonly items: unknown[] }
  /** Keyed items, [key, value] pairs, as two columns: what crosses a thread or a socket. */
  | {
      readonly kind: "pairs";
      readonly exchange: number;
      readonly epoch: number;
      readonly keys: string[];
      readonly values: unknown[];
    }
  | { readonly kind: "frontier"; readonly exchange: number; readonly frontier: number };

export interface Transport {
  send(to: number, messages: ExchangeMessage[]): void;
  listen(receive: (from: number, messages: ExchangeMessage[]) => void): void;
}

/**
 * Messages about to be copied to another thread or process. A batch of [key, value]
 * pairs (every keyed stream) goes as a column of keys and one of values: cloning two
 * flat arrays costs a fraction of cloning one small array per item.
 */
export function packMessages(messages: ExchangeMessage[]): ExchangeMessage[] {
  return messages.map((m) => {
    if (m.kind !== "items") return m;
    const { items } = m;
    const keys = new Array<string>(items.length);
    const values = new Array<unknown>(items.length);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== "string" || !(1 in item)) return m;
      keys[i] = item[0];
      values[i] = item[1];
    }
    return { kind: "pairs", exchange: m.exchange, epoch: m.epoch, keys, values };
  });
}

/** The items of an `items` or `pairs` message. */
export function itemsOf(message: Extract<ExchangeMessage, { kind: "items" | "pairs" }>): unknown[] {
  if (message.kind === "items") return message.items;
  const { keys, values } = message;
  const items = new Array<unknown>(keys.length);
  for (let i = 0; i < keys.length; i++) items[i] = [keys[i], values[i]];
  return items;
}
