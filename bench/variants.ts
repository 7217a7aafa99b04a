/**
 * The rate-limit benchmark's variants, shared by the runner (`rate-limit-suite.ts`) and the
 * server (`http-server.ts`): this library's rows come from bench/peer-scenarios.cjs (the
 * definitions ../shared/peer-bench runs), the peers and floors from `peers.ts`.
 */
import { bare, erlMemory, erlRedis, evalshaFloor, rlfRedis } from "./peers.js";
import { HUGE, peerScenario, type Scenario } from "./scenario.js";

/** Every variant, in the order the table lists them. `bare` is the reference of every ratio. */
export const VARIANTS = [
  "bare",
  "erl-rlr",
  "rlf",
  "floor",
  "floor-ap",
  "erk",
  "erk-nh",
  "erk-2p",
  "erk-ap",
  "erk-nr",
  "flood-erl-memory",
  "flood-erl-rlr",
  "flood-rlf-block",
  "flood-erk",
] as const;

export type Variant = (typeof VARIANTS)[number];

/** The floods: one client far over its limit (1 per minute), every measured request a 429. */
export const FLOODS: ReadonlySet<Variant> = new Set([
  "flood-erl-memory",
  "flood-erl-rlr",
  "flood-rlf-block",
  "flood-erk",
]);

/** Each variant's row: its label, its peer-bench id, its setup. */
export const RATE_LIMIT_SCENARIOS: Record<Variant, Scenario> = {
  bare: { label: "bare Express", peerBench: "a_bare", setup: bare },
  "erl-rlr": {
    label: "express-rate-limit + rate-limit-redis",
    peerBench: "c_erl_redis",
    setup: erlRedis(HUGE, "rl:"),
  },
  rlf: {
    label: "rate-limiter-flexible RateLimiterRedis",
    peerBench: "d_rlf_redis",
    setup: rlfRedis(HUGE, "rlf"),
  },
  floor: {
    label: "floor: one EVALSHA per request",
    peerBench: "f_phys",
    setup: evalshaFloor(false),
  },
  "floor-ap": {
    label: "floor, enableAutoPipelining",
    peerBench: "g_phys_autopipe",
    setup: evalshaFloor(true),
  },
  erk: {
    label: "rateLimit(), one policy",
    peerBench: "p_rateLimit",
    setup: peerScenario("p_rateLimit"),
  },
  "erk-nh": {
    label: "rateLimit(), headers: false",
    peerBench: "p_rateLimit_noheaders",
    setup: peerScenario("p_rateLimit_noheaders"),
  },
  "erk-2p": {
    label: "rateLimit(), two policies (1 s burst + 1 day)",
    peerBench: "p_rateLimit_two",
    setup: peerScenario("p_rateLimit_two"),
  },
  "erk-ap": {
    label: "rateLimit(), enableAutoPipelining",
    peerBench: "p_rateLimit_autopipe",
    setup: peerScenario("p_rateLimit_autopipe"),
  },
  "erk-nr": {
    label: "rateLimit(), one policy, node-redis",
    peerBench: "p_rateLimit on node-redis",
    client: "node-redis",
    setup: peerScenario("p_rateLimit"),
  },
  "flood-erl-memory": {
    label: "flood: express-rate-limit MemoryStore",
    peerBench: "x_erl_memory_flood",
    setup: erlMemory(1),
  },
  "flood-erl-rlr": {
    label: "flood: express-rate-limit + rate-limit-redis",
    peerBench: "x_erl_redis_flood",
    setup: erlRedis(1, "rlx:"),
  },
  "flood-rlf-block": {
    label: "flood: rate-limiter-flexible + inMemoryBlockOnConsumed",
    peerBench: "x_rlf_flood_block",
    setup: rlfRedis(1, "rlfx", true),
  },
  "flood-erk": {
    label: "flood: rateLimit(), local rejections",
    peerBench: "p_flood",
    setup: peerScenario("p_flood"),
  },
};

/** What each variant measures, for the report's variant list. */
export const DESCRIPTIONS: Record<Variant, string> = {
  bare: "Express 5, no limiter: the reference row",
  "erl-rlr":
    'express-rate-limit 8 + rate-limit-redis 6 (`sendCommand` through ioredis `call()`, prefix "rl:"), their default headers',
  rlf: "rate-limiter-flexible 11 `RateLimiterRedis` (ioredis), `consume(req.ip)` as middleware, 429 on rejection",
  floor:
    "one EVALSHA per request (INCR, PEXPIRE on the first hit): the floor of any one-round-trip limiter",
  "floor-ap": "`floor` on an ioredis client with `enableAutoPipelining: true`",
  erk: "this library's `rateLimit({ redis, limit, windowMs })`: sliding window, draft-8 headers",
  "erk-nh": "`erk` with `headers: false`: no rate-limit headers, like `rlf` and `floor`",
  "erk-2p": "`rateLimit` with two policies (1 s sliding burst + 1 day fixed window), one script",
  "erk-ap": "`erk` on an ioredis client with `enableAutoPipelining: true` (compare `floor-ap`)",
  "erk-nr": "`erk` on node-redis 6 `createClient({ url })`, default options (RESP3)",
  "flood-erl-memory":
    "express-rate-limit MemoryStore, limit 1 per minute: every measured request a 429",
  "flood-erl-rlr":
    "express-rate-limit + rate-limit-redis, limit 1 per minute: a 429 after each Redis call",
  "flood-rlf-block":
    "rate-limiter-flexible `RateLimiterRedis` with `inMemoryBlockOnConsumed`: rejected in process, an empty 429 without headers",
  "flood-erk":
    "this library's `rateLimit`, limit 1 per minute: rejected in process (local rejections), 429 with draft-8 headers and a JSON body",
};

/** The reference row of every ratio. */
export const REFERENCE: Variant = "bare";

export function isVariant(value: string): value is Variant {
  return (VARIANTS as readonly string[]).includes(value);
}
