/**
 * `cacheResponse()` options: the public type and `parseCacheOptions()`, which validates them
 * once and resolves a config with nothing optional.
 */

import type { Request, Response } from "express";
import { DEFAULT_MEMORY_LIMITS } from "../stores/cache/types.js";
import type { RedisDriver } from "../stores/core/driver.js";
import { InvalidOptionError } from "../stores/core/errors.js";
import { parseFailureOptions } from "../stores/core/failure.js";
import { parsePrefix } from "../stores/core/keys.js";
import { consoleLogger, type Logger, Warnings } from "../stores/core/logger.js";
import {
  bool,
  fail,
  nonNegativeInt,
  optionalFunction,
  optionalRedis,
  positiveInt,
  rejectUnknown,
} from "../stores/core/options.js";
import type { RedisClient } from "../stores/core/scripts.js";
import type { PolicyConfig } from "./cache-policy.js";

/** The factory name errors and logs start with. */
export const SCOPE = "cacheResponse";

/** Options of `cacheResponse()`. */
export interface CacheResponseOptions {
  /** Redis client (ioredis, iovalkey or node-redis; standalone, Cluster or Sentinel). Omitted: the in-process memory backend. */
  redis?: RedisClient;
  /**
   * Key prefix in Redis (and pub/sub channel prefix).
   * @default "cache:"
   */
  prefix?: string;
  /**
   * Freshness of a response that states none (no `s-maxage`, `max-age` or `Expires`). `0` stores
   * only responses that state their own freshness (shared-cache behaviour).
   * @default 300000
   */
  ttlMs?: number;
  /**
   * Upper bound of any freshness, stated or not.
   * @default 86400000
   */
  maxTtlMs?: number;
  /** Extra key parts (a tenant, an API version); `null` bypasses the cache for this request. */
  key?: (req: Request, res: Response) => string | readonly string[] | null | undefined;
  /**
   * A part that separates entries per principal, e.g. a verified user id; `null`/`undefined`
   * bypasses the cache. Setting it lets requests with `Authorization` and `private` responses
   * be cached, per value.
   */
  varyBy?: (req: Request, res: Response) => string | number | null | undefined;
  /**
   * Key by `req.session.userId ?? req.user?.id`; requests with no user bypass.
   * @default false
   */
  userAware?: boolean;
  /** Tags of a response, for `purgeTags()` (added to those given with `res.cacheTags()`). */
  tags?: (req: Request, res: Response) => readonly string[] | undefined;
  /**
   * Statuses that may be stored. 206, 304, 1xx and 5xx other than 501 are never stored.
   * @default [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]
   */
  statuses?: readonly number[];
  /**
   * Largest body stored; a longer response streams through unstored.
   * @default 1048576
   */
  maxBodyBytes?: number;
  /**
   * After freshness ends, serve the entry stale this long while one request refreshes it.
   * @default 0
   */
  staleWhileRevalidateMs?: number;
  /**
   * After freshness ends, serve the entry instead of a 5xx or an error this long.
   * @default 0
   */
  staleIfErrorMs?: number;
  /**
   * How long an entry whose response has a validator (`ETag` or `Last-Modified`) is kept past
   * its freshness (when longer than its stale windows), so that once stale it is revalidated
   * with the origin (the handler runs as a conditional request; a 304 refreshes the entry)
   * instead of rebuilt.
   * Also what lets `no-cache` responses, and ones stale on arrival, be stored at all. `0`: never
   * kept past the windows.
   * @default ttlMs
   */
  keepMs?: number;
  /**
   * What the request's own `Cache-Control` (or `Pragma: no-cache`) does. `"ignore"` (as Varnish
   * and nginx do): nothing. `"honor"`: `no-cache` and `max-age=0` revalidate with the origin,
   * `max-age`/`min-fresh` ask for a younger/fresher entry, `max-stale` accepts a stale one,
   * `no-store` bypasses the cache.
   * @default "ignore"
   */
  requestCacheControl?: "ignore" | "honor";
  /**
   * Run the handler once for concurrent misses of one key, across processes.
   * @default true
   */
  coalesce?: boolean;
  /**
   * Longest a coalesced request waits for the filling one, then runs the handler itself.
   * @default 5000
   */
  coalesceWaitMs?: number;
  /** An in-process first tier (bounded), kept coherent across processes over pub/sub. */
  memory?: { maxEntries: number; maxBytes?: number };
  /**
   * Longest wait for Redis per call; past it `onRedisError` applies.
   * @default 50
   */
  timeoutMs?: number;
  /**
   * When Redis fails or misses `timeoutMs`: `"open"` answers as if there were no cache (the
   * handler runs, nothing is stored); `"closed"` answers 503 with `Retry-After`, sparing the
   * origin a flood of misses. (`"memory"` is refused: a per-process cache would serve entries
   * purged in other processes.)
   * @default "open"
   */
  onRedisError?: "open" | "closed";
  /**
   * While Redis is failing, one request per `recheckMs` probes it; the first success switches back.
   * @default 1000
   */
  recheckMs?: number;
  /**
   * Targeted cache-control field (RFC 9213) that overrides `Cache-Control` for this cache;
   * `false` ignores targeted fields.
   * @default "CDN-Cache-Control"
   */
  targetedField?: string | false;
  /**
   * Query parameters kept in the key: `allow` keeps only these, `deny` drops these. Names may
   * end in `*` to match a prefix (`"utm_*"`).
   */
  query?: { allow?: readonly string[]; deny?: readonly string[] };
  /** @default console */
  logger?: Logger;
}

