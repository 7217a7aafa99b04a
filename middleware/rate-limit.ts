/**
 * `rateLimit()`: request → key → `limiter.consume()` → headers, then `next()` or a 429.
 */

import type { NextFunction, Request, RequestHandler, Response } from "express";
import { InvalidOptionError, StoreUnavailableError } from "../stores/core/errors.js";
import { show } from "../stores/core/options.js";
import {
  type ConsumeOptions,
  createLimiterFromConfig,
  type RateLimiter,
} from "../stores/rate-limit/limiter.js";
import type { RateLimitResult } from "../stores/rate-limit/types.js";
import { RateLimitHeaders, setRetryAfter } from "./rate-limit-headers.js";
import {
  isPromise,
  parseRateLimitOptions,
  perRequest,
  type RateLimitKey,
  type RateLimitOptions,
  type RateLimitRejection,
  SCOPE,
} from "./rate-limit-options.js";
import { Slot } from "./slot.js";
import { answerUnavailable } from "./unavailable.js";

export type {
  PerRequest,
  RateLimitKey,
  RateLimitOptions,
  RateLimitRejection,
} from "./rate-limit-options.js";

const noop = () => {};

/** `req.rateLimit`, kept off the request object (see slot.ts). */
const resultSlot = new Slot<RateLimitResult>("rateLimit");

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
  /** Forgets `key`'s counters (every window) and block. */
  reset(key: string): Promise<void>;
  /**
   * The current state of `key` without charging it. When `limit` or `windowMs` is a function,
   * pass the request (and response, if the functions read it), so the limits are the ones
   * that request would get.
   */
  peek(key: string, req?: Request, res?: Response): Promise<RateLimitResult>;
  /**
   * The key this middleware counts `req` under (for `reset()` and `peek()`); `undefined` when
   * `key(req, res)` leaves the request uncounted.
   */
  keyOf(req: Request, res?: Response): Promise<string | undefined>;
  /**
   * The underlying limiter (for `consume()` from a handler, `block()`, `stats()`). With
   * per-request limits it has no policies (`limiter.perRequest`): pass `{ limit, windowMs }`.
   */
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
  const { dynamic, statusCode } = config;

  function checkKey(key: unknown): string {
    if (typeof key !== "string" || key.length === 0) {
      throw new InvalidOptionError(
        `${SCOPE}: key(req, res) must return a non-empty string, or null to leave the request uncounted (got ${show(key)}; undefined is refused so a missing header never turns the limit off)`,
        "key",
      );
    }
    return key;
  }

  async function keyOf(req: Request, res?: Response): Promise<string | undefined> {
    const key = await config.key(req, res as Response);
    return key === null ? undefined : checkKey(key);
  }

  /** The per-request limits of `req` for `peek()` (undefined when they are static). */
  async function limitsFor(req: Request | undefined, res: Response | undefined) {
    if (dynamic === undefined) return undefined;
    if (req === undefined) {
      throw new InvalidOptionError(
        `${SCOPE}: peek(key, req) needs the request when limit or windowMs is a function`,
        "req",
      );
    }
    const [limit, windowMs] = await Promise.all([
      perRequest(dynamic.limit, req, res as Response),
      perRequest(dynamic.windowMs, req, res as Response),
    ]);
    return { limit, windowMs };
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

  /** Resolves the key, then the rest; never throws. */
  function count(req: Request, res: Response, next: NextFunction): void {
    let keyed: RateLimitKey | Promise<RateLimitKey>;
    try {
      keyed = config.key(req, res);
    } catch (err) {
      next(err);
      return;
    }
    if (isPromise(keyed)) keyed.then((key) => withKey(req, res, next, key), next);
    else withKey(req, res, next, keyed);
  }

  /** Resolves cost and per-request limits for `keyed`, then consumes; never throws. */
  function withKey(req: Request, res: Response, next: NextFunction, keyed: RateLimitKey): void {
    if (keyed === null) {
      next(); // key(req, res) leaves this request alone: not counted, no headers
      return;
    }
    try {
      const key = checkKey(keyed);
      const costed = perRequest(config.cost, req, res);
      if (dynamic === undefined) {
        if (!isPromise(costed)) consume(req, res, next, key, costed, undefined);
        else costed.then((cost) => consume(req, res, next, key, cost, undefined), next);
        return;
      }
      if (isPromise(costed)) costed.then(undefined, noop); // handled below, even if limit throws
      const limit = perRequest(dynamic.limit, req, res);
      if (isPromise(limit)) limit.then(undefined, noop);
      const windowMs = perRequest(dynamic.windowMs, req, res);
      if (isPromise(costed) || isPromise(limit) || isPromise(windowMs)) {
        Promise.all([costed, limit, windowMs]).then(
          ([c, l, w]) => consume(req, res, next, key, c, { limit: l, windowMs: w }),
          next,
        );
        return;
      }
      consume(req, res, next, key, costed, { limit, windowMs });
    } catch (err) {
      next(err);
    }
  }

  /** Counts the request; never throws (an invalid per-request limit rejects into next). */
  function consume(
    req: Request,
    res: Response,
    next: NextFunction,
    key: string,
    cost: number,
    limits: ConsumeOptions | undefined,
  ): void {
    limiter.consume(key, cost, limits).then(
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
      resultSlot.set(req, result);
      headers.set(res, result, key);
      if (!result.allowed) {
        setRetryAfter(res, result);
        const handled = config.handler(req, res, next, rejection(result, statusCode));
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
    peek: async (key: string, req?: Request, res?: Response) =>
      limiter.peek(key, 1, await limitsFor(req, res)),
    keyOf,
    limiter,
  });
}

/** The handler's 4th argument: the result (its getters kept) plus `statusCode`. */
function rejection(result: RateLimitResult, statusCode: number): RateLimitRejection {
  // Own fields copied (logs and spreads see them), prototype kept (`used`, `resetTime`).
  return Object.setPrototypeOf({ ...result, statusCode }, Object.getPrototypeOf(result));
}
