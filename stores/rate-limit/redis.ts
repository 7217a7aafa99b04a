/**
 * The Redis rate limit store: one Lua script per operation, one round trip per call, with
 * Redis server time (`TIME`) as the only clock. Every key of one user key shares its hash tag.
 *
 * Key layout for user key K and prefix P:
 *   P{K}:block   a plain key with a PX expiry while K is blocked
 *   P{K}:<i>     hash with policy i's state: k = "<algorithm code>:<windowMs>" (state of another
 *                algorithm or window is ignored), a / b / c = the algorithm's numbers
 */
import { taggedKey } from "../core/keys.js";
import { defineScript, type RedisClient } from "../core/scripts.js";
import {
  ALGORITHMS,
  type Policy,
  type PolicyResult,
  type RateLimitStore,
  type StoreAnswer,
} from "./types.js";

/**
 * Consume or peek. Evaluates every policy first and writes only when all allow, so several
 * policies are charged all-or-nothing in one atomic call.
 * KEYS[1] block key; KEYS[1+i] policy i's state hash.
 * ARGV[1] "1" consume / "0" peek; ARGV[2] cost; ARGV[3] block ms on rejection (0: none);
 * ARGV[3i+1..3i+3] policy i: algorithm code (1 fixed, 2 sliding, 3 token bucket, 4 GCRA),
 * limit, windowMs.
 * Returns { blockedMs, then per policy: allowed, remaining, resetMs, retryAfterMs, marker }.
 */
const CONSUME = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local consume = ARGV[1] == '1'
local cost = tonumber(ARGV[2])
local blockMs = tonumber(ARGV[3])
local blocked = redis.call('PTTL', KEYS[1])
if blocked < 0 then blocked = 0 end
local n = #KEYS - 1
local all, never = blocked == 0, false
local res = {}
for i = 1, n do
  local key = KEYS[i + 1]
  local algo, limit, w = tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
  local kind = ARGV[3 * i + 1] .. ':' .. ARGV[3 * i + 3]
  local s = redis.call('HMGET', key, 'k', 'a', 'b', 'c')
  local a, b, c
  if s[1] == kind then a, b, c = tonumber(s[2]), tonumber(s[3]), tonumber(s[4]) end
  local r = { key = key, kind = kind }
  if algo == 1 then
    -- fixed window from the first hit: a = window start (ms), b = count
    local ms = math.floor(now)
    if a == nil or ms >= a + w then a, b = ms, 0 end
    r.avail = limit - b
    r.ok = cost <= r.avail
    r.reset, r.resetIfCharged, r.retry, r.marker = a + w - ms, a + w - ms, a + w - ms, a
    r.a, r.b, r.c, r.ttl = a, b + cost, 0, a + w - ms
  elseif algo == 2 then
    -- weighted two-window counter: a = window index, b = count in it, c = count in the previous
    local idx = math.floor(now / w)
    if a == idx then c = c or 0 elseif a == idx - 1 then b, c = 0, b else b, c = 0, 0 end
    local elapsed = now - idx * w
    local est = c * (w - elapsed) / w + b
    r.avail = limit - est
    r.ok = cost <= r.avail + 1e-9
    r.reset, r.resetIfCharged, r.marker = w - elapsed, w - elapsed, idx
    if b + cost <= limit then
      r.retry = w * (1 - (limit - cost - b) / c) - elapsed
    else
      r.retry = w - elapsed + w * (1 - (limit - cost) / b)
    end
    r.a, r.b, r.c, r.ttl = idx, b + cost, c, 2 * w - elapsed
  elseif algo == 3 then
    -- token bucket of size limit refilled at limit per windowMs: a = tokens, b = last refill
    local rate = limit / w
    if a == nil then a, b = limit, now end
    a = math.min(limit, a + math.max(0, now - b) * rate)
    r.avail = a
    r.ok = cost <= a + 1e-9
    r.retry = (cost - a) / rate
    r.reset, r.resetIfCharged = (limit - a) / rate, (limit - a + cost) / rate
    r.marker = 0
    r.a, r.b, r.c, r.ttl = math.max(0, a - cost), now, 0, (limit - a + cost) / rate
  else
    -- GCRA with emission interval T = windowMs / limit and burst = limit: a = theoretical arrival
    local T = w / limit
    local tat = a or now
    if tat < now then tat = now end
    local newTat = tat + cost * T
    r.avail = (w - (tat - now)) / T
    r.ok = newTat - w <= now + 1e-6
    r.retry = newTat - w - now
    r.reset, r.resetIfCharged, r.marker = tat - now, newTat - now, 0
    r.a, r.b, r.c, r.ttl = newTat, 0, 0, newTat - now
  end
  if cost > limit then r.ok, never = false, true end
  if not r.ok then all = false end
  res[i] = r
end
local charge = consume and all
if consume and not all and not never and blockMs > 0 and blocked == 0 then
  redis.call('SET', KEYS[1], '1', 'PX', blockMs)
  blocked = blockMs
