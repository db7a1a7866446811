/**
 * Connectors for local files, as Bytewax's `bytewax.connectors.files`.
 *
 * Sources read lines (or CSV records) and snapshot the byte offset of the next one, so a
 * resumed run seeks straight back to it. Sinks snapshot the file size after their last
 * write and truncate the file back to it on resume: with recovery, file output is
 * exactly-once.
 *
 * Partitions are assigned from each process's own listing, so every process must see
 * the same files: run one process, or put the files on a shared mount.
 */

import { isAscii } from "node:buffer";
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  globSync,
  openSync,
  readSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { finished } from "node:stream/promises";
import { TextDecoder } from "node:util";
import { Parser } from "csv-parse";
import { stableHash } from "../engine/hash.ts";
import { preview } from "../errors.ts";
import {
  checkBatchSize,
  DEFAULT_BATCH_SIZE,
  type FixedPartitionedSource,
  type NextBatch,
  type StatefulSourcePartition,
} from "../inputs.ts";
import type { FixedPartitionedSink, StatefulSinkPartition } from "../outputs.ts";

/** Bytes read per `read`; a batch reads as many chunks as its lines need. */
const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const EMPTY = Buffer.alloc(0);

/** Fails unless `dir` is an existing directory, naming it and what to do. */
function requireDirectory(what: string, dir: string, remedy: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw pathError(what, dir, err, remedy);
  }
  if (!isDir) throw new Error(`${what} ${dir} is not a directory; ${remedy}`);
}

/** What a failed file system call says about its path, as the end of a sentence. */
function failure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "does not exist";
  if (code === "EACCES" || code === "EPERM") return "is not accessible (permission denied)";
  if (code === "EISDIR") return "is a directory";
  return `cannot be opened (${err instanceof Error ? err.message : String(err)})`;
}

/** One line saying what is wrong with `path` and what to do about it. */
function pathError(what: string, path: string, err: unknown, remedy: string): Error {
  return new Error(`${what} ${path} ${failure(err)}; ${remedy}`, { cause: err });
}

/** Reads a file forward from a byte offset in bounded chunks; the descriptor stays open until end of file. */
class ChunkReader {
  readonly path: string;
  #fd: number | undefined;
  #position: number;

