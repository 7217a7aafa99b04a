/**
 * `requireLock()`: acquire → `next()` → release when the response finishes. "One import per
 * user at a time" as one line: `app.post("/imports", requireLock({ key: (req) => req.user.id }), …)`.
 *
 * While the handler runs the lock is extended every ttl/3 (`autoExtend`). When the client
 * disconnects before the response finished, `req.lock.signal` aborts (reason: a
 * `ClientClosedError`) and the lock stays held until the handler ends its response or the TTL
 * runs out: it is never released while the handler may still be writing.
 *
 * Redis failing (`onRedisError`): `"closed"` answers 503 with `Retry-After` (when the manager
 * tries Redis again) through `answerUnavailable`; `"open"` runs the handler without a lock.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import {
  ExpressRedisKitError,
  InvalidOptionError,
  LockNotAcquiredError,
  StoreUnavailableError,
  toError,
} from "../stores/core/errors.js";
import { parseFailureOptions } from "../stores/core/failure.js";
import { parsePrefix } from "../stores/core/keys.js";
import { consoleLogger, type Logger } from "../stores/core/logger.js";
import {
  bool,
  fail,
  optionalFunction,
  optionalRedis,
  rejectUnknown,
} from "../stores/core/options.js";
import { parseReplicas, type ReplicasOptions } from "../stores/core/replicas.js";
import type { RedisClient } from "../stores/core/scripts.js";
import { duration, ttl } from "../stores/lock/held-lock.js";
import { type Lock, type LockManager, lockManagerFromConfig } from "../stores/lock/lock.js";
import { DEFAULT_LOCK_TTL_MS } from "../stores/lock/options.js";
import { Slot } from "./slot.js";
import { answerUnavailable } from "./unavailable.js";

const SCOPE = "requireLock";
/** `req.lock`, kept without an own property per request (see `Slot`). */
const lockSlot = new Slot<RequestLock>("lock");

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

/**
 * `req.lock`: the lock's fields and calls, with a `signal` of its own (made on first read) that
 * aborts with the lock's `LockLostError` or a `ClientClosedError`, whichever comes first.
 */
class HeldRequestLock implements RequestLock {
  readonly resource: string;
  readonly token: string;
  readonly fence: number;
  private controller: AbortController | undefined;
  /** The client left before the response finished, while the lock was still held. */
  private left = false;
  /** Passes the lock's loss on to `controller` (while it listens). */
  private follow: (() => void) | undefined;

  constructor(private readonly lock: Lock) {
    this.resource = lock.resource;
    this.token = lock.token;
    this.fence = lock.fence;
  }

  get expiresAt(): number {
    return this.lock.expiresAt;
  }

  get lost(): boolean {
    return this.lock.lost;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      const lock = this.lock;
      this.controller = controller;
      if (this.left) controller.abort(new ClientClosedError());
      else if (lock.lost) controller.abort(lock.signal.reason);
      else {
        this.follow = () => controller.abort(lock.signal.reason);
        lock.signal.addEventListener("abort", this.follow, { once: true });
      }
    }
    return this.controller.signal;
  }

  /** The client left: the signal aborts, unless the lock was lost first. */
  clientClosed(): void {
    if (this.left || this.lock.lost) return;
    this.left = true;
    this.controller?.abort(new ClientClosedError());
  }

  /** Stops following the lock (released by the middleware). */
  detach(): void {
    if (this.follow !== undefined) this.lock.signal.removeEventListener("abort", this.follow);
    this.follow = undefined;
  }

  extend(ms?: number): Promise<boolean> {
    return this.lock.extend(ms);
  }

  release(): Promise<boolean> {
    return this.lock.release();
  }

  [Symbol.asyncDispose](): PromiseLike<void> {
    return this.lock[Symbol.asyncDispose]();
  }
}

