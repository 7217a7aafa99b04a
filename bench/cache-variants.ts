/**
 * The response-cache benchmark's variants and handlers, shared by the runner
 * (`cache-suite.ts`) and the server (`http-server.ts`): this library's rows from
 * bench/peer-scenarios.cjs (as ../shared/peer-bench runs them), apicache's from `peers.ts`.
 */
import { apicacheMemory, apicacheRedis, bare } from "./peers.js";
import {
  type Handler,
  kitLib,
  peerScenario,
  type Scenario,
  type ScenarioSetup,
  type Setup,
  SLOW_MS,
  withSample,
} from "./scenario.js";

/** Every cache variant, in the order the table lists them. `bare` is the reference of every ratio. */
export const CACHE_VARIANTS = [
  "bare",
  "apicache",
  "apicache-redis",
  "erk-redis",
  "erk-redis-nr",
  "erk-2tier",
  "erk-memory",
] as const;

export type CacheVariant = (typeof CACHE_VARIANTS)[number];

/** What each variant measures, for the printed report. */
export const CACHE_DESCRIPTIONS: Record<CacheVariant, string> = {
  bare: "Express 5, no cache: the handler runs for every request",
  apicache: 'apicache 1.6 in memory, `newInstance({}).middleware("10 minutes")`: memory hits',
  "apicache-redis":
    "apicache 1.6 on ioredis (`redisClient`, with the `connected` getter apicache needs to use it): Redis hits (HGETALL)",
  "erk-redis": "this library's `cacheResponse({ redis, ttlMs: 600000 })`: Redis hits",
  "erk-redis-nr":
    "`erk-redis` on node-redis 6 `createClient({ url })` (default options, RESP3): Redis hits",
  "erk-2tier":
    "`cacheResponse` with the in-process first tier, `memory: { maxEntries: 1000 }`, in front of Redis: memory hits",
  "erk-memory": "`cacheResponse({ ttlMs: 600000 })` without `redis`: the memory-only backend",
};

/** `setup` with this library's cache stats in the server's samples (`cache`). */
function withCacheStats(setup: Setup): Setup {
  return withSample(setup, (made: ScenarioSetup) => {
    const cache = made.mw[0] as unknown as { stats(): Record<string, unknown> };
    return () => ({ cache: cache.stats() });
  });
}

/** Each variant's row: its label, its peer-bench id, its setup. */
export const CACHE_SCENARIOS: Record<CacheVariant, Scenario> = {
  bare: { label: "bare Express", peerBench: "a_bare", setup: bare },
  apicache: {
    label: "apicache, memory hits",
    peerBench: "e_apicache_memory",
    setup: apicacheMemory,
  },
  "apicache-redis": {
    label: "apicache, Redis hits",
    peerBench: "e2_apicache_redis_shim",
    setup: apicacheRedis,
  },
  "erk-redis": {
    label: "cacheResponse(), Redis hits",
    peerBench: "p_cache_redis",
    setup: withCacheStats(peerScenario("p_cache_redis")),
  },
  "erk-redis-nr": {
    label: "cacheResponse(), Redis hits, node-redis",
    peerBench: "p_cache_redis on node-redis",
    client: "node-redis",
    setup: withCacheStats(peerScenario("p_cache_redis")),
  },
  "erk-2tier": {
    label: "cacheResponse() + memory tier, hits",
    peerBench: "p_cache_memory",
    setup: withCacheStats(peerScenario("p_cache_memory")),
  },
  "erk-memory": {
    label: "cacheResponse(), memory only, hits",
    setup: withCacheStats(async () => ({ mw: [kitLib().cacheResponse({ ttlMs: 600_000 })] })),
  },
};

/** The handlers every variant serves: the same ~1 KB JSON body, at once or after 20 ms. */
export const CACHE_HANDLERS = ["0ms", "20ms"] as const;

export type CacheHandler = (typeof CACHE_HANDLERS)[number];

/** Path of each handler on the server (GET /api is every suite's request). */
export const HANDLER_PATHS: Record<CacheHandler, string> = {
  "0ms": "/api",
  "20ms": "/slow",
};

/** Delay of each handler before it answers, in ms (the server's GET /slow waits this long). */
export const HANDLER_DELAY_MS: Record<CacheHandler, number> = { "0ms": 0, "20ms": SLOW_MS };

/** Each handler as the server counts its calls. */
export const HANDLER_KEYS: Record<CacheHandler, Handler> = {
  "0ms": "GET /api",
  "20ms": "GET /slow",
};

/** Variants of this library (their hits answer `X-Cache: HIT`). */
export const ERK_CACHE_VARIANTS: ReadonlySet<CacheVariant> = new Set([
  "erk-redis",
  "erk-redis-nr",
  "erk-2tier",
  "erk-memory",
]);

export function isCacheVariant(value: string): value is CacheVariant {
  return (CACHE_VARIANTS as readonly string[]).includes(value);
}

export function isCacheHandler(value: string): value is CacheHandler {
  return (CACHE_HANDLERS as readonly string[]).includes(value);
}

/** The name of one measured unit in the report: `variant/handler`. */
export function entryName(variant: CacheVariant, handler: CacheHandler): string {
  return `${variant}/${handler}`;
}

/** Most handler runs a caching run may see (the warming request and stragglers): past it, not all were hits. */
export const MAX_HANDLER_RUNS = 3;

/** Splits a benchmark entry `variant/handler`. */
export function parseEntry(entry: string): { variant: CacheVariant; handler: CacheHandler } {
  const [variant = "", handler = ""] = entry.split("/");
  if (!isCacheVariant(variant) || !isCacheHandler(handler))
    throw new Error(`unknown cache benchmark entry ${entry}`);
  return { variant, handler };
}
