/**
 * The Redis rate limit store: one Lua script per operation, one round trip per call, with
 * Redis server time (`TIME`) as the only clock. Every key of one user key shares its hash tag.
 *
 * Key layout for user key K and prefix P:
 *   P{K}:block   a plain key with a PX expiry while K is blocked
 *   P{K}:<i>     policy i's state, a string "<kind> <a> <b> <c>" with a PX expiry, where kind is
 *                "<algorithm code>:<windowMs>" (state of another kind is ignored) and a, b, c
 *                are the algorithm's numbers (see each branch below). A string with SET PX
 *                costs one command where a hash needs HSET + PEXPIRE.
 */

import type { RedisDriver } from "../core/driver.js";
import { taggedKey } from "../core/keys.js";
import { defineScript } from "../core/scripts.js";
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
 * KEYS[1] block key; KEYS[1+i] policy i's state.
 * ARGV[1] "1" consume / "0" peek; ARGV[2] cost; ARGV[3] block ms on rejection (0: none);
 * ARGV[3i+1..3i+3] policy i: kind ("<code>:<windowMs>", code 1 fixed, 2 sliding, 3 token
 * bucket, 4 GCRA), limit, windowMs.
 * Returns { blockedMs, then per policy: allowed, remaining, resetMs, retryAfterMs, marker }.
 */
const CONSUME = `
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local consume, cost, blockMs = ARGV[1] == '1', tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked = redis.call('PTTL', KEYS[1])
if blocked < 0 then blocked = 0 end
local n = #KEYS - 1
local all, never = blocked == 0, false
-- per policy, 8 slots: ok, avail, reset, reset if charged, retry, marker, new state, ttl
local st = {}
for i = 1, n do
  local kind, limit, w = ARGV[3 * i + 1], tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3])
  local algo = string.byte(kind) - 48
  local a, b, c
  local s = redis.call('GET', KEYS[i + 1])
  if s then
    local k, sa, sb, sc = string.match(s, '^(%S+) (%S+) (%S+) (%S+)$')
    if k == kind then a, b, c = tonumber(sa), tonumber(sb), tonumber(sc) end
  end
  local ok, avail, reset, resetC, retry, marker, ttl
  if algo == 1 then
    -- fixed window from the first hit: a = window start (ms), b = count
    local ms = math.floor(now)
    if a == nil or ms >= a + w then a, b = ms, 0 end
    avail = limit - b
    ok = cost <= avail
    reset = a + w - ms
    resetC, retry, marker, ttl = reset, reset, a, reset
    b, c = b + cost, 0
  elseif algo == 2 then
    -- weighted two-window counter: a = window index, b = count in it, c = count in the previous
    local idx = math.floor(now / w)
    if a ~= idx then
      if a == idx - 1 then b, c = 0, b else b, c = 0, 0 end
    end
    local toEnd = w - (now - idx * w)
    avail = limit - (c * toEnd / w + b)
    ok = cost <= avail + 1e-9
    if b + cost <= limit then
      retry = toEnd - w * (limit - cost - b) / c
    else
      retry = toEnd + w * (1 - (limit - cost) / b)
    end
    -- fully restored once every counted unit has slid out of the window
    if b > 0 then reset = toEnd + w elseif c > 0 then reset = toEnd else reset = 0 end
    resetC, marker, ttl = toEnd + w, idx, toEnd + w
    a, b = idx, b + cost
  elseif algo == 3 then
    -- token bucket of size limit refilled at limit per windowMs: a = tokens, b = last refill
    local rate = limit / w
    if a == nil then a = limit else a = math.min(limit, a + math.max(0, now - b) * rate) end
    avail = a
    ok = cost <= a + 1e-9
    retry = (cost - a) / rate
    reset, resetC = (limit - a) / rate, (limit - a + cost) / rate
    marker, ttl = 0, resetC
    a, b, c = math.max(0, a - cost), now, 0
  else
    -- GCRA, emission interval T = windowMs / limit, burst = limit: a = theoretical arrival time
    local T = w / limit
    local tat = a or now
    if tat < now then tat = now end
    local newTat = tat + cost * T
    avail = (w - (tat - now)) / T
    ok = newTat - w <= now + 1e-6
    retry = newTat - w - now
    reset, resetC, marker, ttl = tat - now, newTat - now, 0, newTat - now
    a, b, c = newTat, 0, 0
  end
  if cost > limit then ok, never, retry = false, true, -1 end
  if not ok then all = false end
  local j = 8 * i
  st[j - 7], st[j - 6], st[j - 5], st[j - 4], st[j - 3], st[j - 2], st[j], st[j - 1] =
    ok, avail, reset, resetC, retry, marker, ttl, string.format('%s %.17g %.17g %.17g', kind, a, b, c)
end
local charge = consume and all
if consume and not all and not never and blockMs > 0 and blocked == 0 then
  redis.call('SET', KEYS[1], '1', 'PX', blockMs)
  blocked = blockMs
end
local out = { blocked }
for i = 1, n do
  local j = 8 * i
  local ok, remaining, reset, retry = st[j - 7], st[j - 6], st[j - 5], 0
  if charge then
    redis.call('SET', KEYS[i + 1], st[j - 1], 'PX', math.max(1, math.ceil(st[j])))
    remaining, reset = remaining - cost, st[j - 4]
  elseif not ok then
    retry = st[j - 3]
    if retry ~= -1 then retry = math.max(1, math.ceil(retry)) end
  end
  out[5 * i - 3] = ok and 1 or 0
  out[5 * i - 2] = math.max(0, math.floor(remaining + 1e-9))
  out[5 * i - 1] = math.max(0, math.ceil(reset))
  out[5 * i] = retry
  out[5 * i + 1] = st[j - 2]
end
return out
`;

