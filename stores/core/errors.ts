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
  /** When the feature next tries Redis again, in ms from now: the 503's `Retry-After`. */
  readonly retryAfterMs: number;

  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, "ERK_STORE_UNAVAILABLE", options);
    this.retryAfterMs = Math.max(0, options?.retryAfterMs ?? 1000);
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

/** A lock was not acquired within `waitMs` (or its `signal` aborted first). */
export class LockNotAcquiredError extends ExpressRedisKitError {
  /** The resource that stayed locked. */
  readonly resource: string;
  /** When the current holder's lock expires at the latest, in ms from now (0 when unknown). */
  readonly retryAfterMs: number;

  constructor(resource: string, retryAfterMs: number) {
    super(
      `lock on ${JSON.stringify(resource.length > 80 ? `${resource.slice(0, 80)}…` : resource)} not acquired (held for up to ${retryAfterMs} ms more)`,
      "ERK_LOCK_NOT_ACQUIRED",
    );
    this.resource = resource;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * A held lock was lost: it expired, an extension failed, or its key was deleted or taken
 * over. Used as the `reason` of `lock.signal`.
 */
export class LockLostError extends ExpressRedisKitError {
  /** The resource whose lock was lost. */
  readonly resource: string;
  /** Why: `expired`, `extend-failed`, `taken` (the key no longer holds this lock's token), `max-hold`. */
  readonly reason: "expired" | "extend-failed" | "taken" | "max-hold";

  constructor(resource: string, reason: LockLostError["reason"], options?: { cause?: unknown }) {
    super(
      `lock on ${JSON.stringify(resource.length > 80 ? `${resource.slice(0, 80)}…` : resource)} lost (${reason})`,
      "ERK_LOCK_LOST",
      options,
    );
    this.resource = resource;
    this.reason = reason;
  }
}

/**
 * The answer to a write `count` replicas did not acknowledge: Redis answered, so the feature
 * stays on Redis, but this call is refused (in every `onRedisError` mode).
 */
export function unacknowledged(scope: string, err: ReplicationTimeoutError): StoreUnavailableError {
  return new StoreUnavailableError(`${scope}: ${err.message}`, { cause: err });
}

/**
 * Fewer replicas than `replicas.count` acknowledged a write within `replicas.timeoutMs` (Redis
 * `WAIT`). The write happened on the master and may be lost if it fails over now. Reaches
 * callers as the `cause` of a `StoreUnavailableError`.
 */
export class ReplicationTimeoutError extends ExpressRedisKitError {
  /** Replicas that acknowledged the write. */
  readonly acknowledged: number;
  /** Replicas required (`replicas.count`). */
  readonly required: number;
  /** How long the acknowledgement was waited for (`replicas.timeoutMs`). */
  readonly timeoutMs: number;

  constructor(acknowledged: number, required: number, timeoutMs: number) {
    super(
      `${acknowledged} of ${required} replica${required === 1 ? "" : "s"} acknowledged the write within ${timeoutMs} ms`,
      "ERK_REPLICATION_TIMEOUT",
    );
    this.acknowledged = acknowledged;
    this.required = required;
    this.timeoutMs = timeoutMs;
  }
}
