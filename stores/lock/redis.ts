/**
 * The Redis lock store: one script per operation, each touching one resource's keys (one
 * hash tag, one Cluster slot).
 *
 * Key layout for resource key K (`prefix{escaped resource}`):
 *   K          the lock: the holder's token, with a PX expiry
 *   K:fence    the resource's fence counter, kept for a day after its first acquisition
 *   K:waiters  waiters' leases (token → lease end), renewed while they wait
 *   K:wake     set by a waiter that found the lock held: its release must publish
 * Releases PUBLISH on `<prefix>released` (from inside the script) when K:wake says someone
 * waits, so waiters wake at once; an uncontended acquire + release runs 5 or 6 commands
 * (EXISTS, SET, INCR or TIME + SET; GET, DEL).
 */

import type { RedisDriver } from "../core/driver.js";
import type { Logger } from "../core/logger.js";
import { AcknowledgedDriver, type ReplicasConfig } from "../core/replicas.js";
import type { RedisClient } from "../core/scripts.js";
import { defineScript } from "../core/scripts.js";
import { createPubSub, type PubSub } from "../pubsub/pubsub.js";
import { type AcquireAnswer, type LockStore, WAITER_LEASE_MS } from "./types.js";

/** How long a fence counter lives from the first acquisition that created it. */
export const FENCE_TTL_MS = 86_400_000;

/**
 * Acquire: takes the lock if it is free, with the resource's next fence.
 *
 *   KEYS[1]  lock       the holder's token, with a PX expiry
 *   KEYS[2]  fence      the resource's fence counter
 *   KEYS[3]  waiters    waiters' leases: a sorted set, token → lease end (ms)
 *   KEYS[4]  wake       exists while a waiter waits for the holder's release
 *   ARGV[1]  token      the caller's token
 *   ARGV[2]  ttlMs      the lock's TTL
 *   ARGV[3]  fenceTtlMs how long a new fence counter lives (`FENCE_TTL_MS`)
 *   ARGV[4]  waiting    "1" when the caller waits (it then takes or renews a lease), else "0"
 *   ARGV[5]  leaseMs    a waiter's lease (`WAITER_LEASE_MS`)
 *
 * One EXISTS says whether waiters and the counter exist (it counts a key once per mention:
 * 2 × waiters + fence). Nobody waiting and the counter there: EXISTS, SET, INCR.
 * A caller that does not wait yields a free lock to live waiters (they came first), so a
 * process that releases and re-acquires in a loop cannot starve the others. A waiter that does
 * not get the lock takes or renews its lease and sets `wake`, so the holder's release publishes.
 * Fences: a new counter starts at Redis's clock in microseconds and lives a day from then;
 * it grows by one per acquisition, far less than a microsecond's worth per acquisition
 * (each is a script run of its own), so when it expires the clock is past every fence it gave
 * and the next counter starts above them: fences keep increasing (as long as Redis's clock
 * does not go back by a day).
 * Returns { 1, fence } or { 0, ms until the holder's lock expires, or -1 }.
 */
