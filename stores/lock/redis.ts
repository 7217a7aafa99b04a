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
 * Acquire: takes the lock if it is free, with the resource's next fence.
 *
 *   KEYS[1]  lock       the holder's token, with a PX expiry
 *   KEYS[2]  fence      the resource's last fence (a counter)
 *   KEYS[3]  waiters    waiters' leases: a sorted set, token → lease end (ms)
 *   ARGV[1]  token      the caller's token
 *   ARGV[2]  ttlMs      the lock's TTL
 *   ARGV[3]  fenceTtlMs how long the fence outlives this acquisition (`FENCE_TTL_MS`)
 *   ARGV[4]  waiting    "1" when the caller waits (it then takes or renews a lease), else "0"
 *   ARGV[5]  leaseMs    a waiter's lease (`WAITER_LEASE_MS`)
 *
 * A caller that does not wait yields a free lock to live waiters (they came first), so a
 * process that releases and re-acquires in a loop cannot starve the others. The fence is the
 * counter plus one, but never below Redis's clock in microseconds: fences keep increasing even
 * after the counter key expired (as long as Redis's clock does not go back).
 * Returns { 1, fence } or { 0, ms until the holder's lock expires, or -1 }.
 */
const ACQUIRE = defineScript(
  "lock_acquire",
  `
local lock, fence_key, waiters = KEYS[1], KEYS[2], KEYS[3]
local token, ttl_ms, fence_ttl_ms = ARGV[1], ARGV[2], ARGV[3]
local waiting, lease_ms = ARGV[4] == '1', tonumber(ARGV[5])
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', waiters, '-inf', now_ms)
local yield = not waiting and redis.call('ZCARD', waiters) > 0
if not yield and redis.call('SET', lock, token, 'PX', ttl_ms, 'NX') then
  redis.call('ZREM', waiters, token)
  local now_us = t[1] * 1000000 + t[2]
  local fence = redis.call('INCR', fence_key)
  if fence < now_us then
    fence = now_us
    redis.call('SET', fence_key, string.format('%.0f', fence))
  end
  redis.call('PEXPIRE', fence_key, fence_ttl_ms)
  return { 1, string.format('%.0f', fence) }
end
if waiting then
  redis.call('ZADD', waiters, now_ms + lease_ms, token)
  redis.call('PEXPIRE', waiters, lease_ms)
end
local left = redis.call('PTTL', lock)
if left < 0 then left = -1 end
return { 0, left }
`,
);

/**
 * Leave: drops a waiter's lease (it stopped waiting, or got the lock).
 *
 *   KEYS[1]  waiters    waiters' leases: a sorted set, token → lease end (ms)
 *   ARGV[1]  token      the waiter's token
 *
 * Returns the number of leases removed (0 or 1).
 */
const LEAVE = defineScript(
  "lock_leave",
  `
local waiters = KEYS[1]
local token = ARGV[1]
return redis.call('ZREM', waiters, token)
`,
);

/**
 * Extend: sets the lock's TTL if the token still holds it.
 *
 *   KEYS[1]  lock       the holder's token, with a PX expiry
 *   ARGV[1]  token      the caller's token
 *   ARGV[2]  ttlMs      the new TTL, from now
 *
 * Returns 1, or 0 when the token does not hold the lock (expired or taken).
 */
const EXTEND = defineScript(
  "lock_extend",
  `
local lock = KEYS[1]
local token, ttl_ms = ARGV[1], ARGV[2]
if redis.call('GET', lock) ~= token then return 0 end
return redis.call('PEXPIRE', lock, ttl_ms)
`,
);

/**
 * Release: deletes the lock if the token still holds it, and publishes it (waiters wake).
 *
 *   KEYS[1]  lock       the holder's token, with a PX expiry
 *   ARGV[1]  token      the caller's token
 *   ARGV[2]  channel    the release channel (`<prefix>released`)
 *   ARGV[3]  message    the pub/sub envelope naming the lock's key
 *
 * Returns 1, or 0 when the token did not hold the lock (nothing deleted, nothing published).
 */
const RELEASE = defineScript(
  "lock_release",
  `
local lock = KEYS[1]
local token, channel, message = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', lock) ~= token then return 0 end
redis.call('DEL', lock)
redis.call('PUBLISH', channel, message)
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
    this.pubsub = createPubSub({ redis: redis.client as RedisClient, logger }, "locks");
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
