/**
 * The benchmark's variants, shared by the runner (`run.ts`) and the server (`server.ts`).
 */

/** Every variant, in the order the table lists them. `bare` is the baseline of every ratio. */
export const VARIANTS = [
  "bare",
  "erl-rlr",
  "rlf",
  "floor",
  "erk",
  "erk-nh",
  "erk-2p",
  "erk-ap",
  "erk-nr",
] as const;

export type Variant = (typeof VARIANTS)[number];

/** What each variant measures, for the printed report. */
export const DESCRIPTIONS: Record<Variant, string> = {
  bare: "Express 5, no limiter",
  "erl-rlr": "express-rate-limit 8 + rate-limit-redis 6 (ioredis `call`)",
  rlf: "rate-limiter-flexible RateLimiterRedis (ioredis) in a minimal middleware",
  floor: "one EVALSHA per request (INCR + PEXPIRE): the floor of a one-round-trip limiter",
  erk: "express-redis-kit rateLimit, one policy (draft-8 headers, like erl-rlr)",
  "erk-nh": "express-redis-kit rateLimit, one policy, headers: false (like rlf and floor)",
  "erk-2p": "express-redis-kit rateLimit, two policies (1 s burst + 1 day)",
  "erk-ap": "express-redis-kit rateLimit, one policy, ioredis enableAutoPipelining",
  "erk-nr":
    "express-redis-kit rateLimit, one policy, on node-redis 6 `createClient({ url })` (RESP3, same-tick pipelining)",
};

/** A limit no run can reach, so nothing is ever rejected. */
export const HUGE_LIMIT = 1_000_000_000;

/** Window of the single-policy variants. */
export const WINDOW_MS = 60_000;

export function isVariant(value: string): value is Variant {
  return (VARIANTS as readonly string[]).includes(value);
}
