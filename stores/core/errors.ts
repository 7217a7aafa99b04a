/**
 * Error classes shared by every feature. Callers branch on these with `instanceof` or on
 * `name` / `code`, never on message text.
 */

/** Base class of every error this package throws. */
export class ExpressRedisKitError extends Error {
  /** A stable machine-readable code, e.g. `ERK_INVALID_OPTION`. */
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option given to a factory, or an argument given to a method, is not valid. */
export class InvalidOptionError extends ExpressRedisKitError {
  /** The option or argument that was rejected, e.g. `windowMs`. */
  readonly option: string;

  constructor(message: string, option: string) {
    super(message, "ERK_INVALID_OPTION");
    this.option = option;
  }
}

/**
 * Redis did not answer (connection down, command failed or exceeded `timeoutMs`) and the
 * feature's failure mode is not to fall back. `cause` holds the underlying error.
 */
export class StoreUnavailableError extends ExpressRedisKitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, "ERK_STORE_UNAVAILABLE", options);
  }
}

/** A Redis call took longer than the feature's `timeoutMs`. */
export class RedisTimeoutError extends ExpressRedisKitError {
  /** The timeout that was exceeded, in milliseconds. */
  readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    super(`Redis did not answer within ${timeoutMs} ms`, "ERK_REDIS_TIMEOUT");
    this.timeoutMs = timeoutMs;
  }
}

/** Wraps anything thrown into an `Error`, so rejections are always `Error` instances. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
