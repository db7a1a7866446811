/** Reducers that keep the larger or smaller of two values by a picked field; the first of equals wins. */

export function keepMax<V>(pick: (value: V) => unknown): (acc: V, value: V) => V {
  return (acc, value) => ((pick(value) as number) > (pick(acc) as number) ? value : acc);
}

export function keepMin<V>(pick: (value: V) => unknown): (acc: V, value: V) => V {
  return (acc, value) => ((pick(value) as number) < (pick(acc) as number) ? value : acc);
}