/** `CacheResponseOptions` resolved: what the handler reads. */
export interface CacheConfig extends PolicyConfig {
  redis: RedisDriver | undefined;
  prefix: string;
  key: CacheResponseOptions["key"];
  varyBy: CacheResponseOptions["varyBy"];
  userAware: boolean;
  tags: CacheResponseOptions["tags"];
  maxBodyBytes: number;
  coalesce: boolean;
  coalesceWaitMs: number;
  memory: { maxEntries: number; maxBytes: number } | undefined;
  timeoutMs: number;
  onRedisError: "open" | "closed";
  recheckMs: number;
  keepParam: (name: string) => boolean;
  /** Whether request cache directives apply (`requestCacheControl: "honor"`). */
  honorRequest: boolean;
  logger: Logger;
  /** This instance's coded warnings (each logged once). */
  warnings: Warnings;
}

const DEFAULT_STATUSES = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
const KNOWN = [
  "redis",
  "prefix",
  "ttlMs",
  "maxTtlMs",
  "key",
  "varyBy",
  "userAware",
  "tags",
  "statuses",
  "maxBodyBytes",
  "staleWhileRevalidateMs",
  "staleIfErrorMs",
  "keepMs",
  "requestCacheControl",
  "coalesce",
  "coalesceWaitMs",
  "memory",
  "timeoutMs",
  "onRedisError",
  "recheckMs",
  "targetedField",
  "query",
  "logger",
];

