// What a process restored its empty recovery directory from, as /status serves it: the
// operator reads it through the pod proxy to tell it as events on the Dataflow.
import type { AddressInfo } from "node:net";
import { expect, test } from "vitest";
import { ProcessView, serveApi } from "../src/api/server.ts";

const FELL_BACK =
  "backup set 20261205T101500Z is unusable: sets/20261205T101500Z/process-1/part-0.sqlite3 is truncated or padded " +
  "(100 bytes, the manifest says 4096); falling back to set 20261205T101000Z";

test("/status has no restore field until the process restored, then what it restored from and every fallback", async () => {
  const view = new ProcessView(2, 3);
  expect(view.status()).not.toHaveProperty("restore");
  view.restored({ from: "backup set 20261205T101000Z", epoch: 41, fellBack: [FELL_BACK] });
  const server = await serveApi(0, view);
  try {
    const { port } = server.address() as AddressInfo;
    const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as Record<string, unknown>;
    expect(status).toMatchObject({
      process: 2,
      processes: 3,
      restore: { from: "backup set 20261205T101000Z", epoch: 41, fellBack: [FELL_BACK] },
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
