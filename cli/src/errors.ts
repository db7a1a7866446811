/** A failure the user can act on: printed as one line, `error: <message>`, then exit. */
export class UserError extends Error {
  override name = "UserError";
  readonly exitCode: number = 1;
}

/** A mistake in what the user typed: the line names the flag and what to type instead. */
export class UsageError extends UserError {
  override name = "UsageError";
  override readonly exitCode: number = 2;
}
