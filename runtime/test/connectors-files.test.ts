import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, test } from "vitest";
import { Dataflow } from "waxflow";
import { CSVSource, DirSink, DirSource, FileSink, FileSource } from "waxflow/connectors/files";
import type { NextBatch, StatefulSourcePartition } from "waxflow/inputs";
import * as op from "waxflow/operators";
import { initRecoveryDirectory } from "waxflow/recovery";
import { AbortExecution, clusterMain, runMain, TestingSink, TestingSource } from "waxflow/testing";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "waxflow-files-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Calls `nextBatch` until the partition ends, awaiting I/O as the engine does. */
async function drain<X, S>(part: StatefulSourcePartition<X, S>, max = Number.POSITIVE_INFINITY): Promise<X[]> {
  const out: X[] = [];
  while (out.length < max) {
    const batch: Awaited<NextBatch<X>> = await part.nextBatch();
    if (batch === null) break;
    out.push(...batch);
  }
  return out;
}

test("FileSource reads lines through a dataflow: blank lines kept, CRLF and missing final newline handled", async () => {
  const path = join(tempDir(), "in.txt");
  writeFileSync(path, "one\n\ntwo\r\n\n\nthree\nfour");
  const out: string[] = [];
  const flow = new Dataflow("files");
  op.output("out", op.input("inp", flow, new FileSource(path, { batchSize: 2 })), new TestingSink(out));
  await runMain(flow);
  expect(out).toEqual(["one", "", "two", "", "", "three", "four"]);
});

test("FileSource resumes from a mid-file byte offset with multibyte UTF-8", async () => {
  const path = join(tempDir(), "utf8.txt");
  const lines = ["héllo", "日本語", "emoji 🎉", "naïve", "end"];
  writeFileSync(path, `${lines.join("\n")}\n`);
  const source = new FileSource(path, { batchSize: 1 });
  expect(source.listParts()).toEqual([path]);

  const first = source.buildPart("test", path, undefined);
  expect(await first.nextBatch()).toEqual(["héllo"]);
  expect(await first.nextBatch()).toEqual(["日本語"]);
  const resume = first.snapshot();
  // A byte offset, not a character count: "héllo\n" is 7 bytes, "日本語\n" is 10.
  expect(resume).toBe(Buffer.byteLength("héllo\n日本語\n"));
  expect(await first.nextBatch()).toEqual(["emoji 🎉"]);
  first.close?.();

  const resumed = source.buildPart("test", path, resume);
  expect(resumed.snapshot()).toBe(resume);
  expect(await drain(resumed)).toEqual(["emoji 🎉", "naïve", "end"]);
  expect(resumed.snapshot()).toBe(readFileSync(path).length);
});

test("FileSource splits lines that span read chunks, multibyte characters cut in half included", async () => {
  const path = join(tempDir(), "long.txt");
  const long = "é".repeat(100_001); // 200 KB: several chunks, boundaries inside characters
  writeFileSync(path, `short\n${long}\nlast\n`);
  const part = new FileSource(path, { batchSize: 10 }).buildPart("test", path, undefined);
  const got = await drain(part);
  expect(got.map((line) => line.length)).toEqual([5, long.length, 4]);
  expect(got[1]).toBe(long);
});

test("FileSource: ASCII and non-ASCII reads, a CRLF cut between two reads; each snapshot is the next line's byte offset", async () => {
  const path = join(tempDir(), "mixed.txt");
  // The first line's \r is the first read's last byte and its \n the second read's first.
  const lines = [
    "a".repeat(64 * 1024 - 1),
    "ascii",
    "zoë — ünïcödé",
    ...Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? `é${i}` : `line ${i}`)),
  ];
  writeFileSync(path, `${lines.join("\r\n")}\r\n`);
  const source = new FileSource(path, { batchSize: 100 });
  const part = source.buildPart("test", path, undefined);
  const got: string[] = [];
  const snapshots: Array<[number, number]> = [];
  for (let batch = await part.nextBatch(); batch !== null; batch = await part.nextBatch()) {
    got.push(...batch);
    snapshots.push([got.length, part.snapshot()]);
  }
  expect(got).toEqual(lines);
  for (const [read, offset] of snapshots) {
    expect(offset).toBe(lines.slice(0, read).reduce((n, line) => n + Buffer.byteLength(line) + 2, 0));
  }
  for (const [read, offset] of [snapshots[0], snapshots[7], snapshots[20]] as Array<[number, number]>) {
    expect(await drain(source.buildPart("test", path, offset))).toEqual(lines.slice(read));
  }
});

