/**
 * The Redis cache store. Entries are hashes `{ t: stored-at (Redis TIME, ms), m: metadata
 * JSON, b: body bytes }` read with one script call that also returns Redis's clock, so ages
 * never depend on the application servers' clocks.
 *
 * Key layout (the caller passes `P{hash}` entry keys, `hash` covering every key part):
 *   P{hash}        an entry, with a PX expiry (its fresh + stale lifetime)
 *   P{hash}:lock   the fill lock that coalesces concurrent misses (same slot as the entry)
 *   Pt:{tag}       a sorted set of entry keys carrying `tag`, scored by their expiry
 *   Pgen           the generation counter bumped by `purgeAll`
 */

import type { RedisDriver } from "../core/driver.js";
import { taggedKey } from "../core/keys.js";
import { defineScript } from "../core/scripts.js";
import type { CacheStore, LockAnswer, Lookup, StoredResponse } from "./types.js";

/**
 * Read an entry, with Redis's clock.
 *
 * KEYS[1]  entry      the entry hash
 * Returns  nil, or { stored-at ms, metadata JSON, body, now ms }
 */
const GET = defineScript(
  "cache_get",
  `
local v = redis.call('HMGET', KEYS[1], 't', 'm', 'b')
if not v[1] then return false end
local t = redis.call('TIME')
return { v[1], v[2], v[3], tostring(t[1] * 1000 + math.floor(t[2] / 1000)) }
`,
);

/**
 * Store an entry and release the fill lock if this filler still holds it.
 *
 * KEYS[1]  entry      the entry hash
 * KEYS[2]  lock       its fill lock
 * ARGV[1]  metadata   JSON (status, headers, freshness)
 * ARGV[2]  body       bytes
 * ARGV[3]  ttlMs      the entry's lifetime (fresh + stale)
 * ARGV[4]  token      the filler's lock token ('' when it holds none)
 * Returns  the stored-at time (Redis TIME, ms)
 */
const SET = defineScript(
  "cache_set",
  `
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('HSET', KEYS[1], 't', now, 'm', ARGV[1], 'b', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return now
`,
);

/**
 * Take the fill lock, unless the entry was (re)stored since the caller looked.
 *
 * KEYS[1]  entry      the entry hash
 * KEYS[2]  lock       its fill lock
 * ARGV[1]  token      the filler's token
 * ARGV[2]  ttlMs      the lock's lifetime
 * ARGV[3]  seen       the stored-at the caller saw ('' when it saw no entry)
 * Returns  1 taken, 0 held by another filler, 2 already filled, 3 taken but the entry the
 *          caller saw is gone (purged): it must not be revalidated back
 */
const LOCK = defineScript(
  "cache_lock",
  `
local t = redis.call('HGET', KEYS[1], 't')
if t and t ~= ARGV[3] then return 2 end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then
  if ARGV[3] ~= '' and not t then return 3 end
  return 1
end
return 0
`,
);

/**
 * Release a fill lock if it still holds the caller's token.
 *
 * KEYS[1]  lock       the fill lock
 * ARGV[1]  token      the filler's token
 * Returns  1 released, 0 not held by this token
 */
const UNLOCK = defineScript(
  "cache_unlock",
  `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`,
);

/**
 * Add an entry key to a tag's index until it expires; drop members already expired, so the
 * index stays as small as the live entries; extend the index's TTL.
 *
 * KEYS[1]  index      the tag's sorted set (entry key → expiry ms)
 * ARGV[1]  entryKey   the entry's key
 * ARGV[2]  ttlMs      the entry's lifetime
 * Returns  1
 */
const TAG = defineScript(
  "cache_tag",
  `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`,
);

/**
 * Take a tag's index: return its live members and delete it.
 *
 * KEYS[1]  index      the tag's sorted set
 * Returns  the entry keys still alive
 */
const TAKE_TAG = defineScript(
  "cache_take_tag",
  `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
redis.call('DEL', KEYS[1])
return members
`,
);

/** See the module comment. */
export class RedisCacheStore implements CacheStore {
  constructor(
    private readonly redis: RedisDriver,
    private readonly prefix: string,
  ) {}

  get(key: string): Promise<Lookup | undefined> {
    return GET.runBuffer(this.redis, [key], []).then(toLookup);
  }

  async set(key: string, entry: StoredResponse, ttlMs: number, lockToken = ""): Promise<number> {
    const { body, ...meta } = entry;
    const args = [JSON.stringify(meta), body, ttlMs, lockToken];
    return Number(await SET.run(this.redis, [key, `${key}:lock`], args));
  }

  async lock(key: string, token: string, ttlMs: number, seen?: number): Promise<LockAnswer> {
    const args = [token, ttlMs, seen === undefined ? "" : String(seen)];
    const answer = (await LOCK.run(this.redis, [key, `${key}:lock`], args)) as number;
    return answer === 1 ? "taken" : answer === 2 ? "filled" : answer === 3 ? "vanished" : "busy";
  }

  async remove(key: string): Promise<void> {
    await this.redis.command("UNLINK", [key]);
  }

  async unlock(key: string, token: string): Promise<void> {
    await UNLOCK.run(this.redis, [`${key}:lock`], [token]);
  }

  async tag(tag: string, key: string, ttlMs: number): Promise<void> {
    await TAG.run(this.redis, [this.tagKey(tag)], [key, ttlMs]);
  }

  async purgeTag(tag: string): Promise<number> {
    const keys = (await TAKE_TAG.run(this.redis, [this.tagKey(tag)], [])) as string[];
    if (keys.length === 0) return 0;
    const redis = this.redis;
    if (redis.isCluster) {
      // Entries live in many slots: one UNLINK per key, each routed to its node.
      const counts = await Promise.all(keys.map((key) => redis.command("UNLINK", [key])));
      return counts.reduce((a: number, b) => a + Number(b), 0);
    }
    let deleted = 0;
    for (let i = 0; i < keys.length; i += 500) {
      deleted += Number(await redis.command("UNLINK", keys.slice(i, i + 500)));
    }
    return deleted;
  }

  async generation(): Promise<number> {
    return Number((await this.redis.command("GET", [`${this.prefix}gen`])) ?? 0);
  }

  async bumpGeneration(): Promise<number> {
    return Number(await this.redis.command("INCR", [`${this.prefix}gen`]));
  }

  private tagKey(tag: string): string {
    return taggedKey(`${this.prefix}t:`, tag);
  }
}

/** GET's reply: `[storedAt, meta JSON, body, now]`, or nil on a miss. */
function toLookup(reply: unknown): Lookup | undefined {
  if (!Array.isArray(reply) || reply.length < 4) return undefined;
  const [t, m, b, now] = reply as [Buffer, Buffer, Buffer, Buffer];
  const meta = JSON.parse(m.toString()) as Omit<StoredResponse, "body">;
  return {
    entry: { ...meta, body: b },
    storedAt: Number(t.toString()),
    now: Number(now.toString()),
  };
}
