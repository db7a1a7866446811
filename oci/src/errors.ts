/**
 * A failure of an image operation that whoever asked for it can act on: a file that is no
 * image, a registry that refuses, an image name that is not one (`usage`: the caller's
 * input was wrong, not the world). Its message is one line, ready to print.
 */
export class OciError extends Error {
  override name = "OciError";
  readonly usage: boolean;

  constructor(message: string, options?: ErrorOptions & { readonly usage?: boolean }) {
    super(message, options);
    this.usage = options?.usage ?? false;
  }
}