test("FileSource returns bounded batches and keeps one file descriptor between calls", async () => {
  const path = join(tempDir(), "many.txt");
  const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
  writeFileSync(path, `${lines.join("\n")}\n`);
  const part = new FileSource(path, { batchSize: 300 }).buildPart("test", path, undefined);
  const sizes: number[] = [];
  const out: string[] = [];
  for (;;) {
    const batch = await part.nextBatch();
    if (batch === null) break;
    sizes.push(batch.length);
    out.push(...batch);
  }
  expect(out).toEqual(lines);
  expect(sizes).toEqual([...Array<number>(16).fill(300), 200]);
});

/** The sizes of the batches a partition returns until it ends, empty ones left out. */
async function batchSizes<X, S>(part: StatefulSourcePartition<X, S>): Promise<number[]> {
  const sizes: number[] = [];
  for (;;) {
    const batch: Awaited<NextBatch<X>> = await part.nextBatch();
    if (batch === null) return sizes;
    const items = [...batch];
    if (items.length > 0) sizes.push(items.length);
  }
}

test("FileSource, DirSource and CSVSource cut batches at exactly batchSize lines however the file is read, as Bytewax", async () => {
  // Bytewax's file sources batch their line iterator (`batch(lines, batch_size)`, 1000 by
  // default): every batch holds batch_size lines but the last. 2500 lines of 100 bytes
  // span four 64 KiB reads.
  const dir = tempDir();
  const lines = Array.from({ length: 2500 }, (_, i) => `${i}`.padEnd(99, "x"));
  const path = join(dir, "lines.txt");
  writeFileSync(path, `${lines.join("\n")}\n`);
  expect(await batchSizes(new FileSource(path).buildPart("test", path, undefined))).toEqual([1000, 1000, 500]);
  expect(await batchSizes(new DirSource(dir).buildPart("test", "lines.txt", undefined))).toEqual([1000, 1000, 500]);

  // The snapshot after a batch is the byte offset of the next line, so a resume is exact.
  const first = new FileSource(path).buildPart("test", path, undefined);
  await first.nextBatch();
  expect(first.snapshot()).toBe(1000 * 100);
  first.close?.();
  const resumed = new FileSource(path).buildPart("test", path, 1000 * 100);
  expect(await resumed.nextBatch()).toEqual(lines.slice(1000, 2000));
  expect(await drain(resumed)).toEqual(lines.slice(2000));

  const csv = join(tempDir(), "records.csv");
  writeFileSync(csv, `n,pad\n${lines.map((line, i) => `${i},${line}`).join("\n")}\n`);
  expect(await batchSizes(await new CSVSource(csv).buildPart("test", csv, undefined))).toEqual([1000, 1000, 500]);
  expect(await batchSizes(await new CSVSource(csv, { batchSize: 999 }).buildPart("test", csv, undefined))).toEqual([
    999, 999, 502,
  ]);
});

test("FileSource names the missing file and the step", async () => {
  const path = join(tempDir(), "nope.txt");
  const flow = new Dataflow("files");
  op.output("out", op.input("inp", flow, new FileSource(path)), new TestingSink([]));
  const run = runMain(flow);
  await expect(run).rejects.toThrow(`FileSource: input file ${path} does not exist`);
  await expect(run).rejects.toThrow(/files\.inp/);
});

test("FileSource rejects a resume position past the end of a file that shrank", () => {
  const path = join(tempDir(), "short.txt");
  writeFileSync(path, "a\n");
  expect(() => new FileSource(path).buildPart("test", path, 100)).toThrow(/shorter than the resume position 100/);
});

test("FileSource reports invalid UTF-8 with its byte offset", async () => {
  const path = join(tempDir(), "bad.txt");
  writeFileSync(path, Buffer.concat([Buffer.from("ok\n"), Buffer.from([0xff, 0xfe, 0x0a])]));
  const part = new FileSource(path).buildPart("test", path, undefined);
  expect(() => part.nextBatch()).toThrow(`the line at byte 3 of ${path} is not valid utf-8`);
  const latin = new FileSource(path, { encoding: "latin1" }).buildPart("test", path, undefined);
  expect(await drain(latin)).toEqual(["ok", "ÿþ"]);
});

test("DirSource reads every matching file, one partition each, across workers", async () => {
  const dir = tempDir();
  for (let f = 1; f <= 4; f++) {
    writeFileSync(join(dir, `part-${f}.txt`), Array.from({ length: 3 }, (_, i) => `f${f}l${i}`).join("\n"));
  }
  writeFileSync(join(dir, "skip.csv"), "not,me\n");
  mkdirSync(join(dir, "sub.txt"));
  const source = new DirSource(dir, { glob: "*.txt" });
  expect(source.listParts()).toEqual(["part-1.txt", "part-2.txt", "part-3.txt", "part-4.txt"]);

  const out: string[] = [];
  const flow = new Dataflow("dir");
  op.output("out", op.input("inp", flow, source), new TestingSink(out));
  await clusterMain(flow, { workersPerProcess: 3 });
  const expected = [1, 2, 3, 4].flatMap((f) => [0, 1, 2].map((i) => `f${f}l${i}`));
  expect(out.sort()).toEqual(expected.sort());

  const resumed = source.buildPart("test", "part-2.txt", Buffer.byteLength("f2l0\n"));
  expect(await drain(resumed)).toEqual(["f2l1", "f2l2"]);
});

