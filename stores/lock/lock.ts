/**
 * `createLockManager()`: distributed locks with fencing tokens, loss signals, waiting without
 * polling, and `withLock()` with automatic extension.
 *
 * Waiting: within one process, waiters of a resource queue in arrival order and only the
 * first of them tries to acquire. It tries again when a release is published (pub/sub) or
 * when the holder's lock would expire (the store says when), never on a fixed interval.
 *
 * Loss: a lock is lost when its TTL passes without a successful extension, when an extension
 * finds another token (or none) under the key, or when an extension fails (an error or a
 * timeout: the lock can no longer be vouched for). Loss aborts `lock.signal` with a
 * `LockLostError`; nothing is thrown from a timer.
 */
import { randomUUID } from "node:crypto";
import type { RedisDriver } from "../core/driver.js";
import {
  InvalidOptionError,
  LockNotAcquiredError,
  StoreUnavailableError,
  toError,
} from "../core/errors.js";
import { withTimeout } from "../core/fallback.js";
import { parsePrefix, taggedKey } from "../core/keys.js";
import { consoleLogger, type Logger } from "../core/logger.js";
import { fail, optionalRedis, positiveInt, rejectUnknown } from "../core/options.js";
import { track, untrack } from "../core/registry.js";
import { duration, HeldLock, type LockHost, ttl } from "./held-lock.js";
import { MemoryLockStore } from "./memory.js";
import {
  type AcquireOptions,
  checkResource,
  type Lock,
  type LockManager,
  type LockManagerOptions,
  type LockManagerStats,
  type WithLockOptions,
} from "./options.js";
import { type Queue, Waiter } from "./queue.js";
import { RedisLockStore } from "./redis.js";
import { type LockStore, WAITER_LEASE_MS } from "./types.js";

export {
  type AcquireOptions,
  type Lock,
  type LockManager,
  type LockManagerOptions,
  type LockManagerStats,
  MAX_RESOURCE_LENGTH,
  type WithLockOptions,
} from "./options.js";

const SCOPE = "createLockManager";

class Manager implements LockManager, LockHost {
  readonly counters: LockManagerStats = { acquired: 0, contended: 0, lost: 0, waitMs: 0 };
  private readonly store: LockStore;
  private readonly queues = new Map<string, Queue>();
  private subscription: Promise<() => void> | undefined;
  /** True once release messages are being received. */
  private heard = false;

  constructor(
    redis: RedisDriver | undefined,
    private readonly prefix: string,
    private readonly defaultTtlMs: number,
    private readonly timeoutMs: number,
    readonly logger: Logger,
  ) {
    this.store =
      redis === undefined ? new MemoryLockStore() : new RedisLockStore(redis, prefix, logger);
    track("lock", prefix, this, redis);
  }

  /** Runs a store call within `timeoutMs`; failures become `StoreUnavailableError`. */
  async call<T>(op: (store: LockStore) => Promise<T>): Promise<T> {
    try {
      return await withTimeout(op(this.store), this.timeoutMs);
    } catch (err) {
      throw new StoreUnavailableError(`${SCOPE}: Redis unavailable (${toError(err).message})`, {
        cause: err,
      });
    }
  }

  keyOf(resource: string): string {
    return taggedKey(this.prefix, resource);
  }

