/**
 * The public types of the lock manager (options, `Lock`, `LockManager`, stats), the parsing of
 * `createLockManager()`'s options and the checks of what callers pass in.
 */
import type { RedisDriver } from "../core/driver.js";
import { InvalidOptionError } from "../core/errors.js";
import { parseFailureOptions } from "../core/failure.js";
import { parsePrefix } from "../core/keys.js";
import { consoleLogger, type Logger } from "../core/logger.js";
import { fail, optionalRedis, rejectUnknown, show } from "../core/options.js";
import { parseReplicas, type ReplicasConfig, type ReplicasOptions } from "../core/replicas.js";
import type { RedisClient } from "../core/scripts.js";
import { ttl } from "./held-lock.js";

/** Longest resource name accepted (characters). */
export const MAX_RESOURCE_LENGTH = 1024;

/** A lock's TTL when neither the manager nor `acquire()` is given one (ms). */
export const DEFAULT_LOCK_TTL_MS = 30_000;

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
   * TTL of a lock when `acquire()` is not given one, ms.
   * @default 30000
   */
  ttlMs?: number;
  /**
   * Longest wait for Redis per call, ms; past it the call rejects with `StoreUnavailableError`.
   * @default 1000
   */
  timeoutMs?: number;
  /**
   * What a call does when Redis fails or misses `timeoutMs`: only `"closed"` (reject with
   * `StoreUnavailableError`): a lock held in one process only would not exclude the others, and
   * `acquire()` cannot hand out a lock it does not hold (`requireLock()` offers `"open"`).
   * @default "closed"
   */
  onRedisError?: "closed";
  /**
   * While Redis is failing, calls reject at once, except one per `recheckMs` that tries Redis
   * (the probe); the first that succeeds switches back to Redis.
   * @default 1000
   */
  recheckMs?: number;
  /**
   * Grant or extend a lock only once `count` replicas have acknowledged it (Redis `WAIT`, sent
   * behind the script: still one round trip), so a failover that promotes one of them keeps
   * the lock. Not in time: the lock is given back and the call rejects with
   * `StoreUnavailableError` (cause `ReplicationTimeoutError`). Off by default.
   */
  replicas?: ReplicasOptions;
  /** @default console */
  logger?: Logger;
}

/**
 * `LockManagerOptions` resolved. `onRedisError` is `"closed"` for `createLockManager()`; the
 * manager `requireLock()` builds for itself takes the middleware's mode, so its logs and its
 * health state say what the middleware does.
 */
export interface LockManagerConfig {
  redis: RedisDriver | undefined;
  prefix: string;
  ttlMs: number;
  timeoutMs: number;
  onRedisError: "open" | "closed";
  recheckMs: number;
  replicas: ReplicasConfig | undefined;
  logger: Logger;
}

/** Validates the options of `createLockManager()` (`InvalidOptionError` naming the option). */
export function parseLockManagerOptions(scope: string, options: unknown): LockManagerConfig {
  if (typeof options !== "object" || options === null) fail(scope, "options", "an object", options);
  const o = options as LockManagerOptions;
  rejectUnknown(scope, o, [
    "redis",
    "prefix",
    "ttlMs",
    "timeoutMs",
    "onRedisError",
    "recheckMs",
    "replicas",
    "logger",
  ]);
  const failure = parseFailureOptions(scope, "lockManager", o);
  const redis = optionalRedis(scope, "redis", o.redis);
  return {
    redis,
    prefix: parsePrefix(scope, o.prefix, "lock:"),
    ttlMs: o.ttlMs === undefined ? DEFAULT_LOCK_TTL_MS : ttl(scope, o.ttlMs),
    timeoutMs: failure.timeoutMs,
    onRedisError: "closed",
    recheckMs: failure.recheckMs,
    replicas: parseReplicas(scope, o.replicas, redis, failure.timeoutMs),
    logger: o.logger ?? consoleLogger,
  };
}

/** Options of `acquire()`. */
export interface AcquireOptions {
  /** How long the lock lives unless extended, ms. @default the manager's `ttlMs` */
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
  /**
   * Sets the lock to expire `ms` from now; false (and lost) when it was no longer held, or when
   * Redis failed or is failing (the lock can no longer be vouched for). Never rejects for that.
   */
  extend(ms?: number): Promise<boolean>;
  /**
   * Releases the lock; false when it was no longer held (expired or taken) or Redis failed (it
   * then expires on its own), never throws for that. While Redis is failing the release is
   * still sent, without waiting for it, so the lock goes as soon as Redis takes it.
   */
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
  /**
   * Acquires `resource`; rejects with `LockNotAcquiredError` when not acquired within `waitMs`,
   * and with `StoreUnavailableError` when Redis fails or misses `timeoutMs` (at once while
   * Redis is known to be failing, except the one probe per `recheckMs`).
   */
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
  /** Releases the pub/sub subscription and leaves `featureStates()` (the Redis client is yours to close). */
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
