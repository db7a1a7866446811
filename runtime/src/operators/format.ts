import { inspect } from "node:util";

/** How `inspect` renders items: strings bare-quoted like Python's repr, objects compact. */
export function formatInspect(item: unknown): string {
  return inspect(item, { depth: 4, breakLength: Number.POSITIVE_INFINITY, compact: true });
}