/** Options of `requireLock()`. */
export interface RequireLockOptions {
  /** Redis client (ioredis, iovalkey or node-redis; standalone, Cluster or Sentinel). Omitted: the in-process memory backend. */
  redis?: RedisClient;
  /** A manager to share (instead of `redis`, `prefix`, `timeoutMs` and `recheckMs`: it has its own). */
  locks?: LockManager;
  /** The resource to lock for this request; `null` skips locking (`undefined` is an error: a missing value never turns the lock off). */
  key: (req: Request, res: Response) => string | null;
  /** @default "lock:" */
  prefix?: string;
  /** The lock's TTL, ms. @default 30000 */
  ttlMs?: number;
  /** Wait this long for the lock before answering busy, ms. @default 0 */
  waitMs?: number;
  /** Extend every ttl/3 while the request runs. @default true */
  autoExtend?: boolean;
  /** Stop extending after this long, ms (the lock then expires). */
  maxHoldMs?: number;
  /** Status of the busy answer. @default 409 */
  statusCode?: 409 | 423;
  /** Answers a busy request instead of the default JSON (`Retry-After` is already set). */
  handler?: (req: Request, res: Response, next: NextFunction, error: LockNotAcquiredError) => void;
  /**
   * Longest wait for Redis per call of the manager this middleware creates, ms; past it,
   * `onRedisError` applies.
   * @default 1000
   */
  timeoutMs?: number;
  /**
   * When Redis fails or misses `timeoutMs`: `"closed"` answers 503 with `Retry-After`;
   * `"open"` runs the handler unlocked, without `req.lock` (unsafe: two requests may then run
   * at once).
   * @default "closed"
   */
  onRedisError?: "open" | "closed";
  /**
   * While Redis is failing, requests are answered without waiting for it, except one per
   * `recheckMs` that tries it; the first success switches back to Redis.
   * @default 1000
   */
  recheckMs?: number;
  /**
   * Grant or extend the lock only once `count` replicas acknowledged it (see
   * `createLockManager()`); not in time, the lock is given back and `onRedisError` applies (503,
   * or with `"open"` the handler runs unlocked). Opens a connection of its own: close it with
   * `mw.locks.close()`.
   */
  replicas?: ReplicasOptions;
  /** @default console */
  logger?: Logger;
}

