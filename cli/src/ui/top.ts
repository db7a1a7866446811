// The live view of `df top`: a frame (steps.ts, pure) re-read every interval, with keys to
// quit, sort and select a step. No JSX: Node's type stripping runs these sources as they are.
import { render, Text, useApp, useInput } from "ink";
import { createElement as h, type ReactElement, useEffect, useState } from "react";
import {
  EMPTY_VIEW,
  type ProcessReading,
  SORTS,
  type Sort,
  type StepsView,
  sortSteps,
  stepsView,
  topFrame,
} from "./steps.ts";

/** Throughput values kept per step for its sparkline. */
const HISTORY = 30;

export interface TopOptions {
  readonly dataflow: string;
  readonly namespace: string;
  readonly intervalMs: number;
  readonly read: () => Promise<readonly ProcessReading[]>;
}

interface Shown {
  readonly view: StepsView;
  readonly history: ReadonlyMap<string, readonly number[]>;
  readonly at: Date;
  readonly error?: string;
}

/** The history with each step's latest throughput appended. */
export function withThroughput(
  history: ReadonlyMap<string, readonly number[]>,
  view: StepsView,
): Map<string, readonly number[]> {
  const next = new Map<string, readonly number[]>();
  for (const s of view.steps) next.set(s.step, [...(history.get(s.step) ?? []), s.throughput].slice(-HISTORY));
  return next;
}

function Top({ opts, onShown }: { opts: TopOptions; onShown: (view: StepsView) => void }): ReactElement {
  const { exit } = useApp();
  const [shown, setShown] = useState<Shown>({
    view: EMPTY_VIEW,
    history: new Map(),
    at: new Date(),
  });
  const [sort, setSort] = useState<Sort>("dataflow");
  const [selected, setSelected] = useState<string | undefined>(undefined);
  useEffect(() => {
    let stopped = false;
    // The last refresh's readings: a process's CPU is the time it used since then.
    let before: readonly ProcessReading[] = [];
    const refresh = async (): Promise<void> => {
      try {
        const readings = await opts.read();
        const view = stepsView(readings, before);
        before = readings;
        if (!stopped) setShown((before) => ({ view, history: withThroughput(before.history, view), at: new Date() }));
      } catch (err) {
        if (!stopped)
          setShown((before) => ({
            ...before,
            at: new Date(),
            error: err instanceof Error ? err.message : String(err),
          }));
      }
    };
    void refresh();
    const timer = setInterval(() => void refresh(), opts.intervalMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [opts]);
  useInput((input, key) => {
    if (input === "q" || (key.ctrl && input === "c")) exit();
    else if (input === "s") setSort((s) => SORTS[(SORTS.indexOf(s) + 1) % SORTS.length] as Sort);
    else if (key.upArrow || key.downArrow) {
      const ids = sortSteps(shown.view.steps, sort).map((s) => s.step);
      const at = selected === undefined ? -1 : ids.indexOf(selected);
      const next = key.downArrow ? Math.min(ids.length - 1, at + 1) : Math.max(0, at - 1);
      setSelected(ids[next]);
    } else if (key.escape) setSelected(undefined);
  });
  onShown(shown.view);
  const frame = topFrame(shown.view, {
    dataflow: opts.dataflow,
    namespace: opts.namespace,
    now: shown.at,
    sort,
    selected,
    history: shown.history,
    interactive: true,
  });
  return h(Text, null, shown.error === undefined ? frame : `${frame}\n\nlast refresh failed: ${shown.error}`);
}

export interface Terminal {
  readonly stdout: NodeJS.WriteStream;
  readonly stdin: NodeJS.ReadStream;
}

/** Runs the view full screen (the terminal's alternate screen) until q or Ctrl-C; returns what it showed last. */
export async function runTop(
  opts: TopOptions,
  { stdout, stdin }: Terminal = { stdout: process.stdout, stdin: process.stdin },
): Promise<StepsView> {
  let last: StepsView = EMPTY_VIEW;
  stdout.write("\u001b[?1049h\u001b[H");
  try {
    const app = render(
      h(Top, {
        opts,
        onShown: (view) => {
          last = view;
        },
      }),
      // Interactive whenever the terminal is one: ink would otherwise print only the last
      // frame where CI is set, and df top (which refuses without a TTY) is a live view.
      { stdout, stdin, patchConsole: false, exitOnCtrlC: false, interactive: Boolean(stdout.isTTY) },
    );
    await app.waitUntilExit();
    return last;
  } finally {
    stdout.write("\u001b[?1049l");
  }
}
