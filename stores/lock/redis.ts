/**
 * The Redis lock store: one script per operation, each touching one resource's keys (one
 * hash tag, one Cluster slot).
 *
 * Key layout for resource key K (`prefix{escaped resource}`):
 *   K          the lock: the holder's token, with a PX expiry
 *   K:fence    the resource's last fence, kept for a day after the last acquisition
 *   K:waiters  waiters' leases (token → lease end), renewed while they wait
 * Releases PUBLISH on `<prefix>released` (from inside the script), so waiters wake at once.
 */

import type { RedisDriver } from "../core/driver.js";
import type { Logger } from "../core/logger.js";
import type { RedisClient } from "../core/scripts.js";
import { defineScript } from "../core/scripts.js";
import { createPubSub, type PubSub } from "../pubsub/pubsub.js";
import { type AcquireAnswer, type LockStore, WAITER_LEASE_MS } from "./types.js";

/** How long a fence counter outlives the last acquisition of its resource. */
export const FENCE_TTL_MS = 86_400_000;

/**
 * Acquire. KEYS[1] lock, KEYS[2] fence, KEYS[3] waiter leases (sorted set: token → lease end,
 * ms). ARGV[1] token, ARGV[2] ttl ms, ARGV[3] fence ttl ms, ARGV[4] "1" when the caller waits,
 * ARGV[5] lease ms.
 * A caller that does not wait yields a free lock to live waiters (they came first), so a
 * process that releases and re-acquires in a loop cannot starve the others. The fence is the
 * counter plus one, but never below Redis's clock in microseconds: fences keep increasing even
 * after the counter key expired (as long as Redis's clock does not go back).
 * Returns { 1, fence } or { 0, ms until the holder's lock expires, or -1 }.
 */
const ACQUIRE = defineScript(
  "lock_acquire",
  `
local t = redis.call('TIME')
local nowMs = t[1] * 1000 + math.floor(t[2] / 1000)
local waiting = ARGV[4] == '1'
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', nowMs)
local yield = not waiting and redis.call('ZCARD', KEYS[3]) > 0
if not yield and redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  redis.call('ZREM', KEYS[3], ARGV[1])
  local now = t[1] * 1000000 + t[2]
  local fence = redis.call('INCR', KEYS[2])
  if fence < now then
    fence = now
    redis.call('SET', KEYS[2], string.format('%.0f', fence))
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return { 1, string.format('%.0f', fence) }
end
if waiting then
  local lease = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[3], nowMs + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[3], lease)
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = -1 end
return { 0, left }
`,
);

/** Drop a waiter's lease. KEYS[1] waiter leases. ARGV[1] token. */
const LEAVE = defineScript("lock_leave", "return redis.call('ZREM', KEYS[1], ARGV[1])");

/** Extend. KEYS[1] lock. ARGV[1] token, ARGV[2] ttl ms. Returns 1, or 0 when not held. */
const EXTEND = defineScript(
  "lock_extend",
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`,
);

/**
 * Release. KEYS[1] lock. ARGV[1] token, ARGV[2] channel, ARGV[3] message. Deletes the lock
 * and publishes the message when the token holds it; returns 1, or 0 when it did not.
 */
const RELEASE = defineScript(
  "lock_release",
  `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`,
);

/** See the module comment. */
export class RedisLockStore implements LockStore {
  private readonly pubsub: PubSub;
  private readonly channel: string;

  constructor(
    private readonly redis: RedisDriver,
    prefix: string,
    logger: Logger,
  ) {
    this.pubsub = createPubSub({ redis: redis.client as RedisClient, logger });
    this.channel = `${prefix}released`;
  }

  async acquire(
    key: string,
    token: string,
    ttlMs: number,
    waiting: boolean,
  ): Promise<AcquireAnswer> {
    const keys = [key, `${key}:fence`, `${key}:waiters`];
    const args = [token, ttlMs, FENCE_TTL_MS, waiting ? "1" : "0", WAITER_LEASE_MS];
    const [ok, value] = (await ACQUIRE.run(this.redis, keys, args)) as [number, string | number];
    return ok === 1
      ? { acquired: true, fence: Number(value) }
      : { acquired: false, retryAfterMs: Number(value) };
  }

  async leave(key: string, token: string): Promise<void> {
    await LEAVE.run(this.redis, [`${key}:waiters`], [token]);
  }

  async extend(key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await EXTEND.run(this.redis, [key], [token, ttlMs])) === 1;
  }

  async release(key: string, token: string): Promise<boolean> {
    const message = this.pubsub.encode({ key }, "lock.released");
    return (await RELEASE.run(this.redis, [key], [token, this.channel, message])) === 1;
  }

  async onReleased(listener: (key: string) => void): Promise<() => void> {
    const off = await this.pubsub.subscribe<{ key: string }>(this.channel, (message) => {
      if (typeof message.data?.key === "string") listener(message.data.key);
    });
    return () => void off().catch(() => {});
  }

  /** Releases the subscription. */
  close(): Promise<void> {
    return this.pubsub.close();
  }
}
