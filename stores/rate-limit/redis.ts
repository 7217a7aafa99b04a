/**
 * The Redis rate limit store: one Lua script per operation, one round trip per call, with
 * Redis server time (`TIME`) as the only clock. Every key of one user key shares its hash tag.
 *
 * Key layout for user key K and prefix P:
 *   P{K}:block   a plain key with a PX expiry while K is blocked
 *   P{K}:rej     a plain key with a PX expiry while a rejection of K may be answered locally
 *   P{K}:w<i>    the state of the policy at position i (0-based) of a call: a string of up to
 *                MAX_ENTRIES entries separated by ";", most recently written first, each
 *                "<kind> <a> <b> <c> <until>". kind is "<algorithm code>:<windowMs>"; a, b, c
 *                are the algorithm's numbers (see each branch of CONSUME); until is the Redis
 *                time (ms) when the entry is no longer needed. One entry per kind, so calls
 *                with different windows for one key (per-request `windowMs`) count apart
 *                instead of resetting each other; a static limiter has one entry. The key's
 *                PX is the latest `until`. A string with SET PX costs one command where a
 *                hash needs HSET + PEXPIRE (and per-field expiry needs Redis 7.4).
 */

import type { RedisDriver } from "../core/driver.js";
import { taggedKey } from "../core/keys.js";
import { defineScript } from "../core/scripts.js";
import {
  ALGORITHMS,
  MAX_ENTRIES,
  type Policy,
  type PolicyResult,
  type RateLimitStore,
  type StoreAnswer,
} from "./types.js";

/**
 * CONSUME: consume (charge) or peek (evaluate only). Evaluates every policy first and writes
 * only when all allow, so several policies are charged all-or-nothing in one atomic call.
 *
 * KEYS[1]       P{K}:block, present while K is blocked
 * KEYS[2]       P{K}:rej, present while a rejection may be answered locally somewhere
 *               (written on a rejection of a consume, PX its retry time; see local.ts)
 * KEYS[2 + i]   P{K}:w<i - 1>, the state of policy i (i = 1 .. n, n = #KEYS - 2)
 *
 * ARGV[1]  mode: "1" consume, "0" peek
 * ARGV[2]  cost: units charged to every policy
 * ARGV[3]  blockMs: on a rejection of a consume, block K this long (0: no block)
 * then 3 arguments per policy i, from base = 3 + 3 * (i - 1):
 *   ARGV[base + 1]  kind: "<algorithm code>:<windowMs>" (code 1 fixed window, 2 sliding window,
 *                   3 token bucket, 4 GCRA); the entry of the state this policy reads and writes
 *   ARGV[base + 2]  limit: units per window
 *   ARGV[base + 3]  windowMs: the window (token bucket, GCRA: the time to refill limit)
 *
 * Reply: { blockedMs, then 5 numbers per policy i, from r = 1 + 5 * (i - 1):
 *   [r + 1] allowed (1/0), [r + 2] remaining, [r + 3] resetMs, [r + 4] retryAfterMs
 *   (-1: cost above limit), [r + 5] marker (the window charged, for REFUND) }
 */
const CONSUME = `
local MAX_OTHERS = ${MAX_ENTRIES - 1}
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local consume, cost, blockMs = ARGV[1] == '1', tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked = redis.call('PTTL', KEYS[1])
if blocked < 0 then blocked = 0 end
local n = #KEYS - 2
local all, never = blocked == 0, false
-- per policy i, 10 slots from j = 10 * (i - 1): [j+1] ok, [j+2] avail, [j+3] reset,
-- [j+4] reset if charged, [j+5] retry, [j+6] marker, [j+7] new entry, [j+8] ttl,
-- [j+9] the other kinds' live entries (";"-prefixed), [j+10] their latest until
local st = {}
for i = 1, n do
  local base = 3 + 3 * (i - 1)
  local kind, limit, w = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local algo = string.byte(kind) - 48
  local a, b, c
  local rest, restUntil, kept = '', 0, 0
  local s = redis.call('GET', KEYS[i + 2])
  if s then
    for k, sa, sb, sc, su in string.gmatch(s, '([^ ;]+) ([^ ;]+) ([^ ;]+) ([^ ;]+) ([^ ;]+)') do
      if k == kind then
        a, b, c = tonumber(sa), tonumber(sb), tonumber(sc)
      else
        local u = tonumber(su)
        if u and u > now and kept < MAX_OTHERS then
          rest = rest .. ';' .. k .. ' ' .. sa .. ' ' .. sb .. ' ' .. sc .. ' ' .. su
          kept = kept + 1
          if u > restUntil then restUntil = u end
        end
      end
    end
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
  local j = 10 * (i - 1)
  st[j + 1], st[j + 2], st[j + 3], st[j + 4], st[j + 5], st[j + 6] =
    ok, avail, reset, resetC, retry, marker
  st[j + 7] = string.format('%s %.17g %.17g %.17g %.17g', kind, a, b, c, now + ttl)
  st[j + 8], st[j + 9], st[j + 10] = ttl, rest, restUntil
end
local charge = consume and all
if consume and not all and not never and blockMs > 0 and blocked == 0 then
  redis.call('SET', KEYS[1], '1', 'PX', blockMs)
  blocked = blockMs
end
if consume and not all and not never then
  -- a rejection: leave the flag as long as the longest wait, for REFUND to find
  local longest = blocked
  for i = 1, n do
    local j = 10 * (i - 1)
    if not st[j + 1] and st[j + 5] > longest then longest = st[j + 5] end
  end
  longest = math.ceil(longest)
  if longest > 0 and redis.call('PTTL', KEYS[2]) < longest then
    redis.call('SET', KEYS[2], '1', 'PX', longest)
  end
end
local out = { blocked }
for i = 1, n do
  local j = 10 * (i - 1)
  local ok, remaining, reset, retry = st[j + 1], st[j + 2], st[j + 3], 0
  if charge then
    local px = math.max(st[j + 8], st[j + 10] - now)
    redis.call('SET', KEYS[i + 2], st[j + 7] .. st[j + 9], 'PX', math.max(1, math.ceil(px)))
    remaining, reset = remaining - cost, st[j + 4]
  elseif not ok then
    retry = st[j + 5]
    if retry ~= -1 then retry = math.max(1, math.ceil(retry)) end
  end
  local r = 1 + 5 * (i - 1)
  out[r + 1] = ok and 1 or 0
  out[r + 2] = math.max(0, math.floor(remaining + 1e-9))
  out[r + 3] = math.max(0, math.ceil(reset))
  out[r + 4] = retry
  out[r + 5] = st[j + 6]
end
return out
`;

