/**
 * `rateLimit()`: request → key → `limiter.consume()` → headers, then `next()` or a 429.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { InvalidOptionError, StoreUnavailableError } from "../stores/core/errors.js";
import { type Logger, warnOnce } from "../stores/core/logger.js";
import { bool, fail, oneOf, optionalFunction, positiveInt, show } from "../stores/core/options.js";
import type { RedisClient } from "../stores/core/scripts.js";
import { createLimiterFromConfig, type RateLimiter } from "../stores/rate-limit/limiter.js";
import type { PolicyOptions } from "../stores/rate-limit/options.js";
import {
  parseRateLimiterOptions,
  type RateLimiterConfig,
  type RateLimiterOptions,
} from "../stores/rate-limit/options.js";
import type { Algorithm, RateLimitResult } from "../stores/rate-limit/types.js";
import { ipKeyGenerator } from "./client-key.js";
import {
  type HeaderStyle,
  PROCESS_PARTITION_SECRET,
  RateLimitHeaders,
  setRetryAfter,
} from "./rate-limit-headers.js";

declare global {
  namespace Express {
    interface Request {
      /** Set by `rateLimit()`: the result of this request's `consume()`. */
      rateLimit?: RateLimitResult;
    }
  }
}

/** A value, or a function of the request giving it (sync or async). */
export type PerRequest<T> = T | ((req: Request) => T | Promise<T>);

/** Options of `rateLimit()`: those of `createRateLimiter()` plus the HTTP ones below. */
export interface RateLimitOptions extends Omit<RateLimiterOptions, "limit" | "windowMs"> {
  /** Requests (cost units) per window, or a function of the request (plans, tiers). */
  limit?: PerRequest<number>;
  /** Window in milliseconds, or a function of the request. */
  windowMs?: PerRequest<number>;
  /**
   * The client's key.
   * @default the client IP (`req.ip`), IPv4-mapped IPv6 unwrapped, IPv6 grouped by `ipv6Subnet`
   */
  key?: (req: Request, res: Response) => string | Promise<string>;
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
   * Answers a rejected request (headers and `Retry-After` are already set).
   * @default JSON `{ "error": "Too Many Requests", "retryAfter": <seconds | null> }`
   */
  handler?: (
    req: Request,
    res: Response,
    next: NextFunction,
    result: RateLimitResult,
  ) => void | Promise<void>;
}

/** The handler `rateLimit()` returns, with admin methods. */
export interface RateLimitMiddleware extends RequestHandler {
  /** Forgets `key`'s counters and block. */
  reset(key: string): Promise<void>;
  /**
   * The current state of `key` without charging it. When `limit` or `windowMs` is a function,
   * pass the request too, so the policy is the one that request would get.
   */
  peek(key: string, req?: Request): Promise<RateLimitResult>;
  /** The key this middleware counts `req` under (for `reset()` and `peek()`). */
  keyOf(req: Request, res?: Response): Promise<string>;
  /** The underlying limiter (for `consume()` from a handler, `block()`, `stats()`). */
  readonly limiter: RateLimiter;
}

