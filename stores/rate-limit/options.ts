/**
 * `parseRateLimiterOptions()`: validates `createRateLimiter()` options once and resolves them
 * into a config with nothing optional.
 */

import type { RedisDriver } from "../core/driver.js";
import { type OnRedisError, parseFailureOptions } from "../core/failure.js";
import { parsePrefix } from "../core/keys.js";
import { consoleLogger, type Logger, Warnings } from "../core/logger.js";
import {
  fail,
  nonNegativeInt,
  oneOf,
  optionalRedis,
  positiveInt,
  rejectUnknown,
} from "../core/options.js";
import type { RedisClient } from "../core/scripts.js";
import { ALGORITHMS, type Algorithm, type Policy } from "./types.js";

/** One limit of a `policies` list. */
export interface PolicyOptions {
  /** Units (requests, or `cost` units) allowed per window. */
  limit: number;
  /** Window length in milliseconds (for token bucket and GCRA: the time to refill `limit`). */
  windowMs: number;
  /**
   * @default "sliding-window"
   */
  algorithm?: Algorithm;
  /**
   * Name used in headers and results.
   * @default "<limit>-per-<windowMs>ms" style name derived from the numbers
   */
  name?: string;
}

/** Options of `createRateLimiter()`. Give `limit` + `windowMs`, or `policies`. */
export interface RateLimiterOptions {
  /** Redis client (ioredis, iovalkey or node-redis; standalone, Cluster or Sentinel). Omitted: the in-process memory backend. */
  redis?: RedisClient;
  /** Units per window, for a single policy. */
  limit?: number;
  /** Window in milliseconds, for a single policy. */
  windowMs?: number;
  /**
   * Algorithm of the single policy.
   * @default "sliding-window"
   */
  algorithm?: Algorithm;
  /** Several limits evaluated atomically (all charged or none), instead of `limit`/`windowMs`. */
  policies?: PolicyOptions[];
  /**
   * Key prefix in Redis.
   * @default "rl:"
   */
  prefix?: string;
  /**
   * Once a request is rejected, keep the key blocked this long (0: no block).
   * @default 0
   */
  blockDurationMs?: number;
  /**
   * Longest wait for Redis before the failure mode applies (`FAILURE_DEFAULTS.rateLimit`).
   * @default 100
   */
  timeoutMs?: number;
  /**
   * When Redis fails or is slow: `"memory"` counts in this process, `"open"` allows
   * uncounted, `"closed"` rejects (`StoreUnavailableError`; the middleware answers 503 with
   * `Retry-After`).
   * @default "memory"
   */
  onRedisError?: OnRedisError;
  /**
   * While degraded, how often one request probes Redis to switch back.
   * @default 1000
   */
  recheckMs?: number;
  /**
   * Bound of the memory backend: most keys kept (least recently used evicted).
   * @default { maxKeys: 100000 }
   */
  memory?: { maxKeys?: number };
  /**
   * With Redis: once Redis rejects a key, reject its further requests in this process until the
   * retry time Redis gave (the same result, no round trip), lifted in every process by a refund
   * or a reset. `maxKeys` bounds the table (least recently used dropped); `false` turns it off.
   * @default { maxKeys: 10000 }
   */
  localRejections?: false | { maxKeys?: number };
  /**
   * Where transitions (Redis down, Redis back) are logged.
   * @default console
   */
  logger?: Logger;
}

/** `RateLimiterOptions` resolved: nothing optional but `redis`. */
export interface RateLimiterConfig {
  redis: RedisDriver | undefined;
  /** The limiter's own policies; empty when the limits are per request (`perRequest`). */
  policies: readonly Policy[];
  /** True when each call brings its limits (`rateLimit()` with `limit`/`windowMs` functions). */
  perRequest: boolean;
  /** The algorithm of a per-call `{ limit, windowMs }` that names none. */
  algorithm: Algorithm;
  prefix: string;
  blockDurationMs: number;
  timeoutMs: number;
  onRedisError: OnRedisError;
  recheckMs: number;
  maxKeys: number;
  /** Bound of the local rejection table; 0 when off (or no Redis). */
  localRejections: number;
  logger: Logger;
  /** This instance's coded warnings (each logged once). */
  warnings: Warnings;
}

/** The options `createRateLimiter()` knows. */
export const LIMITER_OPTIONS = [
  "redis",
  "limit",
  "windowMs",
  "algorithm",
  "policies",
  "prefix",
  "blockDurationMs",
  "timeoutMs",
  "onRedisError",
  "recheckMs",
  "memory",
  "localRejections",
  "logger",
] as const;

/** Most policies one limiter (or one call) evaluates together. */
export const MAX_POLICIES = 16;