const ACQUIRE = defineScript(
  "lock_acquire",
  `
local lock, fence_key, waiters, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, ttl_ms, fence_ttl_ms = ARGV[1], ARGV[2], ARGV[3]
local waiting, lease_ms = ARGV[4] == '1', tonumber(ARGV[5])
local found = redis.call('EXISTS', waiters, waiters, fence_key)
local queued, t = found >= 2, nil
if queued then
  t = redis.call('TIME')
  redis.call('ZREMRANGEBYSCORE', waiters, '-inf', t[1] * 1000 + math.floor(t[2] / 1000))
end
local yield = queued and not waiting and redis.call('ZCARD', waiters) > 0
if not yield and redis.call('SET', lock, token, 'PX', ttl_ms, 'NX') then
  if queued and waiting then redis.call('ZREM', waiters, token) end
  local fence = 1
  if found % 2 == 1 then fence = redis.call('INCR', fence_key) end
  if fence == 1 then
    t = t or redis.call('TIME')
    fence = t[1] * 1000000 + t[2]
    redis.call('SET', fence_key, string.format('%.0f', fence), 'PX', fence_ttl_ms)
  end
  return { 1, fence }
end
if waiting then
  t = t or redis.call('TIME')
  redis.call('ZADD', waiters, t[1] * 1000 + math.floor(t[2] / 1000) + lease_ms, token)
  redis.call('PEXPIRE', waiters, lease_ms)
  redis.call('SET', wake, '1', 'PX', lease_ms)
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
 * Release: deletes the lock if the token still holds it; when a waiter set `wake`, deletes
 * that too and publishes the release (waiters wake).
 *
 *   KEYS[1]  lock       the holder's token, with a PX expiry
 *   KEYS[2]  wake       exists while a waiter waits for this release
 *   ARGV[1]  token      the caller's token
 *   ARGV[2]  channel    the release channel (`<prefix>released`)
 *   ARGV[3]  key        the lock's key as the manager names it (no client key prefix)
 *   ARGV[4]  origin     the publishing pub/sub instance's id
 *   ARGV[5]  timestamp  when the release was sent (ms, this process's clock)
 *
 * The message is the pub/sub envelope (as `PubSub.encode()` writes it), built here only when
 * it is sent; its id is a digest of the token (unique per lock, and not the token).
 * Returns 1, or 0 when the token did not hold the lock (nothing deleted, nothing published).
 */
const RELEASE = defineScript(
  "lock_release",
  `
local lock, wake = KEYS[1], KEYS[2]
local token, channel, key, origin, timestamp = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('GET', lock) ~= token then return 0 end
if redis.call('DEL', lock, wake) == 2 then
  redis.call('PUBLISH', channel, cjson.encode({
    id = redis.sha1hex(token), type = 'lock.released', timestamp = tonumber(timestamp),
    origin = origin, data = { key = key },
  }))
end
return 1
`,
);

/** Whether an ACQUIRE reply is a grant (a refusal writes nothing that must be acknowledged). */
const granted = (reply: unknown) => (reply as [number])[0] === 1;

/** See the module comment. */
export class RedisLockStore implements LockStore {
  private readonly pubsub: PubSub;
  private readonly channel: string;
  /** With `replicas`: the connection grants and extensions go to, each with its WAIT. */
  private readonly acked: AcknowledgedDriver | undefined;
  /**
   * Where releases and waiter leases go: the grants' connection, so a release sent after a
   * grant that timed out on our side reaches Redis after it (never before it, to find nothing).
   */
  private readonly plain: RedisDriver;

  constructor(
    private readonly redis: RedisDriver,
    prefix: string,
    logger: Logger,
    replicas?: ReplicasConfig,
  ) {
    this.pubsub = createPubSub({ redis: redis.client as RedisClient, logger }, "locks");
    this.channel = `${prefix}released`;
    this.acked = replicas === undefined ? undefined : new AcknowledgedDriver(redis, replicas);
    this.plain = this.acked?.plain ?? redis;
  }

  async acquire(
    key: string,
    token: string,
    ttlMs: number,
    waiting: boolean,
  ): Promise<AcquireAnswer> {
    const keys = [key, `${key}:fence`, `${key}:waiters`, `${key}:wake`];
    const args = [token, ttlMs, FENCE_TTL_MS, waiting ? "1" : "0", WAITER_LEASE_MS];
    const [ok, value] = (
      this.acked === undefined
        ? await ACQUIRE.run(this.redis, keys, args)
        : await this.acked.runAcknowledged(ACQUIRE, keys, args, granted)
    ) as [number, string | number];
    return ok === 1
      ? { acquired: true, fence: Number(value) }
      : { acquired: false, retryAfterMs: Number(value) };
  }

  async leave(key: string, token: string): Promise<void> {
    await LEAVE.run(this.plain, [`${key}:waiters`], [token]);
  }

  async extend(key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await EXTEND.run(this.acked ?? this.redis, [key], [token, ttlMs])) === 1;
  }

  async release(key: string, token: string): Promise<boolean> {
    const keys = [key, `${key}:wake`];
    const args = [token, this.channel, key, this.pubsub.origin, Date.now()];
    return (await RELEASE.run(this.plain, keys, args)) === 1;
  }

  async onReleased(listener: (key: string) => void): Promise<() => void> {
    const off = await this.pubsub.subscribe<{ key: string }>(this.channel, (message) => {
      if (typeof message.data?.key === "string") listener(message.data.key);
    });
    return () => void off().catch(() => {});
  }

  /** Releases the subscription (and the acknowledging connection). */
  close(): Promise<void> {
    this.acked?.close();
    return this.pubsub.close();
  }
}
