/**
 * The response-cache benchmark's variants and handlers, shared by the runner
 * (`cache-suite.ts`) and the server (`cache-server.ts`).
 */

/** Every cache variant, in the order the table lists them. `bare` is the baseline of every ratio. */
export const CACHE_VARIANTS = [
  "bare",
  "apicache",
  "erk-redis",
  "erk-redis-nr",
  "erk-2tier",
  "erk-memory",
] as const;

export type CacheVariant = (typeof CACHE_VARIANTS)[number];

/** What each variant measures, for the printed report. */
export const CACHE_DESCRIPTIONS: Record<CacheVariant, string> = {
  bare: "Express 5, no cache: the handler runs for every request",
  apicache: 'apicache 1.6 in memory, `apicache.middleware("5 minutes")`',
  "erk-redis": 'express-redis-kit cacheResponse({ redis, prefix: "bench:" }): Redis hits',
  "erk-redis-nr":
    "`erk-redis` on node-redis 6 `createClient({ url })` (RESP3, same-tick pipelining): Redis hits",
  "erk-2tier":
    "cacheResponse with the in-process first tier, `memory: { maxEntries: 1000 }`, in front of Redis",
  "erk-memory": "cacheResponse() without `redis`: the memory-only backend",
};

/** The handlers every variant serves: the same ~1 KB JSON body, at once or after 20 ms. */
export const CACHE_HANDLERS = ["0ms", "20ms"] as const;

export type CacheHandler = (typeof CACHE_HANDLERS)[number];

/** Path of each handler on the cache server. */
export const HANDLER_PATHS: Record<CacheHandler, string> = {
  "0ms": "/now",
  "20ms": "/slow",
};

/** Delay of each handler before it answers, in ms. */
export const HANDLER_DELAY_MS: Record<CacheHandler, number> = { "0ms": 0, "20ms": 20 };

/** Variants whose server connects to Redis. */
export const REDIS_CACHE_VARIANTS: ReadonlySet<CacheVariant> = new Set([
  "erk-redis",
  "erk-redis-nr",
  "erk-2tier",
]);

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
