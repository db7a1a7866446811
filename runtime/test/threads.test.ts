// The links between worker threads, driven with real MessageChannels in one thread: the
// credits that bound what a sender may have in flight, ordering, and the process link.
import { setImmediate as tick } from "node:timers/promises";
import { MessageChannel } from "node:worker_threads";
import { expect, test } from "vitest";
import { type ExchangeMessage, itemsOf, packMessages } from "../src/engine/transport.ts";
import { ACK_EVERY, MAX_IN_FLIGHT, ThreadLinks, type ThreadToProcess } from "../src/process/thread-links.ts";

function pair() {
  const peer = new MessageChannel();
  const procA = new MessageChannel();
  const procB = new MessageChannel();
  const aborted: string[] = [];
  const a = new ThreadLinks({ index: 4, process: procA.port2, peers: new Map([[5, peer.port1]]) }, (r) =>
    aborted.push(r),
  );
  const b = new ThreadLinks({ index: 5, process: procB.port2, peers: new Map([[4, peer.port2]]) }, (r) =>
    aborted.push(r),
  );
  const close = () => {
    a.close();
    b.close();
    procA.port1.close();
    procB.port1.close();
  };
  return { a, b, procA: procA.port1, aborted, close };
}

const batch = (n: number): ExchangeMessage[] => [{ kind: "items", exchange: 0, epoch: 1, items: [n] }];

test("a sender pauses past MAX_IN_FLIGHT unacknowledged batches and hears when the receiver catches up", async () => {
  const { a, b, close } = pair();
  const got: [number, unknown][] = [];
  b.listen((from, messages) => {
    for (const m of messages) if (m.kind === "items") got.push([from, m.items[0]]);
  });
  let drained = 0;
  a.onDrain(() => drained++);
  for (let i = 0; i <= MAX_IN_FLIGHT; i++) a.send(5, batch(i));
  expect(a.congested()).toBe(true);
  // The receiver's acknowledgements come back through the event loop.
  for (let i = 0; i < 20 && a.congested(); i++) await tick();
  expect(a.congested()).toBe(false);
  expect(drained).toBe(1);
  expect(got).toHaveLength(MAX_IN_FLIGHT + 1);
  expect(got.every(([from]) => from === 4)).toBe(true);
  expect(got.map(([, n]) => n)).toEqual(Array.from({ length: MAX_IN_FLIGHT + 1 }, (_, i) => i));
  close();
});

test("batches that arrive before the worker listens are kept, in order", async () => {
  const { a, b, close } = pair();
  for (let i = 0; i < 3; i++) a.send(5, batch(i));
  await tick();
  await tick();
  const got: unknown[] = [];
  b.listen((_from, messages) => {
    for (const m of messages) if (m.kind === "items") got.push(m.items[0]);
  });
  expect(got).toEqual([0, 1, 2]);
  close();
});

test("the process link: sends for other processes, mesh congestion, items from the mesh acknowledged, abort", async () => {
  const { a, procA, aborted, close } = pair();
  const toProcess: ThreadToProcess[] = [];
  procA.on("message", (m: ThreadToProcess) => toProcess.push(m));
  a.send(9, batch(1));
  let drained = 0;
  a.onDrain(() => drained++);
  procA.postMessage({ k: "congested", value: true });
  await tick();
  await tick();
  expect(toProcess).toEqual([{ k: "send", to: 9, messages: batch(1) }]);
  expect(a.congested()).toBe(true);
  procA.postMessage({ k: "congested", value: false });
  for (let i = 0; i < ACK_EVERY; i++) procA.postMessage({ k: "exchange", from: 9, messages: batch(i) });
  procA.postMessage({ k: "abort", reason: "process 1 was lost" });
  for (let i = 0; i < 20 && (aborted.length === 0 || toProcess.length < 2); i++) await tick();
  expect(a.congested()).toBe(false);
  expect(drained).toBe(1);
  expect(toProcess.at(-1)).toEqual({ k: "ack", n: ACK_EVERY });
  expect(aborted).toEqual(["process 1 was lost"]);
  close();
});

test("keyed batches cross as two columns and come back as the same pairs; other batches as they are", () => {
  const pairs: ExchangeMessage = {
    kind: "items",
    exchange: 2,
    epoch: 7,
    items: [
      ["a", 1],
      ["b", { n: 2 }],
    ],
  };
  const mixed: ExchangeMessage = { kind: "items", exchange: 2, epoch: 7, items: [["a", 1], "b"] };
  // A hole is not a value: packing would turn it into undefined.
  const holed: ExchangeMessage = {
    kind: "items",
    exchange: 2,
    epoch: 7,
    items: [["a", 1], new Array(2).fill("x", 0, 1)],
  };
  const numbered: ExchangeMessage = { kind: "items", exchange: 2, epoch: 7, items: [[1, 2]] };
  const frontier: ExchangeMessage = { kind: "frontier", exchange: 2, frontier: 8 };
  const [packed, ...rest] = packMessages([pairs, mixed, holed, numbered, frontier]);
  expect(packed).toEqual({ kind: "pairs", exchange: 2, epoch: 7, keys: ["a", "b"], values: [1, { n: 2 }] });
  expect(rest).toEqual([mixed, holed, numbered, frontier]);
  expect(itemsOf(structuredClone(packed) as Extract<ExchangeMessage, { kind: "pairs" }>)).toEqual(pairs.items);
  expect(itemsOf(mixed as Extract<ExchangeMessage, { kind: "items" }>)).toBe(mixed.items);
});
