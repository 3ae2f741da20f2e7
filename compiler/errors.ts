/**
 * A user error: bad input model, bad arguments, refused output. The CLI prints its message
 * after `error:` with no stack trace and exits 1 (or 2 for usage errors).
 */
export class RmsfuseError extends Error {
  constructor(
    message: string,
    /** 1: bad model or environment; 2: usage. */
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = 'RmsfuseError';
  }
}

export const fail = (message: string): never => {
  throw new RmsfuseError(message);
};