/**
 * REFUND: gives `cost` back to each policy's entry when it is still the window the consume
 * charged (fixed and sliding windows). Counters never go below zero and buckets never above
 * their size; SET KEEPTTL keeps the expiry; other entries are kept as they are; a missing
 * state or entry is not created.
 *
 * KEYS[i]       P{K}:w<i - 1>, the state of policy i (i = 1 .. n, n = #KEYS - 1)
 * KEYS[n + 1]   P{K}:rej, the rejection flag CONSUME leaves (deleted here)
 *
 * ARGV[1]  cost: units to give back
 * then 3 arguments per policy i, from base = 1 + 3 * (i - 1):
 *   ARGV[base + 1]  kind: "<algorithm code>:<windowMs>", as CONSUME got it
 *   ARGV[base + 2]  limit
 *   ARGV[base + 3]  marker: what CONSUME answered for this policy (the window it charged)
 *
 * Reply: 1 when the rejection flag was there (a rejection may be answered locally in some
 * process: the caller publishes the key), else 0
 */
const REFUND = `
local cost = tonumber(ARGV[1])
local n = #KEYS - 1
for i = 1, n do
  local base = 1 + 3 * (i - 1)
  local kind, limit, marker = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  local s = redis.call('GET', KEYS[i])
  if s then
    local entries, changed = {}, false
    for k, sa, sb, sc, su in string.gmatch(s, '([^ ;]+) ([^ ;]+) ([^ ;]+) ([^ ;]+) ([^ ;]+)') do
      local entry = k .. ' ' .. sa .. ' ' .. sb .. ' ' .. sc .. ' ' .. su
      if k == kind then
        local algo, w = string.byte(kind) - 48, tonumber(string.sub(kind, 3))
        local a, b, c = tonumber(sa), tonumber(sb), tonumber(sc)
        changed = true
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
        if changed then entry = string.format('%s %.17g %.17g %.17g %s', kind, a, b, c, su) end
      end
      entries[#entries + 1] = entry
    end
    if changed then redis.call('SET', KEYS[i], table.concat(entries, ';'), 'KEEPTTL') end
  end
end
return redis.call('DEL', KEYS[n + 1])
`;

const consumeScript = defineScript("ratelimit_consume", CONSUME);
const refundScript = defineScript("ratelimit_refund", REFUND);

/** Rate limit state in Redis (standalone or Cluster). */
export class RedisRateLimitStore implements RateLimitStore {
  private lastPolicies: readonly Policy[] | undefined;
  private lastArgs: readonly (string | number)[] = [];

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

  /** Resolves true when a rejection was outstanding (its flag was there): publish the key. */
  async refund(key: string, policies: readonly Policy[], cost: number, markers: readonly number[]) {
    const base = taggedKey(this.prefix, key);
    const keys: string[] = [];
    const args: (string | number)[] = [cost];
    for (let i = 0; i < policies.length; i++) {
      const p = policies[i]!;
      keys.push(`${base}:w${i}`);
      args.push(kindOf(p), p.limit, markers[i] ?? 0);
    }
    keys.push(`${base}:rej`);
    return Number(await refundScript.run(this.redis, keys, args)) === 1;
  }

  async reset(key: string, positions: number) {
    const base = taggedKey(this.prefix, key);
    const keys = [`${base}:block`, `${base}:rej`];
    for (let i = 0; i < positions; i++) keys.push(`${base}:w${i}`);
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
    const keys = [`${base}:block`, `${base}:rej`];
    const args: (string | number)[] = [mode, cost, blockMs];
    // The last list's arguments are kept: a limiter's own list is formatted once, not per call.
    if (policies !== this.lastPolicies) {
      this.lastArgs = policyArgs(policies);
      this.lastPolicies = policies;
    }
    const tail = this.lastArgs;
    for (let i = 0; i < policies.length; i++) keys.push(`${base}:w${i}`);
    for (const arg of tail) args.push(arg);
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

/** CONSUME's per-policy arguments: kind, limit, windowMs of each. */
function policyArgs(policies: readonly Policy[]): (string | number)[] {
  return policies.flatMap((p) => [kindOf(p), p.limit, p.windowMs]);
}

/** "<algorithm code>:<windowMs>": the state's identity; state of another kind is ignored. */
function kindOf(policy: Policy): string {
  return `${ALGORITHMS.indexOf(policy.algorithm) + 1}:${policy.windowMs}`;
}
