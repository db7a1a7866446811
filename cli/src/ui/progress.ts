// Deploy's stages (bundle, build, push, apply, pods ready, cluster formed) as a model that
// a renderer shows: ink with spinners on a terminal, plain lines in CI or a pipe, nothing
// when the command prints JSON.
import { seconds } from "./format.ts";

export type StageState = "running" | "done" | "failed" | "skipped";

/** Bytes moved so far of a layer transfer, for a progress bar. */
export interface Transfer {
  readonly done: number;
  readonly total: number;
}

export interface StageView {
  readonly title: string;
  state: StageState;
  detail: string;
  transfer?: Transfer;
  readonly startedAt: number;
  endedAt?: number;
}

export interface Stage {
  update(detail: string, transfer?: Transfer): void;
  done(detail?: string): void;
  fail(detail: string): void;
}

export interface Progress {
  stage(title: string, detail?: string): Stage;
  skip(title: string, why: string): void;
  /** Ends the display; call it before printing anything else. */
  close(): Promise<void>;
}

export type Render = (stages: readonly StageView[], changed: StageView) => void;

/** Holds the stages and hands every change to the renderer. */
export class Board implements Progress {
  readonly stages: StageView[] = [];
  readonly #render: Render;
  readonly #close: () => Promise<void>;
  readonly #now: () => number;

  constructor(render: Render, close: () => Promise<void> = async () => {}, now: () => number = Date.now) {
    this.#render = render;
    this.#close = close;
    this.#now = now;
  }

  stage(title: string, detail = ""): Stage {
    const view: StageView = { title, state: "running", detail, startedAt: this.#now() };
    this.stages.push(view);
    this.#render(this.stages, view);
    const change = (state: StageState, next: string | undefined, transfer?: Transfer) => {
      if (view.state !== "running") return;
      view.state = state;
      if (next !== undefined) view.detail = next;
      view.transfer = transfer;
      if (state !== "running") view.endedAt = this.#now();
      this.#render(this.stages, view);
    };
    return {
      update: (next, transfer) => change("running", next, transfer),
      done: (next) => change("done", next),
      fail: (next) => change("failed", next),
    };
  }

  skip(title: string, why: string): void {
    const now = this.#now();
    const view: StageView = { title, state: "skipped", detail: why, startedAt: now, endedAt: now };
    this.stages.push(view);
    this.#render(this.stages, view);
  }

  close(): Promise<void> {
    return this.#close();
  }
}

/** Runs one stage: done with `summary` of the result, failed (and rethrown) on an error. */
export async function step<T>(
  progress: Progress,
  title: string,
  run: (stage: Stage) => Promise<T>,
  summary: (result: T) => string,
): Promise<T> {
  const stage = progress.stage(title);
  try {
    const result = await run(stage);
    stage.done(summary(result));
    return result;
  } catch (err) {
    stage.fail("failed");
    throw err;
  }
}

const MARK: Readonly<Record<StageState, string>> = { running: "…", done: "✓", failed: "✗", skipped: "-" };

/** A stage as one line of plain text: mark, title, detail and, once done, how long it took. */
export function plainLine(view: StageView): string {
  const took =
    view.state === "done" && view.endedAt !== undefined ? ` (${seconds(view.endedAt - view.startedAt)})` : "";
  return `${MARK[view.state]} ${view.title}${view.detail === "" ? "" : `: ${view.detail}`}${took}`;
}

/** Plain lines for logs: a line when a stage ends, and when a running stage's text changes. */
export function plainRenderer(write: (line: string) => void): Render {
  const shown = new Map<StageView, string>();
  return (_stages, view) => {
    if (view.state === "running" && view.detail === "") return;
    const line = plainLine(view);
    if (shown.get(view) === line) return;
    shown.set(view, line);
    write(line);
  };
}

export type OutputMode = "ink" | "plain" | "quiet";

/** ink on an interactive terminal; plain lines in a pipe or CI; nothing for JSON output. */
export function outputMode(
  quiet: boolean,
  isTTY: boolean,
  env: Readonly<Record<string, string | undefined>>,
): OutputMode {
  if (quiet) return "quiet";
  // As ink's own check (is-in-ci) reads it: CI set to anything but false or 0.
  const ci = env.CI !== undefined && env.CI !== "false" && env.CI !== "0";
  return isTTY && !ci ? "ink" : "plain";
}

export async function createProgress(mode: OutputMode, write: (line: string) => void): Promise<Progress> {
  if (mode === "quiet") return new Board(() => {});
  if (mode === "plain") return new Board(plainRenderer(write));
  // ink and React cost a few hundred milliseconds to load: only a terminal pays for them.
  const { inkProgress } = await import("./stages.ts");
  return inkProgress();
}