test("DirSource names a missing directory", async () => {
  const dir = join(tempDir(), "absent");
  const flow = new Dataflow("dir");
  op.output("out", op.input("inp", flow, new DirSource(dir)), new TestingSink([]));
  await expect(runMain(flow)).rejects.toThrow(`DirSource: input directory ${dir} does not exist`);
});

const CSV = [
  "\uFEFFid,name,note",
  '1,Zoë,"plain"',
  '2,"Smith, J.","line one',
  'line two, with ""quotes"""',
  "",
  '3,日本,"last"',
].join("\r\n");

test("CSVSource yields records keyed by header; quoted fields may hold commas, quotes and newlines", async () => {
  const path = join(tempDir(), "data.csv");
  writeFileSync(path, CSV);
  const out: Record<string, string>[] = [];
  const flow = new Dataflow("csv");
  op.output("out", op.input("inp", flow, new CSVSource(path)), new TestingSink(out));
  await runMain(flow);
  expect(out).toEqual([
    { id: "1", name: "Zoë", note: "plain" },
    { id: "2", name: "Smith, J.", note: 'line one\r\nline two, with "quotes"' },
    { id: "3", name: "日本", note: "last" },
  ]);
});

test("CSVSource resumes from the byte offset of the next record", async () => {
  const path = join(tempDir(), "data.csv");
  writeFileSync(path, CSV);
  const source = new CSVSource(path, { batchSize: 1 });
  const first = await source.buildPart("test", path, undefined);
  expect(await first.nextBatch()).toEqual([{ id: "1", name: "Zoë", note: "plain" }]);
  const resume = first.snapshot();
  expect(resume).toBe(Buffer.byteLength('\uFEFFid,name,note\r\n1,Zoë,"plain"\r\n'));
  first.close?.();

  const resumed = await source.buildPart("test", path, resume);
  expect((await drain(resumed)).map((r) => r.id)).toEqual(["2", "3"]);
  expect(resumed.snapshot()).toBe(readFileSync(path).length);
});

test("CSVSource: an empty file has no records; a broken quote names the file", async () => {
  const dir = tempDir();
  const empty = join(dir, "empty.csv");
  writeFileSync(empty, "");
  expect(await drain(await new CSVSource(empty).buildPart("test", empty, undefined))).toEqual([]);

  const broken = join(dir, "broken.csv");
  writeFileSync(broken, 'a,b\n1,2\n3,"unterminated\n');
  const part = await new CSVSource(broken).buildPart("test", broken, undefined);
  // The good record comes first; the error surfaces once the parser sees the end of input.
  expect(await part.nextBatch()).toEqual([{ a: "1", b: "2" }]);
  expect(() => part.nextBatch()).toThrow(`CSVSource: ${broken} is not valid CSV`);
});

test("FileSink writes values and truncates back to the snapshot on resume (exactly-once)", () => {
  const path = join(tempDir(), "out.txt");
  writeFileSync(path, "stale content from an earlier run\n");
  const sink = new FileSink(path);
  expect(sink.listParts()).toEqual([path]);

  const first = sink.buildPart("test", path, undefined);
  expect(readFileSync(path, "utf8")).toBe(""); // a fresh run starts the file empty
  first.writeBatch(["one1", "ünï"]);
  first.writeBatch(["one3"]);
  const resume = first.snapshot();
  expect(resume).toBe(Buffer.byteLength("one1\nünï\none3\n"));
  first.writeBatch(["one4", "one5"]); // lost work: written after the snapshot
  first.close?.();

  const resumed = sink.buildPart("test", path, resume);
  expect(readFileSync(path, "utf8")).toBe("one1\nünï\none3\n");
  expect(resumed.snapshot()).toBe(resume);
  resumed.writeBatch(["two4", "two5"]);
  resumed.close?.();
  expect(readFileSync(path, "utf8")).toBe("one1\nünï\none3\ntwo4\ntwo5\n");
});

test("FileSink rejects non-string values and a file shorter than the snapshot", () => {
  const path = join(tempDir(), "out.txt");
  const part = new FileSink(path, { end: ";" }).buildPart("test", path, undefined);
  expect(() => part.writeBatch([42 as unknown as string])).toThrow(/writes strings, got 42; format the values/);
  part.writeBatch(["a", "b"]);
  expect(readFileSync(path, "utf8")).toBe("a;b;");
  part.close?.();
  expect(() => new FileSink(path).buildPart("test", path, 100)).toThrow(/is 4 bytes, shorter than the snapshot/);
});