/** The handler `requireLock()` returns. */
export interface RequireLockMiddleware extends RequestHandler {
  /** The lock manager (for `stats()`, `acquire()` outside HTTP; `close()` when done with it). */
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
    "statusCode",
    "handler",
    "timeoutMs",
    "onRedisError",
    "recheckMs",
    "replicas",
    "logger",
  ]);
  const key = optionalFunction<RequireLockOptions["key"]>(SCOPE, "key", options.key);
  if (key === undefined) fail(SCOPE, "key", "a function of the request", undefined);
  // Checked here with the bounds acquire() applies, so a bad value fails at start-up, not
  // on every request.
  const ttlMs = options.ttlMs === undefined ? DEFAULT_LOCK_TTL_MS : ttl(SCOPE, options.ttlMs);
  const waitMs = options.waitMs === undefined ? 0 : duration(SCOPE, "waitMs", options.waitMs, true);
  const autoExtend = bool(SCOPE, "autoExtend", options.autoExtend, true);
  const maxHoldMs =
    options.maxHoldMs === undefined ? undefined : duration(SCOPE, "maxHoldMs", options.maxHoldMs);
  const statusCode = options.statusCode ?? 409;
  if (statusCode !== 409 && statusCode !== 423) {
    fail(SCOPE, "statusCode", "409 or 423", statusCode);
  }
  const handler = optionalFunction<NonNullable<RequireLockOptions["handler"]>>(
    SCOPE,
    "handler",
    options.handler,
  );
  const failure = parseFailureOptions(SCOPE, "requireLock", options);
  const onRedisError = failure.onRedisError;
  const logger = options.logger ?? consoleLogger;
  if (options.locks !== undefined) {
    for (const name of ["redis", "prefix", "timeoutMs", "recheckMs", "replicas"] as const) {
      if (options[name] === undefined) continue;
      throw new InvalidOptionError(
        `${SCOPE}: ${name} cannot be given with locks (the shared manager has its own)`,
        name,
      );
    }
  }
  const redis = optionalRedis(SCOPE, "redis", options.redis);
  const locks =
    options.locks ??
    lockManagerFromConfig(
      {
        redis,
        prefix: parsePrefix(SCOPE, options.prefix, "lock:"),
        ttlMs,
        timeoutMs: failure.timeoutMs,
        onRedisError: onRedisError === "open" ? "open" : "closed",
        recheckMs: failure.recheckMs,
        replicas: parseReplicas(SCOPE, options.replicas, redis, failure.timeoutMs),
        logger,
      },
      SCOPE,
    );

  const acquireOptions = { ttlMs, waitMs };
  const extendOptions = { maxHoldMs };

  const middleware = function requireLockMiddleware(
    req: Request,
    res: Response,
    next: NextFunction,
  ) {
    let resource: string | null | undefined;
    try {
      resource = key(req, res);
    } catch (err) {
      return next(err);
    }
    if (resource === null) return next(); // no lock for this request
    if (resource === undefined) {
      return next(
        new InvalidOptionError(
          `${SCOPE}: key(req, res) must return a resource name, or null to run without a lock (got undefined; refused so a missing value never turns the lock off)`,
          "key",
        ),
      );
    }
    // A caller that may wait stops waiting if the client leaves first; one that does not wait
    // has a single answer to await.
    const gone = waitMs === 0 ? undefined : new AbortController();
    const onClose = gone === undefined ? undefined : () => gone.abort();
    if (onClose !== undefined) res.once("close", onClose);
    const options = gone === undefined ? acquireOptions : { ttlMs, waitMs, signal: gone.signal };
    locks
      .acquire(resource, options)
      .then(
        (lock) => {
          if (onClose !== undefined) res.off("close", onClose);
          if (res.destroyed || res.writableEnded) {
            void lock.release(); // the client left while we waited: nobody to run for
            return;
          }
          hold(req, res, next, lock);
        },
        (err: unknown) => {
          if (onClose !== undefined) res.off("close", onClose);
          if (gone === undefined ? res.destroyed : gone.signal.aborted) return; // the client left
          busy(req, res, next, err);
        },
      )
      .catch(next); // a throwing handler (option) or setup: to Express, never unhandled
  } as RequireLockMiddleware;

  function busy(req: Request, res: Response, next: NextFunction, err: unknown): void {
    if (err instanceof LockNotAcquiredError) {
      const seconds = Math.max(1, Math.ceil(err.retryAfterMs / 1000));
      res.setHeader("Retry-After", String(seconds));
      if (handler !== undefined) {
        handler(req, res, next, err);
        return;
      }
      res.status(statusCode).json({
        error: statusCode === 423 ? "Locked" : "Conflict",
        message: "another request holds this resource",
        retryAfter: seconds,
      });
      return;
    }
    if (err instanceof StoreUnavailableError) {
      if (onRedisError === "closed") answerUnavailable(res, err);
      else next(); // "open": the handler runs unlocked, without req.lock
      return;
    }
    next(err); // a bad key (InvalidOptionError) and the like
  }

  function hold(req: Request, res: Response, next: NextFunction, lock: Lock): void {
    const view = new HeldRequestLock(lock);
    lockSlot.set(req, view);
    const stop = autoExtend ? locks.autoExtend(lock, extendOptions) : undefined;
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      stop?.();
      view.detach();
      lock
        .release()
        .catch((err: unknown) => logger.warn(`${SCOPE}: release failed (${toError(err).message})`));
    };
    // 'close' follows 'finish' (a tick later) on every response, and comes alone when the
    // client leaves first.
    res.on("close", () => {
      if (res.writableFinished) return release();
      // The client left: tell the handler, stop extending, keep the lock until the handler
      // ends its response (no 'finish' will come on a closed socket) or the TTL runs out.
      stop?.();
      view.clientClosed();
      if (res.writableEnded) return release();
      const end = res.end;
      res.end = function endAndRelease(this: Response, ...args: unknown[]) {
        const out = (end as (...a: unknown[]) => Response).apply(this, args);
        release();
        return out;
      } as Response["end"];
    });
    next();
  }

  Object.defineProperty(middleware, "locks", { value: locks });
  return middleware;
}
