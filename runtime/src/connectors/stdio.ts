/**
 * Console connectors, as Bytewax's `bytewax.connectors.stdio`: `StdOutSink` prints
 * items. `StdInSource` (which Bytewax lacks) reads lines, so a dataflow can sit in a
 * shell pipeline.
 */
import { once } from "node:events";
import { createInterface, type Interface } from "node:readline";
import { inspect } from "node:util";
import {
  checkBatchSize,
  DEFAULT_BATCH_SIZE,
  type DynamicSource,
  type NextBatch,
  type StatelessSourcePartition,
} from "../inputs.ts";
import type { DynamicSink, StatelessSinkPartition } from "../outputs.ts";

/** A string as it is; anything else on one line, as `util.inspect` shows it. */
function line(item: unknown): string {
  return typeof item === "string"
    ? item
    : inspect(item, { breakLength: Number.POSITIVE_INFINITY, compact: true, depth: Number.POSITIVE_INFINITY });
}

/**
 * Prints each item on its own line to this process's stdout. Every worker prints; each
 * batch goes out in one write of whole lines, so lines from different workers never mix.
 * At-least-once: items of the resumed epoch are printed again after a restart.
 */
export class StdOutSink implements DynamicSink<unknown> {
  build(): StatelessSinkPartition<unknown> {
    return {
      writeBatch: async (items) => {
        if (items.length === 0) return;
        let text = "";
        for (const item of items) text += `${line(item)}\n`;
        if (!process.stdout.write(text)) await once(process.stdout, "drain");
      },
    };
  }
}

/** Lines of stdin, read by one partition; pauses the stream while a batch's worth is waiting. */
class StdInPartition implements StatelessSourcePartition<string> {
  readonly #batchSize: number;
  readonly #lines: Interface;
  #ready: string[] = [];
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(batchSize: number) {
    this.#batchSize = batchSize;
    this.#lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
    this.#lines.on("line", (text) => {
      this.#ready.push(text);
      if (this.#ready.length >= this.#batchSize) this.#lines.pause();
      this.#notify();
    });
    this.#lines.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
    process.stdin.on("error", (err) => {
      this.#error = err;
      this.#notify();
    });
  }

  nextBatch(): NextBatch<string> {
    const batch = this.#take();
    if (batch !== undefined) return batch;
    // Nothing buffered: let the engine wait for the next line instead of polling.
    return new Promise<string[] | null>((resolve, reject) => {
      this.#wake = () => {
        try {
          resolve(this.#take() ?? []);
        } catch (err) {
          reject(err);
        }
      };
    });
  }

  close(): void {
    this.#lines.close();
  }

  /** The buffered lines, `null` at end of input, `undefined` when there is nothing yet. */
  #take(): string[] | null | undefined {
    if (this.#error !== undefined) throw new Error(`StdInSource: reading stdin failed: ${this.#error.message}`);
    if (this.#ready.length > 0) {
      const batch = this.#ready.splice(0, this.#batchSize);
      if (!this.#ended) this.#lines.resume();
      return batch;
    }
    return this.#ended ? null : undefined;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

export interface StdInSourceOptions {
  /** Lines per batch at most (default 1000). */
  readonly batchSize?: number;
}

/**
 * Reads stdin line by line (without line endings) until it closes. Only worker 0 reads;
 * the others end at once. Stdin cannot be rewound, so it is at-most-once on resume.
 */
export class StdInSource implements DynamicSource<string> {
  readonly batchSize: number;

  constructor(opts: StdInSourceOptions = {}) {
    this.batchSize = checkBatchSize("StdInSource", opts.batchSize ?? DEFAULT_BATCH_SIZE);
  }

  build(_stepId: string, workerIndex: number): StatelessSourcePartition<string> {
    return workerIndex === 0 ? new StdInPartition(this.batchSize) : { nextBatch: () => null };
  }
}
