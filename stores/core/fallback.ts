/**
 * The Redis-or-memory switch every feature sits behind.
 *
 * Each call goes to Redis with a deadline. When Redis fails or misses the deadline the switch
 * turns degraded (logged once) and, depending on the failure mode, serves from the in-process
 * memory backend (`"memory"`), answers `undefined` (`"open"`: the feature lets the request
 * through) or throws `StoreUnavailableError` (`"closed"`). While degraded, no request waits on
 * Redis: one request at a time, at most every `recheckMs`, probes it; the first success turns
 * the switch back to Redis (logged once).
 */
import { RedisTimeoutError, StoreUnavailableError, toError } from "./errors.js";
import type { Logger } from "./logger.js";

/** What a feature does when Redis fails or is slower than `timeoutMs`. */
export type OnRedisError = "memory" | "open" | "closed";

/** Which backend served a call. */
export type Backend = "redis" | "memory";

/** Options of `BackendSwitch`. */
export interface BackendSwitchOptions<S> {
  /** Feature name used in log lines and errors, e.g. `rateLimit`. */
  scope: string;
  /** The Redis-backed store, or `undefined` for memory only. */
  redis: S | undefined;
  /** The in-process store. */
  memory: S;
  onRedisError: OnRedisError;
  timeoutMs: number;
  recheckMs: number;
  logger: Logger;
  /**
   * Consecutive failures before the switch turns degraded; the failures before that are
   * answered by the fallback one by one (a lone slow reply under load does not divert the
   * whole process for `recheckMs`).
   * @default 1
   */
  failuresToDegrade?: number;
}

/** Routes calls to Redis or memory; see the module comment. */
export class BackendSwitch<S> {
  private degraded = false;
  private probing = false;
  private nextProbeAt = 0;
  private lastError: Error | undefined;
  private failures = 0;
  /** Calls answered by the fallback (memory, open or closed) since creation. */
  fallbacks = 0;

  constructor(private readonly options: BackendSwitchOptions<S>) {}

  /** `"redis"`, `"memory"` (no Redis given) or `"degraded"` (Redis failing, fallback in use). */
  get state(): "redis" | "memory" | "degraded" {
    if (this.options.redis === undefined) return "memory";
    return this.degraded ? "degraded" : "redis";
  }

  /**
   * Runs `op` on the backend currently in charge. Resolves `undefined` when Redis failed and
   * the mode is `"open"`; rejects with `StoreUnavailableError` when the mode is `"closed"`.
   */
  run<T>(op: (store: S) => Promise<T>): Promise<{ value: T; backend: Backend } | undefined> {
    const { redis } = this.options;
    if (redis === undefined || this.degraded) return this.runSlow(op);
    // The hot path: Redis healthy. No async frame, one continuation.
    let pending: Promise<T>;
    try {
      pending = op(redis);
    } catch (err) {
      pending = Promise.reject(err); // a client that throws instead of rejecting
    }
    return withTimeout(pending, this.options.timeoutMs).then(
      (value) => {
        this.failures = 0;
        return { value, backend: "redis" as const };
      },
      (err: unknown) => {
        this.fail(toError(err));
        return this.fallback(op);
      },
    );
  }

  /** Memory only, or degraded: fall back, or probe Redis once per `recheckMs`. */
  private async runSlow<T>(
    op: (store: S) => Promise<T>,
  ): Promise<{ value: T; backend: Backend } | undefined> {
    const { redis, memory } = this.options;
    if (redis === undefined) return { value: await op(memory), backend: "memory" };
    if (this.probing || Date.now() < this.nextProbeAt) return this.fallback(op);
    this.probing = true;
    try {
      const value = await withTimeout(op(redis), this.options.timeoutMs);
      this.degraded = false;
      this.failures = 0;
      this.options.logger.info(`${this.options.scope}: Redis answers again; back on Redis`);
      return { value, backend: "redis" };
    } catch (err) {
      this.lastError = toError(err);
      this.nextProbeAt = Date.now() + this.options.recheckMs;
      return this.fallback(op);
    } finally {
      this.probing = false;
    }
  }

  /**
   * Runs `op` on Redis only, within the timeout, without falling back: true when it succeeded,
   * false when Redis is degraded, absent or failed (a failure also turns the switch degraded).
   */
  async tryRedis(op: (store: S) => Promise<unknown>): Promise<boolean> {
    const { redis } = this.options;
    if (redis === undefined || this.degraded) return false;
    try {
      await withTimeout(op(redis), this.options.timeoutMs);
      this.failures = 0;
      return true;
    } catch (err) {
      this.fail(toError(err));
      return false;
    }
  }

  private fail(err: Error): void {
    this.lastError = err;
    this.failures++;
    if (this.failures >= (this.options.failuresToDegrade ?? 1)) this.turnDegraded(err);
  }

  private turnDegraded(err: Error): void {
    this.lastError = err;
    this.nextProbeAt = Date.now() + this.options.recheckMs;
    if (this.degraded) return;
    this.degraded = true;
    const what = {
      memory: "using the in-process memory backend",
      open: "letting requests through (onRedisError: open)",
      closed: "rejecting requests (onRedisError: closed)",
    }[this.options.onRedisError];
    this.options.logger.warn(
      `${this.options.scope}: Redis unavailable (${err.message}); ${what} until it answers again`,
    );
  }

  private async fallback<T>(
    op: (store: S) => Promise<T>,
  ): Promise<{ value: T; backend: Backend } | undefined> {
    this.fallbacks++;
    if (this.options.onRedisError === "memory") {
      return { value: await op(this.options.memory), backend: "memory" };
    }
    if (this.options.onRedisError === "open") return undefined;
    throw new StoreUnavailableError(
      `${this.options.scope}: Redis unavailable (${this.lastError?.message ?? "unknown error"})`,
      { cause: this.lastError },
    );
  }
}

/**
 * Resolves or rejects like `promise`, or rejects with `RedisTimeoutError` after `ms` (and after
 * the I/O already received by then). A late rejection of `promise` is swallowed, so it never
 * becomes an unhandled rejection.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // Timers run before I/O in each turn of the event loop: after a busy stretch, the timer
    // would fire while the reply already waits in the socket. setImmediate runs after this
    // turn's I/O, so a reply that did arrive in time wins.
    const timer = setTimeout(() => setImmediate(() => reject(new RedisTimeoutError(ms))), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(toError(err));
      },
    );
  });
}
