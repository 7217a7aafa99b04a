/**
 * `rateLimit()` options: the public type and `parseRateLimitOptions()`, which validates them once
 * and resolves them into the config the handler reads.
 */
import type { NextFunction, Request, Response } from "express";
import type { RedisDriver } from "../stores/core/driver.js";
import type { Logger } from "../stores/core/logger.js";
import {
  bool,
  fail,
  oneOf,
  optionalFunction,
  positiveInt,
  rejectUnknown,
  show,
} from "../stores/core/options.js";
import {
  LIMITER_OPTIONS,
  parseRateLimiterOptions,
  type RateLimiterConfig,
  type RateLimiterOptions,
} from "../stores/rate-limit/options.js";
import type { RateLimitResult } from "../stores/rate-limit/types.js";
import { clientIpKey } from "./client-key.js";
import { type HeaderStyle, PROCESS_PARTITION_SECRET } from "./rate-limit-headers.js";

/**
 * A value, or a function of the request and response giving it (sync or async), like
 * express-rate-limit's `limit(req, res)`.
 */
export type PerRequest<T> = T | ((req: Request, res: Response) => T | Promise<T>);

/**
 * What a custom `handler` gets as its 4th argument: this request's result plus the
 * `statusCode` option, so express-rate-limit handlers written as
 * `res.status(options.statusCode)...` keep working.
 */
export type RateLimitRejection = RateLimitResult & {
  /** The `statusCode` option (429 unless set). */
  readonly statusCode: number;
};

/**
 * A request's key: a non-empty string, or `null` for "do not count this request". `undefined`
 * is refused (at run time too), so a missing header never turns the limit off.
 */
export type RateLimitKey = string | null;

/** Options of `rateLimit()`: those of `createRateLimiter()` plus the HTTP ones below. */
export interface RateLimitOptions extends Omit<RateLimiterOptions, "limit" | "windowMs"> {
  /**
   * Requests (cost units) per window, or a function of the request (plans, tiers). With a
   * function (here or in `windowMs`) the limits are per request: `mw.limiter.policies` is
   * empty and `mw.limiter.consume()` needs `{ limit, windowMs }`.
   */
  limit?: PerRequest<number>;
  /** Window in milliseconds, or a function of the request (each window counts apart). */
  windowMs?: PerRequest<number>;
  /**
   * The client's key. Returning `null` or `undefined` leaves the request alone: not counted,
   * no headers.
   * @default the client IP (`req.ip`), IPv4-mapped IPv6 unwrapped, IPv6 grouped by `ipv6Subnet`
   */
  key?: (req: Request, res: Response) => RateLimitKey | Promise<RateLimitKey>;
  /**
   * IPv6 prefix length grouping addresses in the default key; `false` keeps whole addresses.
   * @default 56
   */
  ipv6Subnet?: number | false;
  /**
   * Units each request costs.
   * @default 1
   */
  cost?: PerRequest<number>;
  /** Requests for which this returns true are not counted and get no headers. */
  skip?: (req: Request, res: Response) => boolean | Promise<boolean>;
  /**
   * Refund requests that succeed (`requestWasSuccessful`), e.g. to count only failed logins.
   * @default false
   */
  skipSuccessfulRequests?: boolean;
  /**
   * Refund requests that fail (status >= 400, or the client went away before the end).
   * @default false
   */
  skipFailedRequests?: boolean;
  /**
   * Whether a finished response counts as a success for the two options above.
   * @default (req, res) => res.statusCode < 400
   */
  requestWasSuccessful?: (req: Request, res: Response) => boolean;
  /**
   * Response headers.
   * @default "draft-8"
   */
  headers?: HeaderStyle;
  /**
   * Secret of the draft-8 partition key (`pk`, an HMAC of the key). Give every instance the
   * same one so a client sees one `pk` whichever instance answers.
   * @default random per process
   */
  partitionKeySecret?: string;
  /**
   * Status of the default rejection.
   * @default 429
   */
  statusCode?: number;
  /**
   * Answers a rejected request (headers and `Retry-After` are already set). The 4th argument
   * is the result with `statusCode` added (express-rate-limit passes its options there).
   * @default `statusCode`, JSON `{ "error": "Too Many Requests", "retryAfter": <s | null> }`
   */
  handler?: (
    req: Request,
    res: Response,
    next: NextFunction,
    detail: RateLimitRejection,
  ) => void | Promise<void>;
}

/** `RateLimitOptions` resolved: what the handler reads. */
export interface RateLimitConfig {
  limiter: RateLimiterConfig;
  /** Set when `limit` or `windowMs` is a function: both, resolved per request. */
  dynamic: { limit: PerRequest<number>; windowMs: PerRequest<number> } | undefined;
  key: NonNullable<RateLimitOptions["key"]>;
  cost: PerRequest<number>;
  skip: ((req: Request, res: Response) => boolean | Promise<boolean>) | undefined;
  skipSuccessfulRequests: boolean;
  skipFailedRequests: boolean;
  requestWasSuccessful: (req: Request, res: Response) => boolean;
  headers: HeaderStyle;
  partitionKeySecret: string | Uint8Array;
  statusCode: number;
  handler: NonNullable<RateLimitOptions["handler"]>;
  logger: Logger;
}

/** The factory name errors and logs start with. */
export const SCOPE = "rateLimit";
const HTTP_OPTIONS = [
  "key",
  "ipv6Subnet",
  "cost",
  "skip",
  "skipSuccessfulRequests",
  "skipFailedRequests",
  "requestWasSuccessful",
  "headers",
  "partitionKeySecret",
  "statusCode",
  "handler",
] as const;
const sharedPrefixes = new WeakMap<RedisDriver, Set<string>>();