/**
 * Refund: gives `cost` back to each policy whose state is still the one the consume charged
 * (same window for fixed and sliding windows). Counters never go below zero and buckets never
 * above their size; SET KEEPTTL keeps the expiry, and a missing state is not created.
 * KEYS[i] policy i's state; ARGV[1] cost; ARGV[3i-1..3i+1] policy i: kind, limit, marker.
 */
const REFUND = `
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local kind, limit, marker = ARGV[3 * i - 1], tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local s = redis.call('GET', KEYS[i])
  local k, a, b, c
  if s then k, a, b, c = string.match(s, '^(%S+) (%S+) (%S+) (%S+)$') end
  if k == kind then
    local algo, w = string.byte(kind) - 48, tonumber(string.sub(kind, 3))
    a, b, c = tonumber(a), tonumber(b), tonumber(c)
    local changed = true
    if algo == 1 and a == marker then
      b = math.max(0, b - cost)
    elseif algo == 2 and a == marker then
      b = math.max(0, b - cost)
    elseif algo == 2 and a == marker + 1 then
      c = math.max(0, c - cost)
    elseif algo == 3 then
      a = math.min(limit, a + cost)
    elseif algo == 4 then
      a = a - cost * w / limit
    else
      changed = false
    end
    if changed then
      redis.call('SET', KEYS[i], string.format('%s %.17g %.17g %.17g', kind, a, b, c), 'KEEPTTL')
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
    private readonly redis: RedisDriver,
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
    const keys: string[] = [];
    const args: (string | number)[] = [cost];
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i]!;
      keys.push(`${base}:${i}`);
      args.push(kindOf(p), p.limit, markers[i] ?? 0);
    }
    await refundScript.run(this.redis, keys, args);
  }

  async reset(key: string, policyCount: number) {
    const base = taggedKey(this.prefix, key);
    const keys = [`${base}:block`];
    for (let i = 0; i < policyCount; i++) keys.push(`${base}:${i}`);
    await this.redis.command("DEL", keys);
  }

  async block(key: string, ms: number) {
    await this.redis.command("SET", [`${taggedKey(this.prefix, key)}:block`], ["1", "PX", ms]);
  }

  private evaluate(
    key: string,
    policies: readonly Policy[],
    cost: number,
    blockMs: number,
    mode: "0" | "1",
  ): Promise<StoreAnswer> {
    const base = taggedKey(this.prefix, key);
    const keys = [`${base}:block`];
    const args: (string | number)[] = [mode, cost, blockMs];
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i]!;
      keys.push(`${base}:${i}`);
      args.push(kindOf(p), p.limit, p.windowMs);
    }
    return consumeScript
      .run(this.redis, keys, args)
      .then((reply) => parseAnswer(reply as number[], policies));
  }
}

/** Turns the script's flat reply into per-policy results and refund markers. */
function parseAnswer(reply: number[], policies: readonly Policy[]): StoreAnswer {
  const results: PolicyResult[] = [];
  const markers: number[] = [];
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i]!;
    const at = 1 + i * 5;
    results.push({
      name: p.name,
      limit: p.limit,
      windowMs: p.windowMs,
      algorithm: p.algorithm,
      allowed: reply[at] === 1,
      remaining: reply[at + 1]!,
      resetMs: reply[at + 2]!,
      retryAfterMs: reply[at + 3]!,
    });
    markers.push(reply[at + 4]!);
  }
  return { blockedMs: reply[0]!, policies: results, markers };
}

/** "<algorithm code>:<windowMs>": the state's identity; state of another kind is ignored. */
function kindOf(policy: Policy): string {
  return `${ALGORITHMS.indexOf(policy.algorithm) + 1}:${policy.windowMs}`;
}
