/**
 * `rateLimit()`: request → key → `limiter.consume()` → headers, then `next()` or a 429.
 */

import type { NextFunction, Request, RequestHandler, Response } from "express";
import { InvalidOptionError, StoreUnavailableError } from "../stores/core/errors.js";
import { show } from "../stores/core/options.js";
import { createLimiterFromConfig, type RateLimiter } from "../stores/rate-limit/limiter.js";
import type { PolicyOptions } from "../stores/rate-limit/options.js";
import type { RateLimitResult } from "../stores/rate-limit/types.js";
import { RateLimitHeaders, setRetryAfter } from "./rate-limit-headers.js";
import {
  isPromise,
  parseRateLimitOptions,
  perRequest,
  type RateLimitOptions,
  SCOPE,
} from "./rate-limit-options.js";
import { answerUnavailable } from "./unavailable.js";

export type { PerRequest, RateLimitOptions } from "./rate-limit-options.js";

const noop = () => {};

declare global {
  namespace Express {
    interface Request {
      /** Set by `rateLimit()`: the result of this request's `consume()`. */
      rateLimit?: RateLimitResult;
    }
  }
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
  // values or synchronous functions: no async frames, one promise continuation. Every user
  // callback's throw or rejection ends in next(err), exactly once.
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

  /** Resolves key, cost and per-request policies, then consumes; never throws. */
  function count(req: Request, res: Response, next: NextFunction): void {
    try {
      const keyed = config.key(req, res);
      if (isPromise(keyed)) keyed.then(undefined, noop); // handled below, even if cost throws
      const costed = perRequest(config.cost, req);
      if (isPromise(keyed) || isPromise(costed) || config.dynamic !== undefined) {
        Promise.all([keyed, costed, policiesFor(req)]).then(([key, cost, overrides]) => {
          try {
            consume(req, res, next, checkKey(key), cost, overrides);
          } catch (err) {
            next(err);
          }
        }, next);
        return;
      }
      consume(req, res, next, checkKey(keyed), costed, undefined);
    } catch (err) {
      next(err);
    }
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
        answerUnavailable(res, err); // onRedisError: "closed"
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