interface RateLimitConfig {
  limiter: RateLimiterConfig;
  dynamic:
    | { limit: PerRequest<number>; windowMs: PerRequest<number>; algorithm?: Algorithm }
    | undefined;
  key: (req: Request, res: Response) => string | Promise<string>;
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

const SCOPE = "rateLimit";
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
const sharedPrefixes = new WeakMap<RedisClient, Set<string>>();

/** Validates `rateLimit()` options once; throws `InvalidOptionError` naming the option. */
export function parseRateLimitOptions(options: RateLimitOptions): RateLimitConfig {
  if (typeof options !== "object" || options === null) fail(SCOPE, "options", "an object", options);
  const http: Record<string, unknown> = {};
  const rest: Record<string, unknown> = { ...options };
  for (const name of HTTP_OPTIONS) {
    http[name] = rest[name];
    delete rest[name];
  }
  const isFn = (v: unknown) => typeof v === "function";
  let dynamic: RateLimitConfig["dynamic"];
  if (isFn(options.limit) || isFn(options.windowMs)) {
    if (options.policies !== undefined)
      fail(SCOPE, "limit", "a number when policies is given", options.limit);
    dynamic = {
      limit: options.limit as PerRequest<number>,
      windowMs: options.windowMs as PerRequest<number>,
      algorithm: options.algorithm,
    };
    if (options.windowMs === undefined)
      fail(SCOPE, "windowMs", "a positive integer or a function", undefined);
    if (options.limit === undefined)
      fail(SCOPE, "limit", "a positive integer or a function", undefined);
    // The limiter needs static numbers to validate; the real ones are resolved per request.
    if (isFn(rest.limit)) rest.limit = 1;
    if (isFn(rest.windowMs)) rest.windowMs = 60_000;
  }
  const limiter = parseRateLimiterOptions(rest as RateLimiterOptions, SCOPE);
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
      warnOnce(
        limiter.logger,
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
      ipKeyGenerator((subnet as number | false | undefined) ?? 56, limiter.logger),
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
function perRequest(value: PerRequest<number>, req: Request): number | Promise<number> {
  return typeof value === "function" ? value(req) : value;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === "function";
}

/**
 * Rate limits requests per client key (the IP by default) with Redis, or in memory when no
 * `redis` is given. See the README's "rateLimit()" section for every option.
 * @throws InvalidOptionError when an option is invalid
 */
export function rateLimit(options: RateLimitOptions = {}): RateLimitMiddleware {
  const config = parseRateLimitOptions(options);
  const limiter = createLimiterFromConfig(config.limiter, SCOPE);
  const headers = new RateLimitHeaders(config.headers, config.partitionKeySecret);

  function checkKey(key: unknown): string {
    if (typeof key !== "string" || key.length === 0) {
      throw new InvalidOptionError(
        `${SCOPE}: key(req) must return a non-empty string (got ${show(key)})`,
        "key",
      );
    }
    return key;
  }

  async function keyOf(req: Request, res?: Response): Promise<string> {
    return checkKey(await config.key(req, res as Response));
  }

  /** Per-request policies when `limit` or `windowMs` is a function, else the limiter's. */
  async function policiesFor(req: Request | undefined) {
    if (config.dynamic === undefined) return undefined;
    if (req === undefined) {
      throw new InvalidOptionError(
        `${SCOPE}: peek(key, req) needs the request when limit or windowMs is a function`,
        "req",
      );
    }
    const { limit, windowMs, algorithm } = config.dynamic;
    return {
      policies: [
        {
          limit: await perRequest(limit, req),
          windowMs: await perRequest(windowMs, req),
          algorithm,
        },
      ],
    };
  }

  // The hot path stays synchronous up to the one Redis call whenever the options are plain
  // values or synchronous functions: no async frames, one promise continuation.
  function rateLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    try {
      const skipped = config.skip?.(req, res);
      if (isPromise(skipped)) {
        skipped.then((skip) => (skip ? next() : count(req, res, next)), next);
      } else if (skipped) {
        next();
      } else {
        count(req, res, next);
      }
    } catch (err) {
      next(err);
    }
  }

  function count(req: Request, res: Response, next: NextFunction): void {
    const keyed = config.key(req, res);
    const costed = perRequest(config.cost, req);
    if (isPromise(keyed) || isPromise(costed) || config.dynamic !== undefined) {
      Promise.all([keyed, costed, policiesFor(req)]).then(
        ([key, cost, overrides]) => consume(req, res, next, checkKey(key), cost, overrides),
        next,
      );
      return;
    }
    consume(req, res, next, checkKey(keyed), costed, undefined);
  }

  function consume(
    req: Request,
    res: Response,
    next: NextFunction,
    key: string,
    cost: number,
    overrides: { policies: PolicyOptions[] } | undefined,
  ): void {
    limiter.consume(key, cost, overrides).then(
      (result) => respond(req, res, next, key, result),
      (err: unknown) => {
        if (!(err instanceof StoreUnavailableError)) return next(err);
        res.status(503).json({ error: "Service Unavailable" }); // onRedisError: "closed"
      },
    );
  }

  function respond(
    req: Request,
    res: Response,
    next: NextFunction,
    key: string,
    result: RateLimitResult,
  ): void {
    try {
      req.rateLimit = result;
      headers.set(res, result, key);
      if (!result.allowed) {
        setRetryAfter(res, result);
        const handled = config.handler(req, res, next, result);
        if (isPromise(handled)) handled.then(undefined, next);
        return;
      }
      if (config.skipSuccessfulRequests || config.skipFailedRequests) refundLater(req, res, result);
    } catch (err) {
      next(err);
      return;
    }
    next();
  }

  function refundLater(req: Request, res: Response, result: RateLimitResult) {
    let settled = false;
    const settle = (failed: boolean) => {
      if (settled) return;
      settled = true;
      if (failed ? config.skipFailedRequests : config.skipSuccessfulRequests) {
        // A refund that cannot reach Redis is dropped inside refund(); this never rejects.
        void limiter.refund(result);
      }
    };
    res.once("finish", () => {
      let succeeded = false;
      try {
        succeeded = config.requestWasSuccessful(req, res);
      } catch (err) {
        config.logger.error(`${SCOPE}: requestWasSuccessful threw: ${(err as Error).message}`);
      }
      settle(!succeeded);
    });
    res.once("close", () => settle(true)); // after "finish" this is a no-op; before, the client left
  }

  return Object.assign(rateLimitMiddleware, {
    reset: (key: string) => limiter.reset(key),
    peek: async (key: string, req?: Request) => limiter.peek(key, 1, await policiesFor(req)),
    keyOf,
    limiter,
  });
}