  async acquire(resource: string, options: AcquireOptions = {}): Promise<Lock> {
    checkResource(resource);
    if (typeof options !== "object" || options === null) {
      fail("acquire", "options", "an object", options);
    }
    rejectUnknown("acquire", options, ["ttlMs", "waitMs", "signal"]);
    const ttlMs = options.ttlMs === undefined ? this.defaultTtlMs : ttl("acquire", options.ttlMs);
    const waitMs = options.waitMs ?? 0;
    duration("acquire", "waitMs", waitMs, true);
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      fail("acquire", "signal", "an AbortSignal", signal);
    }
    const key = this.keyOf(resource);
    const token = randomUUID();
    if (waitMs === 0) {
      const answer = await this.attempt(resource, key, token, ttlMs, false);
      if (answer instanceof HeldLock) return answer;
      this.counters.contended++;
      throw new LockNotAcquiredError(resource, Math.max(0, answer.retryAfterMs));
    }
    // A caller that will wait takes its place in this process's queue on arrival, so callers
    // of one process get the lock in the order they asked, even while a first try is in flight.
    let queue = this.queues.get(key);
    if (queue === undefined) {
      queue = { waiters: [] };
      this.queues.set(key, queue);
    }
    const me = new Waiter();
    queue.waiters.push(me);
    if (queue.waiters[0] !== me) {
      this.counters.contended++; // others of this process wait already: queue behind them
      return this.wait(resource, key, token, ttlMs, waitMs, signal, queue, me, undefined);
    }
    // The first try takes the waiter lease. When releases were already being heard before it,
    // none can slip past: the wait starts with a nap.
    const heard = this.heard;
    let answer: HeldLock | { retryAfterMs: number };
    try {
      answer = await this.attempt(resource, key, token, ttlMs, true);
    } catch (err) {
      this.dequeue(key, queue, me);
      throw err;
    }
    if (answer instanceof HeldLock) {
      this.dequeue(key, queue, me);
      return answer;
    }
    this.counters.contended++;
    const tried = heard ? answer.retryAfterMs : undefined;
    return this.wait(resource, key, token, ttlMs, waitMs, signal, queue, me, tried, true);
  }

  /** Leaves the queue; when `me` was first, the next in line tries now. */
  private dequeue(key: string, queue: Queue, me: Waiter): void {
    const i = queue.waiters.indexOf(me);
    if (i !== -1) queue.waiters.splice(i, 1);
    if (queue.waiters.length === 0) {
      if (this.queues.get(key) === queue) this.queues.delete(key);
    } else if (i === 0) {
      queue.waiters[0]?.wake();
    }
  }

  /** One acquire call. A call that failed may still have taken the lock: it is given back. */
  private async attempt(
    resource: string,
    key: string,
    token: string,
    ttlMs: number,
    waiting: boolean,
  ): Promise<HeldLock | { retryAfterMs: number }> {
    const startedAt = Date.now();
    try {
      const answer = await this.call((store) => store.acquire(key, token, ttlMs, waiting));
      if (!answer.acquired) return answer;
      this.counters.acquired++;
      return new HeldLock(resource, token, answer.fence, ttlMs, this, key, startedAt);
    } catch (err) {
      // A timed-out acquire may still run in Redis: release the token's lock if it got it.
      this.store.release(key, token).catch(() => {});
      this.store.leave(key, token).catch(() => {});
      throw err;
    }
  }

  /**
   * Waits in this process's queue for `key` (`me` is in it already), trying when first and
   * woken; see the module comment. `tried`: the first try just failed with releases heard.
   */
  private async wait(
    resource: string,
    key: string,
    token: string,
    ttlMs: number,
    waitMs: number,
    signal: AbortSignal | undefined,
    queue: Queue,
    me: Waiter,
    tried: number | undefined,
    leased = false,
  ): Promise<Lock> {
    const started = Date.now();
    const deadline = started + waitMs;
    const onAbort = () => me.wake();
    signal?.addEventListener("abort", onAbort, { once: true });
    let retryAfterMs = tried ?? 0;
    let skip = tried !== undefined; // just tried (and leased) with releases already heard
    try {
      // Hear releases; a subscription that cannot be made in time only costs wake-up speed.
      await withTimeout(this.listen(), Math.min(waitMs, this.timeoutMs)).catch(() => {});
      for (;;) {
        if (signal?.aborted) throw new LockNotAcquiredError(resource, Math.max(0, retryAfterMs));
        const head = queue.waiters[0] === me;
        if (head && skip) skip = false;
        else if (head) {
          const answer = await this.attempt(resource, key, token, ttlMs, true);
          if (answer instanceof HeldLock) return answer;
          leased = true;
          retryAfterMs = answer.retryAfterMs;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new LockNotAcquiredError(resource, Math.max(0, retryAfterMs));
        // Sleep until a release is published, or the holder's lock would expire, or the
        // waiter lease needs renewing, or the deadline.
        const renew = WAITER_LEASE_MS / 2;
        const nap = head ? Math.min(left, retryAfterMs > 0 ? retryAfterMs : renew, renew) : left;
        await me.sleep(nap);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.counters.waitMs += Date.now() - started;
      this.dequeue(key, queue, me);
      if (leased) this.store.leave(key, token).catch(() => {}); // no-op once acquired
    }
  }

  /** Subscribes (once) to release messages: a release wakes the first waiter of its key. */
  private listen(): Promise<unknown> {
    this.subscription ??= this.store
      .onReleased((key) => this.queues.get(key)?.waiters[0]?.wake())
      .then((off) => {
        this.heard = true;
        return off;
      })
      .catch((err: unknown) => {
        this.subscription = undefined; // try again next time; waiters still wake at expiry
        this.logger.warn(
          `${SCOPE}: cannot subscribe to releases (${toError(err).message}); waiters retry when locks expire`,
        );
        return () => {};
      });
    return this.subscription;
  }

  autoExtend(lock: Lock, options: { maxHoldMs?: number } = {}): () => void {
    if (!(lock instanceof HeldLock)) {
      throw new InvalidOptionError(`${SCOPE}: autoExtend() takes a lock from this package`, "lock");
    }
    const maxHoldMs = options.maxHoldMs;
    if (maxHoldMs !== undefined) duration("autoExtend", "maxHoldMs", maxHoldMs);
    const startedAt = Date.now();
    const every = Math.max(1, Math.floor(lock.ttlMs / 3));
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      if (stopped || lock.settled) return;
      const held = Date.now() - startedAt;
      if (maxHoldMs !== undefined && held >= maxHoldMs) {
        lock.expiryReason = "max-hold"; // stop extending: it expires and is reported lost
        return;
      }
      const ms = maxHoldMs === undefined ? lock.ttlMs : Math.min(lock.ttlMs, maxHoldMs - held);
      if (ms < lock.ttlMs) lock.expiryReason = "max-hold"; // the last extension: up to maxHoldMs
      try {
        await lock.extend(Math.max(1, ms)); // one extension in flight: the next waits for it
      } catch {
        // extend() reports failures as loss; nothing may escape a timer
      }
      if (!stopped && !lock.settled) timer = setTimeout(tick, every);
    };
    timer = setTimeout(tick, every);
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  async withLock<T>(
    resource: string,
    fn: (lock: Lock) => Promise<T> | T,
    options: WithLockOptions = {},
  ): Promise<T> {
    if (typeof fn !== "function") fail("withLock", "fn", "a function", fn);
    const { maxHoldMs, ...acquireOptions } = options;
    if (maxHoldMs !== undefined) duration("withLock", "maxHoldMs", maxHoldMs);
    const lock = await this.acquire(resource, acquireOptions);
    const stop = this.autoExtend(lock, { maxHoldMs });
    try {
      return await fn(lock);
    } finally {
      stop();
      await lock.release();
    }
  }

  stats(): LockManagerStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    untrack(this);
    const off = await this.subscription;
    off?.();
    if (this.store instanceof RedisLockStore) await this.store.close();
  }
}

/** Creates a lock manager on Redis, or in memory when no `redis` is given. */
export function createLockManager(options: LockManagerOptions = {}): LockManager {
  if (typeof options !== "object" || options === null) fail(SCOPE, "options", "an object", options);
  rejectUnknown(SCOPE, options, ["redis", "prefix", "defaultTtlMs", "timeoutMs", "logger"]);
  const redis = optionalRedis(SCOPE, "redis", options.redis);
  return new Manager(
    redis,
    parsePrefix(SCOPE, options.prefix, "lock:"),
    options.defaultTtlMs === undefined ? 30_000 : ttl(SCOPE, options.defaultTtlMs),
    positiveInt(SCOPE, "timeoutMs", options.timeoutMs, 2000),
    options.logger ?? consoleLogger,
  );
}