end
local out = { blocked }
for i = 1, n do
  local r = res[i]
  local remaining, reset, retry = r.avail, r.reset, 0
  if charge then
    redis.call('HSET', r.key, 'k', r.kind, 'a', r.a, 'b', r.b, 'c', r.c)
    redis.call('PEXPIRE', r.key, math.max(1, math.ceil(r.ttl)))
    remaining, reset = r.avail - cost, r.resetIfCharged
  elseif not r.ok then
    retry = math.max(1, math.ceil(r.retry))
    if cost > tonumber(ARGV[3 * i + 2]) then retry = -1 end
  end
  out[#out + 1] = r.ok and 1 or 0
  out[#out + 1] = math.max(0, math.floor(remaining + 1e-9))
  out[#out + 1] = math.max(0, math.ceil(reset))
  out[#out + 1] = retry
  out[#out + 1] = r.marker
end
return out
`;

/**
 * Refund: gives `cost` back to each policy whose state is still the one the consume charged
 * (same window for fixed and sliding windows). Counters never go below zero and buckets never
 * above their size; HSET on an existing hash keeps its TTL, and a missing hash is not created.
 * KEYS[i] policy i's state hash; ARGV[1] cost; ARGV[4i-2..4i+1] algorithm, limit, windowMs, marker.
 */
const REFUND = `
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local algo, limit, w, marker = tonumber(ARGV[4 * i - 2]), tonumber(ARGV[4 * i - 1]), tonumber(ARGV[4 * i]), tonumber(ARGV[4 * i + 1])
  local s = redis.call('HMGET', KEYS[i], 'k', 'a', 'b', 'c')
  if s[1] == ARGV[4 * i - 2] .. ':' .. ARGV[4 * i] then
    local a, b, c = tonumber(s[2]), tonumber(s[3]), tonumber(s[4])
    if algo == 1 and a == marker then
      redis.call('HSET', KEYS[i], 'b', math.max(0, b - cost))
    elseif algo == 2 and a == marker then
      redis.call('HSET', KEYS[i], 'b', math.max(0, b - cost))
    elseif algo == 2 and a == marker + 1 then
      redis.call('HSET', KEYS[i], 'c', math.max(0, c - cost))
    elseif algo == 3 then
      redis.call('HSET', KEYS[i], 'a', math.min(limit, a + cost))
    elseif algo == 4 then
      redis.call('HSET', KEYS[i], 'a', a - cost * w / limit)
    end
  end
end
return 0
`;

const consumeScript = defineScript("ratelimit_consume", CONSUME);
const refundScript = defineScript("ratelimit_refund", REFUND);

/** Rate limit state in Redis (standalone or Cluster). */
export class RedisRateLimitStore implements RateLimitStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  consume(key: string, policies: readonly Policy[], cost: number, blockMs: number) {
    return this.evaluate(key, policies, cost, blockMs, "1");
  }

  peek(key: string, policies: readonly Policy[], cost: number) {
    return this.evaluate(key, policies, cost, 0, "0");
  }

  async refund(key: string, policies: readonly Policy[], cost: number, markers: readonly number[]) {
    const base = taggedKey(this.prefix, key);
    const args: (string | number)[] = [cost];
    policies.forEach((p, i) => {
      args.push(algorithmCode(p), p.limit, p.windowMs, markers[i] ?? 0);
    });
    await refundScript.run(this.redis, policyKeys(base, policies.length), args);
  }

  async reset(key: string, policyCount: number) {
    const base = taggedKey(this.prefix, key);
    await this.redis.del(`${base}:block`, ...policyKeys(base, policyCount));
  }

  async block(key: string, ms: number) {
    await this.redis.set(`${taggedKey(this.prefix, key)}:block`, "1", "PX", ms);
  }

  private async evaluate(
    key: string,
    policies: readonly Policy[],
    cost: number,
    blockMs: number,
    mode: "0" | "1",
  ): Promise<StoreAnswer> {
    const base = taggedKey(this.prefix, key);
    const args: (string | number)[] = [mode, cost, blockMs];
    for (const p of policies) args.push(algorithmCode(p), p.limit, p.windowMs);
    const keys = [`${base}:block`, ...policyKeys(base, policies.length)];
    const reply = (await consumeScript.run(this.redis, keys, args)) as number[];
    const results: PolicyResult[] = [];
    const markers: number[] = [];
    policies.forEach((p, i) => {
      const at = 1 + i * 5;
      results.push({
        ...p,
        allowed: reply[at] === 1,
        remaining: Number(reply[at + 1]),
        resetMs: Number(reply[at + 2]),
        retryAfterMs: Number(reply[at + 3]),
      });
      markers.push(Number(reply[at + 4]));
    });
    return { blockedMs: Number(reply[0]), policies: results, markers };
  }
}

function algorithmCode(policy: Policy): number {
  return ALGORITHMS.indexOf(policy.algorithm) + 1;
}

function policyKeys(base: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${base}:${i}`);
}
