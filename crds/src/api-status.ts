/**
 * HTTP status and the API server's message of a failed call, if the server answered:
 * client-node's ApiException carries the code and the body (a Status object, as text or
 * parsed), whose `message` says what the server refused and why.
 */
export function apiStatus(err: unknown): { code: number; message: string } | undefined {
  if (err === null || typeof err !== "object" || typeof (err as { code?: unknown }).code !== "number") return undefined;
  const { code, body, message } = err as { code: number; body?: unknown; message?: string };
  let text = typeof body === "object" && body !== null ? (body as { message?: unknown }).message : undefined;
  if (typeof body === "string") {
    try {
      text = (JSON.parse(body) as { message?: unknown }).message;
    } catch {
      text = body;
    }
  }
  return { code, message: typeof text === "string" && text !== "" ? text : (message ?? `HTTP ${code}`) };
}