/** Validates `cacheResponse()` options once; throws `InvalidOptionError` naming the option. */
export function parseCacheOptions(options: CacheResponseOptions): CacheConfig {
  if (typeof options !== "object" || options === null) fail(SCOPE, "options", "an object", options);
  rejectUnknown(SCOPE, options, KNOWN);
  const redis = optionalRedis(SCOPE, "redis", options.redis);
  const failure = parseFailureOptions(SCOPE, "cacheResponse", options);
  const statuses = options.statuses ?? DEFAULT_STATUSES;
  if (!Array.isArray(statuses)) fail(SCOPE, "statuses", "an array of HTTP statuses", statuses);
  for (const status of statuses) {
    const storable =
      Number.isInteger(status) &&
      status >= 200 &&
      status <= 599 &&
      status !== 206 &&
      status !== 304 &&
      (status < 500 || status === 501);
    if (!storable) {
      fail(SCOPE, "statuses", "statuses from 200-499 or 501, without 206 and 304", status);
    }
  }
  let memory: CacheConfig["memory"];
  if (options.memory !== undefined) {
    const m = options.memory as Record<string, unknown>;
    if (typeof m !== "object" || m === null) fail(SCOPE, "memory", "{ maxEntries, maxBytes? }", m);
    rejectUnknown(`${SCOPE}: memory`, m, ["maxEntries", "maxBytes"]);
    memory = {
      maxEntries: positiveInt(SCOPE, "memory.maxEntries", m.maxEntries),
      maxBytes: positiveInt(SCOPE, "memory.maxBytes", m.maxBytes, DEFAULT_MEMORY_LIMITS.maxBytes),
    };
  }
  let targetedField: string | undefined = "cdn-cache-control";
  if (options.targetedField === false) targetedField = undefined;
  else if (options.targetedField !== undefined) {
    if (
      typeof options.targetedField !== "string" ||
      !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(options.targetedField)
    ) {
      fail(SCOPE, "targetedField", "a header field name or false", options.targetedField);
    }
    targetedField = options.targetedField.toLowerCase();
  }
  const ttlMs = nonNegativeInt(SCOPE, "ttlMs", options.ttlMs, 300_000);
  const maxTtlMs = positiveInt(SCOPE, "maxTtlMs", options.maxTtlMs, 86_400_000);
  if (ttlMs > maxTtlMs) fail(SCOPE, "ttlMs", `at most maxTtlMs (${maxTtlMs})`, ttlMs);
  const keepMs = nonNegativeInt(SCOPE, "keepMs", options.keepMs, ttlMs);
  if (keepMs > maxTtlMs) fail(SCOPE, "keepMs", `at most maxTtlMs (${maxTtlMs})`, keepMs);
  const requestCacheControl = options.requestCacheControl ?? "ignore";
  if (requestCacheControl !== "ignore" && requestCacheControl !== "honor") {
    fail(SCOPE, "requestCacheControl", '"ignore" or "honor"', requestCacheControl);
  }
  return {
    redis,
    prefix: parsePrefix(SCOPE, options.prefix, "cache:"),
    statuses: new Set(statuses),
    ttlMs,
    maxTtlMs,
    targetedField,
    staleWhileRevalidateMs: nonNegativeInt(
      SCOPE,
      "staleWhileRevalidateMs",
      options.staleWhileRevalidateMs,
      0,
    ),
    staleIfErrorMs: nonNegativeInt(SCOPE, "staleIfErrorMs", options.staleIfErrorMs, 0),
    keepMs,
    honorRequest: requestCacheControl === "honor",
    key: optionalFunction(SCOPE, "key", options.key),
    varyBy: optionalFunction(SCOPE, "varyBy", options.varyBy),
    userAware: bool(SCOPE, "userAware", options.userAware, false),
    tags: optionalFunction(SCOPE, "tags", options.tags),
    maxBodyBytes: positiveInt(SCOPE, "maxBodyBytes", options.maxBodyBytes, 1024 * 1024),
    coalesce: bool(SCOPE, "coalesce", options.coalesce, true),
    coalesceWaitMs: positiveInt(SCOPE, "coalesceWaitMs", options.coalesceWaitMs, 5000),
    memory,
    ...(failure as { timeoutMs: number; onRedisError: "open" | "closed"; recheckMs: number }),
    keepParam: queryFilter(options.query),
    logger: options.logger ?? consoleLogger,
    warnings: new Warnings(options.logger ?? consoleLogger),
  };
}

function queryFilter(query: CacheResponseOptions["query"]): (name: string) => boolean {
  if (query === undefined) return () => true;
  if (typeof query !== "object" || query === null) fail(SCOPE, "query", "{ allow?, deny? }", query);
  rejectUnknown(`${SCOPE}: query`, query, ["allow", "deny"]);
  const matcher = (name: "allow" | "deny") => {
    const list = query[name];
    if (list === undefined) return undefined;
    if (!Array.isArray(list) || !list.every((item) => typeof item === "string" && item !== "")) {
      fail(SCOPE, `query.${name}`, "an array of parameter names", list);
    }
    const exact = new Set(list.filter((item) => !item.endsWith("*")));
    const prefixes = list.filter((item) => item.endsWith("*")).map((item) => item.slice(0, -1));
    return (param: string) => exact.has(param) || prefixes.some((p) => param.startsWith(p));
  };
  const allow = matcher("allow");
  const deny = matcher("deny");
  if (allow !== undefined && deny !== undefined) {
    throw new InvalidOptionError(`${SCOPE}: give query.allow or query.deny, not both`, "query");
  }
  if (allow !== undefined) return allow;
  if (deny !== undefined) return (name) => !deny(name);
  return () => true;
}
