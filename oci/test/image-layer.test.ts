import { extract, type Header } from "tar-stream";
import { expect, test } from "vitest";
import { appLayer, tarLayer } from "../src/layer.ts";

async function headers(tar: Buffer): Promise<Header[]> {
  const out: Header[] = [];
  const ex = extract();
  const done = new Promise<void>((ok, fail) => {
    ex.on("entry", (header, stream, next) => {
      out.push(header);
      stream.on("end", next);
      stream.resume();
    });
    ex.on("finish", ok);
    ex.on("error", fail);
  });
  ex.end(tar);
  await done;
  return out;
}

const code = new TextEncoder().encode("export const flow = 1;\n");
const helper = new TextEncoder().encode("export const x = 2;\n");

test("building the same files twice gives the same bytes and digest, in any input order", async () => {
  const a = await appLayer([
    { path: "flow.js", contents: code },
    { path: "lib/helper.js", contents: helper },
  ]);
  const b = await appLayer([
    { path: "lib/helper.js", contents: helper },
    { path: "flow.js", contents: code },
  ]);
  expect(b.digest).toBe(a.digest);
  expect(b.tar.equals(a.tar)).toBe(true);
  expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
});

test("different contents give a different digest", async () => {
  const a = await appLayer([{ path: "flow.js", contents: code }]);
  const b = await appLayer([{ path: "flow.js", contents: helper }]);
  expect(b.digest).not.toBe(a.digest);
});

test("entries are sorted, under app/, owned by root (read-only for the user), with a fixed mtime", async () => {
  const { tar } = await appLayer([
    { path: "lib/helper.js", contents: helper },
    { path: "flow.js", contents: code },
  ]);
  const entries = await headers(tar);
  expect(entries.map((h) => h.name)).toEqual(["app/", "app/flow.js", "app/lib/", "app/lib/helper.js"]);
  for (const h of entries) {
    expect(h.uid).toBe(0);
    expect(h.gid).toBe(0);
    expect(h.mtime?.getTime()).toBe(0);
  }
  expect(entries.map((h) => h.mode)).toEqual([0o755, 0o644, 0o755, 0o644]);
});

test("tarLayer adds missing parents, keeps modes, owners and link targets, and lets a later entry win", async () => {
  const { tar } = await tarLayer([
    { path: "usr/lib/x86_64-linux-gnu/libc.so.6", type: "file", contents: code, mode: 0o755 },
    { path: "lib", type: "symlink", target: "usr/lib" },
    { path: "home/nonroot", type: "directory", mode: 0o700, uid: 65532, gid: 65532 },
    { path: "etc/passwd", type: "file", contents: code },
    { path: "etc/passwd", type: "file", contents: helper },
  ]);
  const entries = await headers(tar);
  expect(entries.map((h) => [h.name, h.type, h.mode, h.uid, h.linkname ?? null])).toEqual([
    ["etc/", "directory", 0o755, 0, null],
    ["etc/passwd", "file", 0o644, 0, null],
    ["home/", "directory", 0o755, 0, null],
    ["home/nonroot/", "directory", 0o700, 65532, null],
    ["lib", "symlink", 0o777, 0, "usr/lib"],
    ["usr/", "directory", 0o755, 0, null],
    ["usr/lib/", "directory", 0o755, 0, null],
    ["usr/lib/x86_64-linux-gnu/", "directory", 0o755, 0, null],
    ["usr/lib/x86_64-linux-gnu/libc.so.6", "file", 0o755, 0, null],
  ]);
  expect(entries[1]?.size).toBe(helper.length);
});
