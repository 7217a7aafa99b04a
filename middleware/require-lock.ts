/**
 * `requireLock()`: acquire → `next()` → release when the response finishes. "One import per
 * user at a time" as one line: `app.post("/imports", requireLock({ key: (req) => req.user.id }), …)`.
 *
 * While the handler runs the lock is extended every ttl/3 (`autoExtend`). When the client
 * disconnects before the response finished, `req.lock.signal` aborts (reason: a
 * `ClientClosedError`) and the lock stays held until the handler ends its response or the TTL
 * runs out: it is never released while the handler may still be writing.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import {
  ExpressRedisKitError,
  LockNotAcquiredError,
  StoreUnavailableError,
  toError,
} from "../stores/core/errors.js";
import { consoleLogger, type Logger } from "../stores/core/logger.js";
import { bool, fail, oneOf, optionalFunction, rejectUnknown } from "../stores/core/options.js";
import type { RedisClient } from "../stores/core/scripts.js";
import { duration, ttl } from "../stores/lock/held-lock.js";
import { createLockManager, type Lock, type LockManager } from "../stores/lock/lock.js";

const SCOPE = "requireLock";

declare global {
  namespace Express {
    interface Request {
      /** Set by `requireLock()`: the held lock; its `signal` also aborts when the client leaves. */
      lock?: RequestLock;
    }
  }
}

/** The client closed the connection before the response finished (reason of `req.lock.signal`). */
export class ClientClosedError extends ExpressRedisKitError {
  constructor() {
    super("the client closed the connection before the response finished", "ERK_CLIENT_CLOSED");
  }
}

/** `req.lock`: the lock, with a `signal` that also aborts when the client disconnects. */
export interface RequestLock extends Omit<Lock, "signal"> {
  readonly signal: AbortSignal;
}

/** Options of `requireLock()`. */
export interface RequireLockOptions {
  /** Redis client (ioredis, iovalkey or node-redis; standalone, Cluster or Sentinel). Omitted: the in-process memory backend. */
  redis?: RedisClient;
  /** A manager to share (instead of `redis`/`prefix`). */
  locks?: LockManager;
  /** The resource to lock for this request; `null`/`undefined` skips locking. */
  key: (req: Request) => string | null | undefined;
  /** @default "lock:" */
  prefix?: string;
  /** @default 30000 */
  ttlMs?: number;
  /** Wait this long for the lock before answering busy. @default 0 */
  waitMs?: number;
  /** Extend every ttl/3 while the request runs. @default true */
  autoExtend?: boolean;
  /** Stop extending after this long (the lock then expires). */
  maxHoldMs?: number;
  /** Status when busy. @default 409 */
  status?: 409 | 423;
  /** Answers a busy request instead of the default JSON. */
  onLocked?: (req: Request, res: Response, next: NextFunction, error: LockNotAcquiredError) => void;
  /**
   * When Redis fails: `"closed"` answers 503; `"open"` runs the handler unlocked (unsafe:
   * two requests may then run at once).
   * @default "closed"
   */
  onRedisError?: "open" | "closed";
  /** @default console */
  logger?: Logger;
}

/** The handler `requireLock()` returns. */
export interface RequireLockMiddleware extends RequestHandler {
  /** The lock manager (for `stats()`, `acquire()` outside HTTP). */
  readonly locks: LockManager;
}