/**
 * Validates `createRateLimiter()` options; throws `InvalidOptionError` naming the option.
 * With `perRequest`, `limit`, `windowMs` and `policies` must be absent: every call brings its
 * own (the `rateLimit()` middleware resolves its `limit`/`windowMs` functions per request).
 */
export function parseRateLimiterOptions(
  options: RateLimiterOptions,
  scope = "createRateLimiter",
  perRequest = false,
): RateLimiterConfig {
  if (typeof options !== "object" || options === null) fail(scope, "options", "an object", options);
  rejectUnknown(scope, options, LIMITER_OPTIONS);
  const redis = optionalRedis(scope, "redis", options.redis);
  const memory = options.memory ?? {};
  if (typeof memory !== "object" || memory === null) fail(scope, "memory", "an object", memory);
  const logger = options.logger ?? consoleLogger;
  if (typeof logger?.warn !== "function" || typeof logger.info !== "function") {
    fail(scope, "logger", "an object with info, warn and error methods", logger);
  }
  const warnings = new Warnings(logger);
  if (redis?.resendsUnanswered) {
    warnings.once(
      "ERK_AUTO_RESEND",
      "the Redis client resends commands left unanswered by a disconnect (ioredis autoResendUnfulfilledCommands), so a consume can count twice; create it with autoResendUnfulfilledCommands: false, as createRedisClient() does",
    );
  }
  const algorithm = oneOf(scope, "algorithm", options.algorithm, ALGORITHMS, "sliding-window");
  if (perRequest) {
    for (const name of ["limit", "windowMs", "policies"] as const) {
      if (options[name] !== undefined)
        fail(scope, name, "absent: limits are per request", options[name]);
    }
  }
  return {
    redis,
    policies: perRequest ? [] : parsePolicies(scope, options),
    perRequest,
    algorithm,
    prefix: parsePrefix(scope, options.prefix, "rl:"),
    blockDurationMs: nonNegativeInt(scope, "blockDurationMs", options.blockDurationMs, 0),
    ...parseFailureOptions(scope, "rateLimit", options),
    maxKeys: positiveInt(scope, "memory.maxKeys", memory.maxKeys, 100_000),
    localRejections: parseLocalRejections(scope, options.localRejections),
    logger,
    warnings,
  };
}

function parsePolicies(scope: string, options: RateLimiterOptions): Policy[] {
  if (options.policies === undefined) {
    return [
      parsePolicy(scope, "", {
        limit: options.limit as number,
        windowMs: options.windowMs as number,
        algorithm: options.algorithm,
      }),
    ];
  }
  if (
    options.limit !== undefined ||
    options.windowMs !== undefined ||
    options.algorithm !== undefined
  ) {
    fail(
      scope,
      "policies",
      "given alone (not with limit, windowMs or algorithm)",
      options.policies,
    );
  }
  if (
    !Array.isArray(options.policies) ||
    options.policies.length === 0 ||
    options.policies.length > MAX_POLICIES
  ) {
    fail(scope, "policies", `an array of 1 to ${MAX_POLICIES} policies`, options.policies);
  }
  const policies = options.policies.map((p, i) => parsePolicy(scope, `policies[${i}].`, p));
  const names = new Set(policies.map((p) => p.name));
  if (names.size !== policies.length)
    fail(
      scope,
      "policies",
      "named uniquely",
      policies.map((p) => p.name),
    );
  return policies;
}

/** Validates one policy; `path` prefixes option names in errors (e.g. `policies[1].`). */
export function parsePolicy(scope: string, path: string, p: PolicyOptions): Policy {
  if (typeof p !== "object" || p === null) fail(scope, path || "policy", "an object", p);
  const limit = positiveInt(scope, `${path}limit`, p.limit);
  const windowMs = positiveInt(scope, `${path}windowMs`, p.windowMs);
  const algorithm = oneOf(scope, `${path}algorithm`, p.algorithm, ALGORITHMS, "sliding-window");
  const name = p.name ?? `${limit}-per-${windowMs}ms`;
  if (typeof name !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
    fail(scope, `${path}name`, "1 to 64 letters, digits, '.', '_' or '-'", name);
  }
  return { name, limit, windowMs, algorithm };
}

function parseLocalRejections(scope: string, value: RateLimiterOptions["localRejections"]): number {
  if (value === false) return 0;
  if (value === undefined) return 10_000;
  if (typeof value !== "object" || value === null) {
    fail(scope, "localRejections", "false or { maxKeys }", value);
  }
  rejectUnknown(`${scope}: localRejections`, value, ["maxKeys"]);
  return positiveInt(scope, "localRejections.maxKeys", value.maxKeys, 10_000);
}
