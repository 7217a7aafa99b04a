/**
 * The lock store interface: acquire (with a fencing token), extend and release, each one
 * atomic step that compares the holder's token. `RedisLockStore` and `MemoryLockStore`
 * implement it with the same semantics.
 */

/**
 * How long a waiter's lease lasts: waiters renew it at least this often / 2, so the lease of a
 * waiter that died stops holding others back within this time.
 */
export const WAITER_LEASE_MS = 2000;

/** `acquire()`'s answer. */
export type AcquireAnswer =
  | { acquired: true; fence: number }
  | { acquired: false /** ms until the current holder's lock expires */; retryAfterMs: number };

/** Storage of locks. `key` is the resource's hash-tagged key, built by the manager. */
export interface LockStore {
  /**
   * Takes `key` for `ttlMs` if free; on success, the next fence of the resource. A caller that
   * is not waiting (`waiting` false) does not take a free lock while waiters hold a live lease
   * (they came first); a waiting caller that does not get the lock takes or renews a lease of
   * `WAITER_LEASE_MS`.
   */
  acquire(key: string, token: string, ttlMs: number, waiting: boolean): Promise<AcquireAnswer>;
  /** Drops `token`'s waiter lease (it stopped waiting). */
  leave(key: string, token: string): Promise<void>;
  /** Sets the lock's TTL to `ttlMs` if `token` still holds it. */
  extend(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Deletes the lock if `token` still holds it, and wakes waiters; false when it did not. */
  release(key: string, token: string): Promise<boolean>;
  /** Calls `onReleased(key)` whenever a lock of this store is released, until the returned function is called. */
  onReleased(listener: (key: string) => void): Promise<() => void>;
}
