/**
 * The lock store interface: acquire (with a fencing token), extend and release, each one
 * atomic step that compares the holder's token. `RedisLockStore` and `MemoryLockStore`
 * implement it with the same semantics.
 */

/** `acquire()`'s answer. */
export type AcquireAnswer =
  | { acquired: true; fence: number }
  | { acquired: false /** ms until the current holder's lock expires */; retryAfterMs: number };

/** Storage of locks. `key` is the resource's hash-tagged key, built by the manager. */
export interface LockStore {
  /** Takes `key` for `ttlMs` if free; on success, the next fence of the resource. */
  acquire(key: string, token: string, ttlMs: number): Promise<AcquireAnswer>;
  /** Sets the lock's TTL to `ttlMs` if `token` still holds it. */
  extend(key: string, token: string, ttlMs: number): Promise<boolean>;
  /** Deletes the lock if `token` still holds it, and wakes waiters; false when it did not. */
  release(key: string, token: string): Promise<boolean>;
  /** Calls `onReleased(key)` whenever a lock of this store is released, until the returned function is called. */
  onReleased(listener: (key: string) => void): Promise<() => void>;
}
