/**
 * Runs tasks one after another. Synchronous tasks run at once while nothing is pending,
 * so sinks that write synchronously (files, stdout) pay no promise per batch; a task
 * that returns a promise makes the following ones wait for it.
 */
export class Serial {
  #tail: Promise<void> | undefined;
  #failed = false;

  private readonly onError: (err: unknown) => void;
  private readonly onIdle: () => void;

  /** `onIdle` runs when asynchronous work finishes, so a sleeping worker looks again. */
  constructor(onError: (err: unknown) => void, onIdle: () => void) {
    this.onError = onError;
    this.onIdle = onIdle;
  }

  run(task: () => void | Promise<void>): void {
    if (this.#failed) return;
    if (this.#tail === undefined) {
      let result: void | Promise<void>;
      try {
        result = task();
      } catch (err) {
        this.#fail(err);
        return;
      }
      if (result instanceof Promise) this.#track(result);
      return;
    }
    this.#track(this.#tail.then(task));
  }

  get idle(): boolean {
    return this.#tail === undefined;
  }

  /** Resolves once every task queued so far has run. */
  async settled(): Promise<void> {
    while (this.#tail !== undefined) await this.#tail;
  }

  #track(promise: Promise<void>): void {
    const tail: Promise<void> = promise.then(
      () => {
        if (this.#tail === tail) {
          this.#tail = undefined;
          this.onIdle();
        }
      },
      (err: unknown) => {
        if (this.#tail === tail) this.#tail = undefined;
        this.#fail(err);
      },
    );
    this.#tail = tail;
  }

  #fail(err: unknown): void {
    this.#failed = true;
    this.onError(err);
  }
}
