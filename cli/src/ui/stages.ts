// The ink view of deploy's stages: a spinner while a stage runs, a mark when it ends, and
// a bar for layer transfers. No JSX: Node's type stripping runs these sources as they are.
import { Box, render, Text } from "ink";
import Spinner from "ink-spinner";
import { createElement as h, type ReactElement } from "react";
import { bar, bytes, seconds } from "./format.ts";
import { Board, type Progress, type StageState, type StageView } from "./progress.ts";

const MARK: Readonly<Record<Exclude<StageState, "running">, [string, string]>> = {
  done: ["✓", "green"],
  failed: ["✗", "red"],
  skipped: ["-", "gray"],
};

function StageLine({ view }: { view: StageView }): ReactElement {
  const mark =
    view.state === "running"
      ? h(Text, { color: "cyan" }, h(Spinner, { type: "dots" }))
      : h(Text, { color: MARK[view.state][1] }, MARK[view.state][0]);
  const took = view.endedAt === undefined || view.state !== "done" ? "" : seconds(view.endedAt - view.startedAt);
  const transfer =
    view.transfer === undefined || view.state !== "running"
      ? ""
      : ` ${bar(view.transfer.done, view.transfer.total)} ${bytes(view.transfer.done)}/${bytes(view.transfer.total)}`;
  return h(
    Box,
    { gap: 1 },
    mark,
    // Wide enough for the longest title, "cluster formed", so the details line up.
    h(Box, { minWidth: 14 }, h(Text, { bold: view.state === "running" }, view.title)),
    h(Text, { dimColor: view.state !== "running" && view.state !== "failed" }, `${view.detail}${transfer}`),
    ...(took === "" ? [] : [h(Text, { key: "took", dimColor: true }, took)]),
  );
}

export function Stages({ stages }: { stages: readonly StageView[] }): ReactElement {
  return h(Box, { flexDirection: "column" }, ...stages.map((view, i) => h(StageLine, { key: i, view })));
}

export function inkProgress(stdout: NodeJS.WriteStream = process.stdout): Progress {
  const app = render(h(Stages, { stages: [] }), { stdout, patchConsole: false });
  return new Board(
    (stages) => app.rerender(h(Stages, { stages: [...stages] })),
    async () => {
      app.unmount();
      await app.waitUntilExit();
    },
  );
}