test("FileSink names a missing directory", async () => {
  const path = join(tempDir(), "absent", "out.txt");
  const flow = new Dataflow("sink");
  op.output("out", op.input("inp", flow, new TestingSource<[string, string]>([["k", "v"]])), new FileSink(path));
  await expect(runMain(flow)).rejects.toThrow(`the directory of output file ${path} does not exist`);
});

test("an aborted run resumed from recovery writes each line to the FileSink exactly once", async () => {
  const dir = tempDir();
  const recovery = join(dir, "recovery");
  mkdirSync(recovery);
  initRecoveryDirectory(recovery, 1);
  const input = join(dir, "in.txt");
  const output = join(dir, "out.txt");
  const lines = Array.from({ length: 400 }, (_, i) => `line ${i} ✓`);
  writeFileSync(input, `${lines.join("\n")}\n`);
  let failAt: string | undefined = "line 250 ✓";
  const seen: string[] = [];
  // Each line takes 2 ms, longer than an epoch, so epochs close (and snapshot) between the
  // batches before the crash however fast the machine reads the file.
  const slow = new Int32Array(new SharedArrayBuffer(4));

  const build = (): Dataflow => {
    const flow = new Dataflow("copy");
    const s = op.input("inp", flow, new FileSource(input, { batchSize: 7 }));
    const keyed = op.map("key", s, (line): [string, string] => {
      if (line === failAt) {
        failAt = undefined;
        throw new AbortExecution("crash");
      }
      seen.push(line);
      Atomics.wait(slow, 0, 0, 2);
      return ["all", line.toUpperCase()];
    });
    op.output("out", keyed, new FileSink(output));
    return flow;
  };
  await expect(runMain(build(), { epochIntervalMs: 1, recovery: { dbDir: recovery } })).rejects.toThrow(/crash/);
  expect(readFileSync(output, "utf8")).toMatch(/^LINE 0 ✓\n/);
  // As if the process died after writing and before its snapshot was committed.
  appendFileSync(output, "WRITTEN AFTER THE LAST SNAPSHOT\n");
  seen.length = 0;
  await runMain(build(), { epochIntervalMs: 1, recovery: { dbDir: recovery } });
  // The second run resumed mid-file: a run that started over would also end with the
  // right file, since a fresh FileSink truncates it.
  expect(seen[0]).not.toBe("line 0 ✓");
  expect(seen.length).toBeLessThan(400);
  expect(readFileSync(output, "utf8")).toBe(`${lines.map((l) => l.toUpperCase()).join("\n")}\n`);
});

test("DirSink writes one file per partition, routed by assignFile, and truncates each on resume", async () => {
  const dir = tempDir();
  const flow = new Dataflow("dirsink");
  const items: [string, string][] = [
    ["0", "zero"],
    ["1", "one"],
    ["2", "two"],
    ["5", "five"],
  ];
  const sink = new DirSink(dir, 3, { assignFile: Number });
  op.output("out", op.input("inp", flow, new TestingSource(items)), sink);
  await runMain(flow);
  expect(readFileSync(join(dir, "part_0"), "utf8")).toBe("zero\n");
  expect(readFileSync(join(dir, "part_1"), "utf8")).toBe("one\n");
  expect(readFileSync(join(dir, "part_2"), "utf8")).toBe("two\nfive\n");

  const resumed = sink.buildPart("test", "part_2", Buffer.byteLength("two\n"));
  expect(readFileSync(join(dir, "part_2"), "utf8")).toBe("two\n");
  resumed.writeBatch(["again"]);
  resumed.close?.();
  expect(readFileSync(join(dir, "part_2"), "utf8")).toBe("two\nagain\n");
});

test("DirSink: custom names, default stable hash, and clear errors", () => {
  const dir = tempDir();
  const sink = new DirSink(dir, 2, { fileNamer: (i, n) => `out-${i}-of-${n}.txt` });
  expect(sink.listParts()).toEqual(["out-0-of-2.txt", "out-1-of-2.txt"]);
  expect(sink.partFn("some key")).toBe(sink.partFn("some key"));
  expect([0, 1]).toContain(sink.partFn("some key"));
  expect(new DirSink(dir, 3, { assignFile: () => -1 }).partFn("k")).toBe(2);
  expect(() => new DirSink(dir, 2, { fileNamer: () => "same" }).listParts()).toThrow(/same name/);
  const missing = join(dir, "absent");
  expect(() => new DirSink(missing, 1).buildPart("test", "part_0", undefined)).toThrow(
    `DirSink: output directory ${missing} does not exist`,
  );
});
