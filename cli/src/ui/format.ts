// Pure text formatting for what waxctl prints: tables, ages, images, progress bars.

/** Columns padded to their widest cell, kubectl style: upper-case headers, three spaces apart. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers.map((h) => h.toUpperCase()), ...rows];
  const widths = headers.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  return all
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
        .join("   ")
        .trimEnd(),
    )
    .join("\n");
}

/**
 * How long ago, as kubectl's AGE column prints it (its HumanDuration): more precision
 * while the number is small, e.g. 45s, 5m30s, 95m, 3h20m, 20h, 3d4h, 400d, 2y30d.
 */
export function age(from: Date | string | undefined, now: Date): string {
  if (from === undefined) return "<unknown>";
  const seconds = Math.floor((now.getTime() - new Date(from).getTime()) / 1000);
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (days < 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (days < 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

/** `registry/name@sha256:<12 hex>`: enough of the digest to tell images apart in a table. */
export function shortImage(image: string): string {
  const at = image.indexOf("@sha256:");
  return at < 0 ? image : image.slice(0, at + "@sha256:".length + 12);
}

/** A fixed-width bar such as `[######----]` for `done` of `total`. */
export function bar(done: number, total: number, width = 20): string {
  const filled = total <= 0 ? width : Math.round((Math.min(done, total) / total) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

/** Bytes as B, kB, MB or GB with one decimal, as transfer progress is shown. */
export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB"];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Seconds with one decimal, for how long a stage took. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/** A pod's log text as lines prefixed with the pod's name; a trailing newline adds no empty line. */
export function prefixedLines(pod: string, text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.map((line) => `[${pod}] ${line}`);
}
