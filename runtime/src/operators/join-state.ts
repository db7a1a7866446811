/** The per-key state of a join, shared by `join` and `joinWindow`. */

export type InsertMode = "first" | "last" | "product";
export type EmitMode = "complete" | "final" | "running";

export const INSERT_MODES: readonly InsertMode[] = ["first", "last", "product"];
export const EMIT_MODES: readonly EmitMode[] = ["complete", "final", "running"];

/** Values seen per side; with `first`/`last` each side holds at most one. */
export class JoinState {
  readonly sides: unknown[][];
  constructor(sideCount: number, sides?: unknown[][]) {
    this.sides = sides ?? Array.from({ length: sideCount }, () => []);
  }

  set(side: number, value: unknown, mode: InsertMode): void {
    const values = this.sides[side] as unknown[];
    if (mode === "product") values.push(value);
    else if (mode === "last") values[0] = value;
    else if (values.length === 0) values.push(value);
  }

  isEmpty(): boolean {
    return this.sides.every((values) => values.length === 0);
  }

  isComplete(): boolean {
    return this.sides.every((values) => values.length > 0);
  }

  /** Every combination of one value per side; a side with no value contributes `null`. */
  rows(): unknown[][] {
    const sides = this.sides;
    // At most one value per side (insert modes first and last): the one row, built directly.
    let single = true;
    for (let i = 0; i < sides.length && single; i++) single = (sides[i] as unknown[]).length <= 1;
    if (single) {
      const row = new Array<unknown>(sides.length);
      for (let i = 0; i < sides.length; i++) {
        const values = sides[i] as unknown[];
        row[i] = values.length > 0 ? values[0] : null;
      }
      return [row];
    }
    let rows: unknown[][] = [[]];
    for (const values of this.sides) {
      const choices = values.length > 0 ? values : [null];
      rows = rows.flatMap((row) => choices.map((v) => [...row, v]));
    }
    return rows;
  }
}