/** Validates `rateLimit()` options once; throws `InvalidOptionError` naming the option. */
export function parseRateLimitOptions(options: RateLimitOptions): RateLimitConfig {
  if (typeof options !== "object" || options === null) fail(SCOPE, "options", "an object", options);
  rejectUnknown(SCOPE, options, [...LIMITER_OPTIONS, ...HTTP_OPTIONS]);
  const http: Record<string, unknown> = {};
  const rest: Record<string, unknown> = { ...options };
  for (const name of HTTP_OPTIONS) {
    http[name] = rest[name];
    delete rest[name];
  }
  const isFn = (v: unknown) => typeof v === "function";
  let dynamic: RateLimitConfig["dynamic"];
  if (isFn(options.limit) || isFn(options.windowMs)) {
    if (options.policies !== undefined) {
      const name = isFn(options.limit) ? "limit" : "windowMs";
      fail(SCOPE, name, "a number when policies is given", options[name]);
    }
    for (const name of ["limit", "windowMs"] as const) {
      const value = options[name];
      if (!isFn(value) && !(Number.isSafeInteger(value) && (value as number) > 0)) {
        fail(SCOPE, name, "a positive integer or a function (req, res) => number", value);
      }
    }
    dynamic = {
      limit: options.limit as PerRequest<number>,
      windowMs: options.windowMs as PerRequest<number>,
    };
    // The limiter has no limits of its own: each request brings them (no placeholders).
    delete rest.limit;
    delete rest.windowMs;
  }
  const limiter = parseRateLimiterOptions(rest as RateLimiterOptions, SCOPE, dynamic !== undefined);
  const subnet = http.ipv6Subnet;
  if (
    subnet !== undefined &&
    subnet !== false &&
    (!Number.isInteger(subnet) || (subnet as number) < 1 || (subnet as number) > 128)
  ) {
    fail(SCOPE, "ipv6Subnet", "an integer from 1 to 128, or false", subnet);
  }
  const cost = http.cost ?? 1;
  if (!isFn(cost)) positiveInt(SCOPE, "cost", cost);
  const statusCode = http.statusCode ?? 429;
  if (
    !Number.isInteger(statusCode) ||
    (statusCode as number) < 400 ||
    (statusCode as number) > 599
  ) {
    fail(SCOPE, "statusCode", "an HTTP error status (400-599)", statusCode);
  }
  if (limiter.redis !== undefined) {
    const seen = sharedPrefixes.get(limiter.redis) ?? new Set<string>();
    sharedPrefixes.set(limiter.redis, seen);
    if (seen.has(limiter.prefix)) {
      limiter.warnings.once(
        "ERK_PREFIX_SHARED",
        `two rateLimit() instances use the prefix ${show(limiter.prefix)} on one Redis client, so they count into the same keys; give each its own prefix`,
      );
    }
    seen.add(limiter.prefix);
  }
  return {
    limiter,
    dynamic,
    key:
      optionalFunction<RateLimitConfig["key"]>(SCOPE, "key", http.key) ??
      clientIpKey((subnet as number | false | undefined) ?? 56, limiter.warnings),
    cost: cost as PerRequest<number>,
    skip: optionalFunction(SCOPE, "skip", http.skip),
    skipSuccessfulRequests: bool(
      SCOPE,
      "skipSuccessfulRequests",
      http.skipSuccessfulRequests,
      false,
    ),
    skipFailedRequests: bool(SCOPE, "skipFailedRequests", http.skipFailedRequests, false),
    requestWasSuccessful:
      optionalFunction<RateLimitConfig["requestWasSuccessful"]>(
        SCOPE,
        "requestWasSuccessful",
        http.requestWasSuccessful,
      ) ?? ((_req, res) => res.statusCode < 400),
    headers: oneOf<HeaderStyle>(
      SCOPE,
      "headers",
      http.headers,
      ["draft-8", "draft-7", "draft-6", "legacy", false],
      "draft-8",
    ),
    partitionKeySecret: parseSecret(http.partitionKeySecret),
    statusCode: statusCode as number,
    handler:
      optionalFunction<RateLimitConfig["handler"]>(SCOPE, "handler", http.handler) ??
      defaultHandler(statusCode as number),
    logger: limiter.logger,
  };
}

function parseSecret(value: unknown): string | Uint8Array {
  if (value === undefined) return PROCESS_PARTITION_SECRET;
  if (typeof value !== "string" || value.length < 16) {
    // Never echo a secret, even a wrong one.
    fail(SCOPE, "partitionKeySecret", "a string of at least 16 characters", "(hidden)");
  }
  return value;
}

function defaultHandler(status: number): RateLimitConfig["handler"] {
  return function tooManyRequests(_req, res, _next, result) {
    const retryAfter = result.retryAfterMs > 0 ? Math.ceil(result.retryAfterMs / 1000) : null;
    res.status(status).json({ error: "Too Many Requests", retryAfter });
  };
}

/** Resolves a `PerRequest` value; awaits only when the function returned a promise. */
export function perRequest(
  value: PerRequest<number>,
  req: Request,
  res: Response,
): number | Promise<number> {
  return typeof value === "function" ? value(req, res) : value;
}

/** True for a thenable (an async option function's result). */
export function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === "function";
}
