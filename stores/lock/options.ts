/**
 * The public types of the lock manager (options, `Lock`, `LockManager`, stats) and the checks
 * of what callers pass in.
 */
import { InvalidOptionError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { show } from "../core/options.js";
import type { RedisClient } from "../core/scripts.js";

/** Longest resource name accepted (characters). */
export const MAX_RESOURCE_LENGTH = 1024;

/** Options of `createLockManager()`. */
export interface LockManagerOptions {
  /** Redis client (ioredis, iovalkey or node-redis; standalone, Cluster or Sentinel). Omitted: the in-process memory backend. */
  redis?: RedisClient;
  /**
   * Key prefix in Redis (and pub/sub channel prefix).
   * @default "lock:"
   */
  prefix?: string;
  /**
   * TTL of a lock when `acquire()` is not given one.
   * @default 30000
   */
  defaultTtlMs?: number;
  /**
   * Longest wait for Redis per call; past it the call fails with `StoreUnavailableError`.
   * @default 2000
   */
  timeoutMs?: number;
  /** @default console */
  logger?: Logger;
}

/** Options of `acquire()`. */
export interface AcquireOptions {
  /** How long the lock lives unless extended, ms. @default the manager's `defaultTtlMs` */
  ttlMs?: number;
  /** How long to wait for the lock when it is held, ms. @default 0 (fail fast) */
  waitMs?: number;
  /** Gives up waiting when aborted (rejects with `LockNotAcquiredError`). */
  signal?: AbortSignal;
}

/** Options of `withLock()`. */
export interface WithLockOptions extends AcquireOptions {
  /** Stop extending after this long: the lock then expires and is reported lost. */
  maxHoldMs?: number;
}

/** A held lock. Release it, or let `await using` do it. */
export interface Lock extends AsyncDisposable {
  readonly resource: string;
  /** This holder's secret token (compared by every extend and release). */
  readonly token: string;
  /** Strictly increasing per resource: store it with your writes and reject older ones. */
  readonly fence: number;
  /** When the lock expires unless extended (ms since the epoch, this process's clock). */
  readonly expiresAt: number;
  /** Aborted, with a `LockLostError` as reason, when the lock is lost. */
  readonly signal: AbortSignal;
  /** True once the lock is lost (see `signal`). */
  readonly lost: boolean;
  /** Sets the lock to expire `ms` from now; false (and lost) when it was no longer held. */
  extend(ms?: number): Promise<boolean>;
  /** Releases the lock; false when it was no longer held (expired or taken), never throws for that. */
  release(): Promise<boolean>;
}

/** Counters since the manager was created. */
export interface LockManagerStats {
  acquired: number;
  /** Acquisitions that found the lock held (waiting or failing). */
  contended: number;
  /** Locks lost while held. */
  lost: number;
  /** Total ms spent waiting by acquisitions that waited. */
  waitMs: number;
}

/** See `createLockManager()`. */
export interface LockManager {
  /** Acquires `resource`; rejects with `LockNotAcquiredError` when not acquired within `waitMs`. */
  acquire(resource: string, options?: AcquireOptions): Promise<Lock>;
  /**
   * Runs `fn` holding `resource`: extends the lock every ttl/3 while `fn` runs (one extension
   * in flight at a time), releases it in `finally`, and stops extending after `maxHoldMs`.
   */
  withLock<T>(
    resource: string,
    fn: (lock: Lock) => Promise<T> | T,
    options?: WithLockOptions,
  ): Promise<T>;
  /** Starts extending `lock` every ttl/3 until it is released or lost, or `maxHoldMs` passes; returns a stop function. */
  autoExtend(lock: Lock, options?: { maxHoldMs?: number }): () => void;
  stats(): LockManagerStats;
  /** Releases the pub/sub subscription (the Redis client is yours to close). */
  close(): Promise<void>;
}

/** Throws `InvalidOptionError` unless `resource` is a non-empty string of at most `MAX_RESOURCE_LENGTH`. */
export function checkResource(resource: unknown): asserts resource is string {
  if (
    typeof resource !== "string" ||
    resource.length === 0 ||
    resource.length > MAX_RESOURCE_LENGTH
  ) {
    throw new InvalidOptionError(
      `acquire: resource must be a non-empty string of at most ${MAX_RESOURCE_LENGTH} characters (got ${show(resource)})`,
      "resource",
    );
  }
}
