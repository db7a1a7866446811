// Exports no Dataflow: the CLI must list what it found instead.
export const answer = 42;
export function helper(): string {
  return "not a flow";
}
