/**
 * The in-process lock store: the embedded default when no `redis` is given. One store per
 * process (like one Redis server), so every memory-backed manager with the same prefix sees
 * the same locks. Expired locks are removed lazily and by a sweep of at most 1000 per call.
 */
import { type AcquireAnswer, type LockStore, WAITER_LEASE_MS } from "./types.js";

interface Held {
  token: string;
  expiresAt: number;
}

const locks = new Map<string, Held>();
const fences = new Map<string, number>();
const listeners = new Set<(key: string) => void>();
/** Waiters' leases per key: token → lease end (ms). */
const waiters = new Map<string, Map<string, number>>();

/** The live waiter leases of `key` (expired ones dropped). */
function leases(key: string, now: number): Map<string, number> | undefined {
  const m = waiters.get(key);
  if (m === undefined) return undefined;
  for (const [token, until] of m) if (until <= now) m.delete(token);
  if (m.size === 0) {
    waiters.delete(key);
    return undefined;
  }
  return m;
}

function live(key: string, now: number): Held | undefined {
  const held = locks.get(key);
  if (held !== undefined && held.expiresAt <= now) {
    locks.delete(key);
    return undefined;
  }
  return held;
}

/** See the module comment. */
export class MemoryLockStore implements LockStore {
  async acquire(
    key: string,
    token: string,
    ttlMs: number,
    waiting: boolean,
  ): Promise<AcquireAnswer> {
    const now = Date.now();
    const held = live(key, now);
    const queued = leases(key, now);
    if (held !== undefined || (!waiting && queued !== undefined)) {
      if (waiting) {
        const m = queued ?? new Map<string, number>();
        m.set(token, now + WAITER_LEASE_MS);
        waiters.set(key, m);
      }
      return { acquired: false, retryAfterMs: held === undefined ? -1 : held.expiresAt - now };
    }
    queued?.delete(token);
    locks.set(key, { token, expiresAt: now + ttlMs });
    // The clock in microseconds as a floor (the Redis store starts a new counter there).
    const fence = Math.max((fences.get(key) ?? 0) + 1, now * 1000);
    fences.set(key, fence);
    if (locks.size > 10_000) sweep(now);
    return { acquired: true, fence };
  }

  async leave(key: string, token: string): Promise<void> {
    waiters.get(key)?.delete(token);
  }

  async extend(key: string, token: string, ttlMs: number): Promise<boolean> {
    const held = live(key, Date.now());
    if (held?.token !== token) return false;
    held.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async release(key: string, token: string): Promise<boolean> {
    const held = live(key, Date.now());
    if (held?.token !== token) return false;
    locks.delete(key);
    for (const listener of listeners) queueMicrotask(() => listener(key));
    return true;
  }

  async onReleased(listener: (key: string) => void): Promise<() => void> {
    listeners.add(listener);
    return () => void listeners.delete(listener);
  }
}

function sweep(now: number): void {
  let n = 0;
  for (const [key, held] of locks) {
    if (held.expiresAt <= now) locks.delete(key);
    if (++n >= 1000) break;
  }
  if (fences.size > 100_000) fences.clear(); // fences stay increasing: the clock is their floor
}