  constructor(what: string, path: string, position: number) {
    this.path = path;
    const remedy = `check the path given to ${what}`;
    try {
      this.#fd = openSync(path, "r");
    } catch (err) {
      throw pathError(`${what}: input file`, path, err, remedy);
    }
    const stat = fstatSync(this.#fd);
    if (!stat.isFile()) {
      this.close();
      throw new Error(`${what}: input file ${path} is not a regular file; ${remedy}`);
    }
    if (position > stat.size) {
      this.close();
      throw new Error(
        `${what}: input file ${path} is ${stat.size} bytes, shorter than the resume position ${position}: ` +
          "it was replaced or truncated since the snapshot; restore it, or delete the recovery data to read from the start",
      );
    }
    this.#position = position;
  }

  /** The next chunk, or `null` at end of file (the file is then closed). */
  read(): Buffer | null {
    if (this.#fd === undefined) return null;
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    const n = readSync(this.#fd, chunk, 0, CHUNK_BYTES, this.#position);
    if (n === 0) {
      this.close();
      return null;
    }
    this.#position += n;
    return chunk.subarray(0, n);
  }

  close(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/**
 * Lines of a file without their line ending (`\n` or `\r\n`). Splitting on the newline
 * byte is safe in UTF-8 and every ASCII-compatible encoding, and keeps the offset in bytes.
 */
class LinePartition implements StatefulSourcePartition<string, number> {
  readonly #what: string;
  readonly #reader: ChunkReader;
  readonly #decoder: TextDecoder;
  readonly #batchSize: number;
  /** Byte offset of the next line not yet returned: the snapshot. */
  #offset: number;
  /** The current chunk, and where its unsplit bytes start. */
  #chunk: Buffer = EMPTY;
  #at = 0;
  /** Whether every byte of the chunk is ASCII: its lines then decode as latin1, the fastest way. */
  #ascii = true;
  /** Earlier pieces of the line that the chunk continues. */
  #pieces: Buffer[] = [];
  #eof = false;

  constructor(what: string, path: string, batchSize: number, encoding: string, offset: number) {
    this.#what = what;
    this.#decoder = new TextDecoder(encoding, { fatal: true, ignoreBOM: true });
    this.#batchSize = batchSize;
    this.#offset = offset;
    this.#reader = new ChunkReader(what, path, offset);
  }

  nextBatch(): string[] | null {
    const lines: string[] = [];
    while (lines.length < this.#batchSize) {
      const chunk = this.#chunk;
      const nl = chunk.indexOf(NEWLINE, this.#at);
      if (nl !== -1) {
        lines.push(
          this.#pieces.length === 0 ? this.#lineOfChunk(nl) : this.#joinedLine(chunk.subarray(this.#at, nl), 1),
        );
        this.#at = nl + 1;
        continue;
      }
      if (this.#at < chunk.length) this.#pieces.push(chunk.subarray(this.#at));
      this.#chunk = EMPTY;
      this.#at = 0;
      // Batches end at `batchSize` lines, not at a chunk's end, as Bytewax's: results
      // that depend on batch boundaries (a running join) then match it line for line.
      if (this.#eof) break;
      const next = this.#reader.read();
      if (next !== null) {
        this.#chunk = next;
        // Every ASCII-compatible encoding decodes ASCII bytes as latin1 does.
        this.#ascii = isAscii(next);
        continue;
      }
      this.#eof = true;
      if (this.#pieces.length > 0) lines.push(this.#joinedLine(EMPTY, 0));
    }
    return lines.length === 0 && this.#eof ? null : lines;
  }

  snapshot(): number {
    return this.#offset;
  }

  close(): void {
    this.#reader.close();
  }

  /** The line from `#at` to the newline at `nl`, all within the current chunk. */
  #lineOfChunk(nl: number): string {
    const start = this.#at;
    const offset = this.#offset;
    this.#offset += nl + 1 - start;
    const end = nl > start && this.#chunk[nl - 1] === CARRIAGE_RETURN ? nl - 1 : nl;
    if (this.#ascii) return this.#chunk.toString("latin1", start, end);
    return this.#decode(this.#chunk.subarray(start, end), offset);
  }

  /** The line made of the earlier pieces and `last`, then `newlineBytes` of line ending. */
  #joinedLine(last: Buffer, newlineBytes: number): string {
    this.#pieces.push(last);
    let bytes = Buffer.concat(this.#pieces);
    this.#pieces = [];
    const offset = this.#offset;
    this.#offset += bytes.length + newlineBytes;
    if (bytes.at(-1) === CARRIAGE_RETURN) bytes = bytes.subarray(0, -1);
    return this.#decode(bytes, offset);
  }

  #decode(bytes: Buffer, start: number): string {
    try {
      return this.#decoder.decode(bytes);
    } catch (err) {
      throw new Error(
        `${this.#what}: the line at byte ${start} of ${this.#reader.path} is not valid ${this.#decoder.encoding}; ` +
          "pass the file's encoding as the `encoding` option",
        { cause: err },
      );
    }
  }
}

/** A WHATWG encoding label newline-splitting works for (the newline is the single byte 0x0a). */
function checkEncoding(what: string, encoding: string): string {
  let canonical: string;
  try {
    canonical = new TextDecoder(encoding).encoding;
  } catch (err) {
    throw new RangeError(`${what} encoding ${JSON.stringify(encoding)} is not a known encoding label`, { cause: err });
  }
  if (canonical.startsWith("utf-16")) {
    throw new RangeError(`${what} reads ASCII-compatible encodings only (such as utf-8 or latin1), got ${encoding}`);
  }
  return encoding;
}

export interface FileSourceOptions {
  /** Lines per batch at most (default 1000). */
  readonly batchSize?: number;
  /** An ASCII-compatible WHATWG encoding label (default "utf-8"). Invalid bytes fail the step. */
  readonly encoding?: string;
}

/**
 * Reads one file line by line, without line endings. One partition, named after the
 * path, so one worker reads it; the snapshot is the byte offset of the next line.
 */
export class FileSource implements FixedPartitionedSource<string, number> {
  readonly path: string;
  readonly batchSize: number;
  readonly encoding: string;

  constructor(path: string, opts: FileSourceOptions = {}) {
    this.path = path;
    this.batchSize = checkBatchSize("FileSource", opts.batchSize ?? DEFAULT_BATCH_SIZE);
    this.encoding = checkEncoding("FileSource", opts.encoding ?? "utf-8");
  }

  listParts(): string[] {
    return [this.path];
  }

  buildPart(_stepId: string, _forPart: string, resumeOffset: number | undefined): LinePartition {
    return new LinePartition("FileSource", this.path, this.batchSize, this.encoding, resumeOffset ?? 0);
  }
}

export interface DirSourceOptions extends FileSourceOptions {
  /** Which files to read, relative to the directory (default "*": every file in it). */
  readonly glob?: string;
}

/**
 * Reads every file in a directory that matches `glob`, line by line. Each file is a
 * partition (named by its path relative to the directory), so files are read in
 * parallel and their lines interleave.
 */
export class DirSource implements FixedPartitionedSource<string, number> {
  readonly dir: string;
  readonly glob: string;
  readonly batchSize: number;
  readonly encoding: string;

  constructor(dir: string, opts: DirSourceOptions = {}) {
    this.dir = dir;
    this.glob = opts.glob ?? "*";
    this.batchSize = checkBatchSize("DirSource", opts.batchSize ?? DEFAULT_BATCH_SIZE);
    this.encoding = checkEncoding("DirSource", opts.encoding ?? "utf-8");
  }

  listParts(): string[] {
    requireDirectory("DirSource: input directory", this.dir, "create it or fix the path given to DirSource");
    let entries: ReturnType<typeof globSync>;
    try {
      entries = globSync(this.glob, { cwd: this.dir, withFileTypes: true });
    } catch (err) {
      throw pathError("DirSource: input directory", this.dir, err, "make it readable by the dataflow's user");
    }
    return entries
      .filter((entry) => entry.isFile())
      .map((entry) => relative(this.dir, join(entry.parentPath, entry.name)))
      .sort();
  }

  buildPart(_stepId: string, forPart: string, resumeOffset: number | undefined): LinePartition {
    return new LinePartition("DirSource", join(this.dir, forPart), this.batchSize, this.encoding, resumeOffset ?? 0);
  }
}

export type CSVRecord = Record<string, string>;

export interface CSVSourceOptions {
  /** Records per batch at most (default 1000). */
  readonly batchSize?: number;
  /** Field delimiter (default ","). */
  readonly delimiter?: string;
  /** Quote character (default `"`). */
  readonly quote?: string;
  /** Escape character inside quoted fields (default `"`, doubling the quote). */
  readonly escape?: string;
  /** How the bytes are decoded (default "utf8"). */
  readonly encoding?: BufferEncoding;
}

/** A CSV parser that hands each record, with the byte offset just after it, to `onRecord`. */
function csvParser(
  opts: CSVSourceOptions,
  columns: string[] | false,
  onRecord: (record: unknown, endByte: number) => void,
): Parser {
  const parser = new Parser({
    bom: true,
    columns,
    delimiter: opts.delimiter,
    quote: opts.quote,
    escape: opts.escape,
    encoding: opts.encoding ?? "utf8",
    skip_empty_lines: true,
    // Records are taken here, not from the stream, so a write parses its chunk at once.
    on_record: (record: unknown, info) => {
      onRecord(record, info.bytes);
      return null;
    },
  });
  // Parse errors are read from `parser.errored`; the event must still be handled.
  parser.on("error", () => {});
  parser.resume();
  return parser;
}

/** Ends the parser; resolves once the last record has been handed over, rejects on a parse error. */
async function endParser(parser: Parser): Promise<void> {
  parser.end();
  await finished(parser);
}

/** The header's fields and the byte offset of the first record, or `undefined` for an empty file. */
async function readHeader(
  path: string,
  opts: CSVSourceOptions,
): Promise<{ columns: string[]; end: number } | undefined> {
  const reader = new ChunkReader("CSVSource", path, 0);
  let header: { columns: string[]; end: number } | undefined;
  const parser = csvParser(opts, false, (record, end) => {
    header ??= { columns: record as string[], end };
  });
  try {
    while (header === undefined) {
      const chunk = reader.read();
      if (chunk === null) {
        await endParser(parser);
        break;
      }
      parser.write(chunk);
      if (parser.errored !== null) throw parser.errored;
    }
  } catch (err) {
    throw csvError(path, 0, err);
  } finally {
    reader.close();
    parser.destroy();
  }
  return header;
}

function csvError(path: string, start: number, err: unknown): Error {
  const reason = err instanceof Error ? err.message : String(err);
  return new Error(`CSVSource: ${path} is not valid CSV (reading from byte ${start}): ${reason}`, { cause: err });
}

/** Records of a CSV file after its header; the snapshot is the byte offset of the next record. */
class CSVPartition implements StatefulSourcePartition<CSVRecord, number> {
  readonly #path: string;
  readonly #batchSize: number;
  readonly #reader: ChunkReader;
  readonly #parser: Parser;
  readonly #start: number;
  /** Parsed records not yet returned, each with the offset just after it. */
  #ready: Array<[CSVRecord, number]> = [];
  #offset: number;
  #error: Error | undefined;
  #ended = false;

  constructor(path: string, batchSize: number, opts: CSVSourceOptions, columns: string[], start: number) {
    this.#path = path;
    this.#batchSize = batchSize;
    this.#start = start;
    this.#offset = start;
    this.#reader = new ChunkReader("CSVSource", path, start);
    this.#parser = csvParser(opts, columns, (record, end) => {
      this.#ready.push([record as CSVRecord, start + end]);
    });
  }

  nextBatch(): NextBatch<CSVRecord> {
    // A batch is `batchSize` records (the last one fewer), as Bytewax's.
    while (this.#ready.length < this.#batchSize && this.#error === undefined && !this.#ended) {
      const chunk = this.#reader.read();
      if (chunk === null) return this.#end();
      this.#parser.write(chunk);
      if (this.#parser.errored !== null) this.#error = csvError(this.#path, this.#start, this.#parser.errored);
    }
    return this.#take();
  }

  #take(): CSVRecord[] | null {
    if (this.#ready.length > 0) {
      // The records parsed before an error are still good: hand them over first.
      const taken = this.#ready.splice(0, this.#batchSize);
      this.#offset = (taken.at(-1) as [CSVRecord, number])[1];
      return taken.map(([record]) => record);
    }
    if (this.#error !== undefined) throw this.#error;
    return null;
  }

  snapshot(): number {
    return this.#offset;
  }

  close(): void {
    this.#reader.close();
    this.#parser.destroy();
  }

  /**
   * The last record can only be parsed once the parser knows the input ended, so the
   * last batch resolves later. The engine takes no snapshot while a batch is in flight,
   * so the offset may move with it.
   */
  async #end(): Promise<CSVRecord[] | null> {
    try {
      await endParser(this.#parser);
    } catch (err) {
      this.#error = csvError(this.#path, this.#start, err);
    }
    this.#ended = true;
    return this.#take();
  }
}

/**
 * Reads a CSV file record by record as objects keyed by the header's fields. Quoted
 * fields may span lines. One partition, named after the path; the snapshot is the byte
 * offset of the next record.
 */
export class CSVSource implements FixedPartitionedSource<CSVRecord, number> {
  readonly path: string;
  readonly batchSize: number;
  readonly opts: CSVSourceOptions;

  constructor(path: string, opts: CSVSourceOptions = {}) {
    this.path = path;
    this.batchSize = checkBatchSize("CSVSource", opts.batchSize ?? DEFAULT_BATCH_SIZE);
    this.opts = opts;
  }

  listParts(): string[] {
    return [this.path];
  }

  async buildPart(
    _stepId: string,
    _forPart: string,
    resumeOffset: number | undefined,
  ): Promise<StatefulSourcePartition<CSVRecord, number>> {
    const header = await readHeader(this.path, this.opts);
    if (header === undefined) return { nextBatch: () => null, snapshot: () => 0 };
    const start = Math.max(resumeOffset ?? 0, header.end);
    return new CSVPartition(this.path, this.batchSize, this.opts, header.columns, start);
  }
}

/** Appends values to a file; truncates it back to the resume offset first. */
class FileSinkPartition implements StatefulSinkPartition<string, number> {
  readonly #what: string;
  readonly #path: string;
  readonly #end: string;
  #fd: number | undefined;
  #position: number;

  constructor(what: string, path: string, end: string, resumeOffset: number) {
    this.#what = what;
    this.#path = path;
    this.#end = end;
    const created = !existsSync(path);
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o666);
    } catch (err) {
      const which =
        (err as NodeJS.ErrnoException).code === "ENOENT"
          ? `the directory of output file ${path}`
          : `output file ${path}`;
      throw new Error(`${what}: ${which} ${failure(err)}; create the directory or fix the path given to ${what}`, {
        cause: err,
      });
    }
    const size = fstatSync(fd).size;
    if (resumeOffset > size) {
      closeSync(fd);
      throw new Error(
        `${what}: output file ${path} is ${size} bytes, shorter than the snapshot position ${resumeOffset}: ` +
          "it was replaced or truncated since the snapshot; restore it, or delete the recovery data to write from the start",
      );
    }
    // Whatever was written after the snapshot is written again by the resumed run.
    ftruncateSync(fd, resumeOffset);
    if (created) fsyncDir(dirname(path));
    this.#fd = fd;
    this.#position = resumeOffset;
  }

  writeBatch(values: string[]): void {
    const fd = this.#open();
    let text = "";
    for (const value of values) {
      if (typeof value !== "string") {
        throw new TypeError(
          `${this.#what} ${this.#path} writes strings, got ${preview(value)}; format the values with a map step first`,
        );
      }
      text += value + this.#end;
    }
    const bytes = Buffer.from(text, "utf8");
    let written = 0;
    while (written < bytes.length) {
      written += writeSync(fd, bytes, written, bytes.length - written, this.#position + written);
    }
    this.#position += bytes.length;
  }

  /** Makes the bytes up to the returned position durable before it is recorded. */
  snapshot(): number {
    if (this.#fd !== undefined) fsyncSync(this.#fd);
    return this.#position;
  }

  close(): void {
    if (this.#fd === undefined) return;
    fsyncSync(this.#fd);
    closeSync(this.#fd);
    this.#fd = undefined;
  }

  #open(): number {
    if (this.#fd === undefined) throw new Error(`${this.#what} ${this.#path} was written after it was closed`);
    return this.#fd;
  }
}

/** A new file's directory entry must be durable too, or a crash can lose the file the snapshot points into. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface FileSinkOptions {
  /** Written after each value (default "\n"). */
  readonly end?: string;
}

/**
 * Writes the string values of `[key, value]` items to one file, each followed by `end`.
 * One partition, named after the path. On resume the file is truncated back to the
 * snapshot, so with recovery the output is exactly-once; a fresh run starts it empty.
 */
export class FileSink implements FixedPartitionedSink<string, number> {
  readonly path: string;
  readonly end: string;

  constructor(path: string, opts: FileSinkOptions = {}) {
    this.path = path;
    this.end = opts.end ?? "\n";
  }

  listParts(): string[] {
    return [this.path];
  }

  partFn(): number {
    return 0;
  }

  buildPart(_stepId: string, _forPart: string, resumeOffset: number | undefined): FileSinkPartition {
    return new FileSinkPartition("FileSink", this.path, this.end, resumeOffset ?? 0);
  }

  /** The file partition `forPart` writes: a resumed process checks it before data flows. */
  outputFile(_forPart: string): string {
    return this.path;
  }
}

export interface DirSinkOptions extends FileSinkOptions {
  /** The file name of partition `index` of `count` (default `part_${index}`). */
  readonly fileNamer?: (index: number, count: number) => string;
  /** The partition index for an item's key, wrapped to the file count (default: a stable hash). */
  readonly assignFile?: (key: string) => number;
}

/**
 * Writes the string values of `[key, value]` items to `fileCount` files in `dir`, one
 * partition per file; the key picks the file. Truncates like `FileSink` on resume.
 */
export class DirSink implements FixedPartitionedSink<string, number> {
  readonly dir: string;
  readonly fileCount: number;
  readonly end: string;
  readonly fileNamer: (index: number, count: number) => string;
  readonly assignFile: (key: string) => number;

  constructor(dir: string, fileCount: number, opts: DirSinkOptions = {}) {
    if (!Number.isInteger(fileCount) || fileCount < 1) {
      throw new RangeError(`DirSink fileCount must be a whole number >= 1, got ${fileCount}`);
    }
    this.dir = dir;
    this.fileCount = fileCount;
    this.end = opts.end ?? "\n";
    this.fileNamer = opts.fileNamer ?? ((index) => `part_${index}`);
    this.assignFile = opts.assignFile ?? stableHash;
  }

  listParts(): string[] {
    const names = Array.from({ length: this.fileCount }, (_, i) => this.fileNamer(i, this.fileCount));
    if (new Set(names).size !== names.length) {
      throw new Error(`DirSink fileNamer gave the same name to two files (${names.join(", ")}); make the names unique`);
    }
    return names;
  }

  partFn(key: string): number {
    const index = this.assignFile(key);
    if (!Number.isInteger(index))
      throw new TypeError(`DirSink assignFile must return an integer, got ${preview(index)}`);
    return ((index % this.fileCount) + this.fileCount) % this.fileCount;
  }

  buildPart(_stepId: string, forPart: string, resumeOffset: number | undefined): FileSinkPartition {
    requireDirectory("DirSink: output directory", this.dir, "create it or fix the path given to DirSink");
    return new FileSinkPartition("DirSink", this.outputFile(forPart), this.end, resumeOffset ?? 0);
  }

  /** The file partition `forPart` writes: a resumed process checks it before data flows. */
  outputFile(forPart: string): string {
    return join(this.dir, forPart);
  }
}
