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
 *
 * Redis failing: every store call goes through the shared `BackendSwitch` (closed mode, no
 * memory fallback: a lock held in one process does not exclude the others). A call that fails
 * or misses `timeoutMs` rejects with `StoreUnavailableError`; then, until a probe succeeds,
 * calls reject at once without touching Redis, except one per `recheckMs` (the probe). An
 * extension refused that way reports the lock lost (`extend-failed`); a release refused that
 * way is still sent, unwaited, so the lock goes as soon as Redis takes it.
 */
import { randomUUID } from "node:crypto";
import {
  InvalidOptionError,
  LockNotAcquiredError,
  StoreUnavailableError,
  toError,
} from "../core/errors.js";
import { BackendSwitch, pingOf } from "../core/fallback.js";
import { withTimeout } from "../core/in-flight.js";
import { taggedKey } from "../core/keys.js";
import type { Logger } from "../core/logger.js";
import { fail, rejectUnknown } from "../core/options.js";
import { track, untrack } from "../core/registry.js";
import { duration, extendEvery, HeldLock, type LockHost, ttl } from "./held-lock.js";
import { MemoryLockStore } from "./memory.js";
import {
  type AcquireOptions,
  checkResource,
  type Lock,
  type LockManager,
  type LockManagerConfig,
  type LockManagerOptions,
  type LockManagerStats,
  parseLockManagerOptions,
  type WithLockOptions,
} from "./options.js";
import { dequeue, type Queue, Waiter } from "./queue.js";
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

const same = <T>(value: T): T => value;

class Manager implements LockManager, LockHost {
  readonly counters: LockManagerStats = { acquired: 0, contended: 0, lost: 0, waitMs: 0 };
  readonly logger: Logger;
  /** Redis, or memory when no Redis was given: where clean-ups go directly. */
  private readonly store: LockStore;
  private readonly switch: BackendSwitch<LockStore>;
  private readonly queues = new Map<string, Queue>();
  private subscription: Promise<() => void> | undefined;
  /** True once release messages are being received. */
  private heard = false;

  constructor(
    private readonly config: LockManagerConfig,
    private readonly scope: string,
  ) {
    const { redis, prefix, logger, replicas } = config;
    this.logger = logger;
    this.store =
      redis === undefined
        ? new MemoryLockStore()
        : new RedisLockStore(redis, prefix, logger, replicas);
    this.switch = new BackendSwitch<LockStore>({
      scope,
      redis: redis === undefined ? undefined : this.store,
      memory: redis === undefined ? this.store : undefined,
      onRedisError: config.onRedisError,
      timeoutMs: config.timeoutMs,
      recheckMs: config.recheckMs,
      logger,
      ping: pingOf(redis),
    });
    track("lock", prefix, this, redis);
  }

  call<T>(op: (store: LockStore) => Promise<T>): Promise<T> {
    return this.switch.runThen(op, same, this.refuse) as Promise<T>;
  }

  /** The answer of mode "open" (requireLock's own manager): Redis is not there to vouch for a lock. */
  private readonly refuse = (): never => {
    const why = this.switch.lastErrorMessage ?? "unknown error";
    throw new StoreUnavailableError(`${this.scope}: Redis unavailable (${why})`);
  };

  background(op: (store: LockStore) => Promise<unknown>): void {
    op(this.store).catch(() => {});
  }

  async acquire(resource: string, options: AcquireOptions = {}): Promise<Lock> {
    checkResource(resource);
    if (typeof options !== "object" || options === null) {
      fail("acquire", "options", "an object", options);
    }
    rejectUnknown("acquire", options, ["ttlMs", "waitMs", "signal"]);
    const ttlMs = options.ttlMs === undefined ? this.config.ttlMs : ttl("acquire", options.ttlMs);
    const waitMs = options.waitMs ?? 0;
    duration("acquire", "waitMs", waitMs, true);
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      fail("acquire", "signal", "an AbortSignal", signal);
    }
    const key = taggedKey(this.config.prefix, resource);
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
    // Others of this process wait already: queue behind them. Not while Redis is failing: then
    // the try below is refused at once (or is the probe), so nobody waits on a Redis that is down.
    if (queue.waiters[0] !== me && this.switch.state !== "degraded") {
      this.counters.contended++;
      return this.wait(resource, key, token, ttlMs, waitMs, signal, queue, me, undefined);
    }
    // The first try takes the waiter lease. When releases were already being heard before it,
    // none can slip past: the wait starts with a nap.
    const heard = this.heard && queue.waiters[0] === me;
    let answer: HeldLock | { retryAfterMs: number };
    try {
      answer = await this.attempt(resource, key, token, ttlMs, true);
    } catch (err) {
      dequeue(this.queues, key, queue, me);
      throw err;
    }
    if (answer instanceof HeldLock) {
      dequeue(this.queues, key, queue, me);
      return answer;
    }
    this.counters.contended++;
    const tried = heard ? answer.retryAfterMs : undefined;
    return this.wait(resource, key, token, ttlMs, waitMs, signal, queue, me, tried, true);
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
    let sent = false;
    try {
      const answer = await this.call((store) => {
        sent = true;
        return store.acquire(key, token, ttlMs, waiting);
      });
      if (!answer.acquired) return answer;
      this.counters.acquired++;
      return new HeldLock(resource, token, answer.fence, ttlMs, this, key, startedAt);
    } catch (err) {
      // A timed-out acquire may still run in Redis: release the token's lock if it got it.
      // Nothing to undo when the call was refused without trying Redis.
      if (sent) {
        this.background((store) => store.release(key, token));
        this.background((store) => store.leave(key, token));
      }
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
      await withTimeout(this.listen(), Math.min(waitMs, this.config.timeoutMs)).catch(() => {});
      for (;;) {
        if (signal?.aborted) throw new LockNotAcquiredError(resource, Math.max(0, retryAfterMs));
        const head = queue.waiters[0] === me;
        if (head && skip) skip = false;
        else if (head) {
          const answer = await this.attempt(resource, key, token, ttlMs, true);
          if (answer instanceof HeldLock) {
            leased = false; // the acquire script dropped the lease with it
            return answer;
          }
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
      dequeue(this.queues, key, queue, me);
      if (leased) this.background((store) => store.leave(key, token));
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
          `${this.scope}: cannot subscribe to releases (${toError(err).message}); waiters retry when locks expire`,
        );
        return () => {};
      });
    return this.subscription;
  }

  autoExtend(lock: Lock, options: { maxHoldMs?: number } = {}): () => void {
    if (!(lock instanceof HeldLock)) {
      throw new InvalidOptionError(
        `${this.scope}: autoExtend() takes a lock from this package`,
        "lock",
      );
    }
    const maxHoldMs = options.maxHoldMs;
    if (maxHoldMs !== undefined) duration("autoExtend", "maxHoldMs", maxHoldMs);
    return extendEvery(lock, maxHoldMs);
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
    this.switch.close();
    // Closed first: a subscription that never settles must not keep its connections open.
    const closing = this.store instanceof RedisLockStore ? this.store.close() : undefined;
    const off = await this.subscription;
    off?.();
    await closing;
  }
}

/**
 * Creates a lock manager on Redis, or in memory when no `redis` is given.
 * @throws InvalidOptionError when an option is invalid
 */
export function createLockManager(options: LockManagerOptions = {}): LockManager {
  return new Manager(parseLockManagerOptions(SCOPE, options), SCOPE);
}

/** Builds a manager from an already resolved config (`requireLock()` builds its own). */
export function lockManagerFromConfig(config: LockManagerConfig, scope: string): LockManager {
  return new Manager(config, scope);
}