/** Guards a route with a lock per `key(req)`; see the module comment and the README. */
export function requireLock(options: RequireLockOptions): RequireLockMiddleware {
  if (typeof options !== "object" || options === null) fail(SCOPE, "options", "an object", options);
  rejectUnknown(SCOPE, options, [
    "redis",
    "locks",
    "key",
    "prefix",
    "ttlMs",
    "waitMs",
    "autoExtend",
    "maxHoldMs",
    "status",
    "onLocked",
    "onRedisError",
    "logger",
  ]);
  const key = optionalFunction<RequireLockOptions["key"]>(SCOPE, "key", options.key);
  if (key === undefined) fail(SCOPE, "key", "a function of the request", undefined);
  // Checked here with the bounds acquire() applies, so a bad value fails at start-up, not
  // on every request.
  const ttlMs = options.ttlMs === undefined ? 30_000 : ttl(SCOPE, options.ttlMs);
  const waitMs = options.waitMs === undefined ? 0 : duration(SCOPE, "waitMs", options.waitMs, true);
  const autoExtend = bool(SCOPE, "autoExtend", options.autoExtend, true);
  const maxHoldMs =
    options.maxHoldMs === undefined ? undefined : duration(SCOPE, "maxHoldMs", options.maxHoldMs);
  const status = options.status ?? 409;
  if (status !== 409 && status !== 423) fail(SCOPE, "status", "409 or 423", status);
  const onLocked = optionalFunction<NonNullable<RequireLockOptions["onLocked"]>>(
    SCOPE,
    "onLocked",
    options.onLocked,
  );
  const onRedisError = oneOf(
    SCOPE,
    "onRedisError",
    options.onRedisError,
    ["open", "closed"] as const,
    "closed",
  );
  const logger = options.logger ?? consoleLogger;
  if (
    options.locks !== undefined &&
    (options.redis !== undefined || options.prefix !== undefined)
  ) {
    fail(SCOPE, "locks", "given without redis and prefix (the manager has its own)", options.locks);
  }
  const locks =
    options.locks ??
    createLockManager({
      redis: options.redis,
      prefix: options.prefix,
      defaultTtlMs: ttlMs,
      logger,
    });

  const middleware = function requireLockMiddleware(
    req: Request,
    res: Response,
    next: NextFunction,
  ) {
    let resource: string | null | undefined;
    try {
      resource = key(req);
    } catch (err) {
      return next(err);
    }
    if (resource === null || resource === undefined) return next();
    // Stop waiting for the lock if the client leaves first.
    const gone = new AbortController();
    const onClose = () => gone.abort();
    res.once("close", onClose);
    locks
      .acquire(resource, { ttlMs, waitMs, signal: gone.signal })
      .then(
        (lock) => {
          res.off("close", onClose);
          if (res.destroyed || res.writableEnded) {
            void lock.release(); // the client left while we waited: nobody to run for
            return;
          }
          hold(req, res, next, lock);
        },
        (err: unknown) => {
          res.off("close", onClose);
          if (gone.signal.aborted) return; // the client left while waiting
          busy(req, res, next, err);
        },
      )
      .catch(next); // a throwing onLocked or handler setup: to Express, never unhandled
  } as RequireLockMiddleware;

  function busy(req: Request, res: Response, next: NextFunction, err: unknown): void {
    if (err instanceof LockNotAcquiredError) {
      const seconds = Math.max(1, Math.ceil(err.retryAfterMs / 1000));
      res.setHeader("Retry-After", String(seconds));
      if (onLocked !== undefined) {
        onLocked(req, res, next, err);
        return;
      }
      res.status(status).json({
        error: status === 423 ? "Locked" : "Conflict",
        message: "another request holds this resource",
        retryAfter: seconds,
      });
      return;
    }
    if (err instanceof StoreUnavailableError) {
      if (onRedisError === "open") {
        next();
        return;
      }
      res
        .status(503)
        .json({ error: "Service Unavailable", message: "the lock service is unavailable" });
      return;
    }
    next(err); // a bad key (InvalidOptionError) and the like
  }

  function hold(req: Request, res: Response, next: NextFunction, lock: Lock): void {
    const controller = new AbortController();
    const follow = () => controller.abort(lock.signal.reason);
    if (lock.signal.aborted) follow();
    else lock.signal.addEventListener("abort", follow, { once: true });
    // A view of the lock whose signal also aborts when the client leaves; every call goes to
    // the lock itself.
    req.lock = {
      resource: lock.resource,
      token: lock.token,
      fence: lock.fence,
      get expiresAt() {
        return lock.expiresAt;
      },
      get lost() {
        return lock.lost;
      },
      signal: controller.signal,
      extend: (ms?: number) => lock.extend(ms),
      release: () => lock.release(),
      [Symbol.asyncDispose]: () => lock[Symbol.asyncDispose](),
    };
    const stop = autoExtend ? locks.autoExtend(lock, { maxHoldMs }) : () => {};
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      stop();
      lock.signal.removeEventListener("abort", follow);
      lock
        .release()
        .catch((err: unknown) => logger.warn(`${SCOPE}: release failed (${toError(err).message})`));
    };
    res.once("finish", release);
    res.once("close", () => {
      if (res.writableFinished) return release();
      // The client left: tell the handler, stop extending, keep the lock until the handler
      // ends its response (below) or the TTL runs out.
      stop();
      if (!controller.signal.aborted) controller.abort(new ClientClosedError());
      if (res.writableEnded) release();
    });
    const end = res.end;
    res.end = function endAndRelease(this: Response, ...args: unknown[]) {
      const out = (end as (...a: unknown[]) => Response).apply(this, args);
      if (res.destroyed) release(); // no 'finish' will come on a closed socket
      return out;
    } as Response["end"];
    next();
  }

  Object.defineProperty(middleware, "locks", { value: locks });
  return middleware;
}
