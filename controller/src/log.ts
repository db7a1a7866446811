// One JSON line per record on stderr: the cluster's log pipeline parses it, people grep it.
export type Fields = Record<string, unknown>;

let quiet = false;

/** Tests run several controllers in one process; they turn the log off. */
export function setQuiet(value: boolean): void {
  quiet = value;
}

export function log(level: "info" | "warn" | "error", msg: string, fields: Fields = {}): void {
  if (quiet) return;
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

export function errorText(err: unknown): string {
  if (err !== null && typeof err === "object" && "body" in err && typeof err.body === "string") {
    try {
      const status = JSON.parse(err.body) as { message?: string };
      if (status.message) return status.message;
    } catch {
      return err.body;
    }
  }
  return err instanceof Error ? err.message : String(err);
}

/** HTTP status of a client-node error, if it has one. */
export function statusCode(err: unknown): number | undefined {
  if (err !== null && typeof err === "object") {
    if ("code" in err && typeof err.code === "number") return err.code;
    if ("statusCode" in err && typeof err.statusCode === "number") return err.statusCode;
  }
  return undefined;
}
