/**
 * `cacheResponse()`: answers GET/HEAD from the cache, or runs the handler once per key
 * (coalescing concurrent misses across processes), captures its response and stores it when
 * HTTP allows. See the README's "cacheResponse()" section.
 */

import type { NextFunction, Request, RequestHandler, Response } from "express";
import { LRUCache } from "lru-cache";
import { ResponseCache as Engine } from "../stores/cache/cache.js";
import type { Lookup, ResponseCacheStats } from "../stores/cache/types.js";
import { StoreUnavailableError } from "../stores/core/errors.js";
import { ResponseCapture } from "./cache-capture.js";
import { type FillContext, fillResponse } from "./cache-fill.js";
import {
  markResponse,
  replay,
  replayStaleForError,
  residentMs,
  snapshot,
  ttlSeconds,
} from "./cache-replay.js";
import {
  checkPurgeTags,
  locationTags,
  purgeUrlTag,
  type Routing,
  requestTarget,
  requestUrlTag,
  type Target,
  varyValues,
} from "./cache-request.js";
import { type CacheResponseOptions, parseCacheOptions, SCOPE } from "./cache-response-options.js";
import { entryUse, type RequestDirectives, requestDirectives } from "./cache-use.js";
import { answerUnavailable } from "./unavailable.js";

export type { ResponseCacheStats } from "../stores/cache/types.js";
export type { CacheResponseOptions } from "./cache-response-options.js";

type FillArgs = Parameters<typeof fillResponse> extends [FillContext, ...infer A] ? A : never;

/** A lookup already made for a request: its key and what it found. */
interface First {
  key: string;
  found: Lookup | undefined;
}

declare global {
  namespace Express {
    interface Response {
      /** Set by `cacheResponse()`: adds tags to this response's cache entry, for `purgeTags()`. */
      cacheTags?: (tags: readonly string[]) => void;
    }
  }
}

/** The handler `cacheResponse()` returns, with admin methods. */
export interface CacheResponseMiddleware extends RequestHandler {
  /**
   * Deletes every stored variant of one URL (any host, user or Vary value): a path with an
   * optional query (`"/api/items?page=2"`), or `{ path, query }`. Query parameters are
   * filtered and sorted as for keys. Resolves with the number of entries deleted.
   */
  purge(
    target: string | { path: string; query?: string | Record<string, string> },
  ): Promise<number>;
  /** Deletes the entries carrying any of `tags`, in Redis and in every process's memory tier. */
  purgeTags(tags: readonly string[]): Promise<number>;
  /** Retires every entry at once (bumps the generation every key includes). */
  purgeAll(): Promise<void>;
  /** Counters: hits, misses, stale, bypasses, coalesced waits, stores, errors. */
  stats(): ResponseCacheStats;
  /** Resolves when every response being stored has been (for graceful shutdown and tests). */
  idle(): Promise<void>;
  /** Closes the pub/sub connection (the Redis client is yours to close). */
  close(): Promise<void>;
}

/**
 * Caches GET responses in Redis (or in memory when no `redis` is given), HTTP-correctly and
 * per user when asked. See the README's "cacheResponse()" section for every option.
 * @throws InvalidOptionError when an option is invalid
 */
export function cacheResponse(options: CacheResponseOptions = {}): CacheResponseMiddleware {
  const config = parseCacheOptions(options);
  const cache = new Engine(config);
  /** Base key → the Vary fields its responses carry, so a hit costs one lookup. */
  const varyOf = new LRUCache<string, string[]>({ max: 10_000 });
  /** The routing options of the app last served, for `purge()` paths. */
  let routing: Routing = { caseSensitive: false, strict: false };

  /** Resolves a request's entry: the base key, or (through a Vary marker) its variant. */
  async function find(
    req: Request,
    t: Target,
    fromStore = false,
    first?: First,
  ): Promise<{ key: string; base: string; found: Lookup | undefined; vary: string[] }> {
    const base = cache.keyFor(t.parts);
    let vary = varyOf.get(base) ?? [];
    let key = vary.length === 0 ? base : variantKey(t, req, vary);
    let found = first?.key === key ? first.found : await cache.lookup(key, fromStore);
    if (found?.entry.vary !== undefined && found.entry.vary.length > 0) {
      vary = found.entry.vary;
      varyOf.set(base, vary);
      key = variantKey(t, req, vary);
      found = await cache.lookup(key, fromStore);
    }
    if (found?.entry.vary !== undefined) found = undefined; // a marker is never a response
    return { key, base, found, vary };
  }

  /** The key of one variant: the request's values of the response's Vary fields, with their names. */
  function variantKey(t: Target, req: Request, vary: readonly string[]): string {
    return cache.keyFor([...t.parts, vary, varyValues(req, vary)]);
  }

  async function serve(
    req: Request,
    res: Response,
    next: NextFunction,
    t: Target,
    first: First | undefined,
    directives: RequestDirectives | undefined,
  ): Promise<void> {
    let { key, base, found } = await find(req, t, false, first);
    let staleForError: Lookup | undefined;
    let validating: Lookup | undefined;
    if (found !== undefined) {
      const { entry } = found;
      const use = entryUse(found, directives);
      if (use === "fresh") {
        cache.counters.hits++;
        return replay(req, res, found, "HIT", `hit; ttl=${ttlSeconds(found)}`);
      }
      if (use === "max-stale") {
        cache.counters.stale++;
        return replay(req, res, found, "STALE", `hit; ttl=${ttlSeconds(found)}; detail=max-stale`);
      }
      if (entry.validators === true) validating = found;
      if (use === "stale-while-revalidate") {
        const claim =
          req.method === "GET"
            ? await cache.claim(key, found.storedAt, false)
            : { kind: "busy" as const };
        if (claim.kind === "fill") {
          cache.counters.misses++;
          // Purged since this request looked: rebuilt, never revalidated back.
          if (claim.vanished)
            return fill(req, res, next, t, key, base, claim, undefined, "fwd=stale");
          return fill(req, res, next, t, key, base, claim, found, "fwd=stale", validating);
        }
        if (claim.kind === "filled") {
          const again = await find(req, t, true);
          if (again.found !== undefined && entryUse(again.found) === "fresh") {
            cache.counters.hits++;
            return replay(req, res, again.found, "HIT", `hit; ttl=${ttlSeconds(again.found)}`);
          }
        }
        cache.counters.stale++;
        return replay(
          req,
          res,
          found,
          "STALE",
          `hit; ttl=${ttlSeconds(found)}; detail=stale-while-revalidate`,
        );
      }
      if (entry.mustRevalidate !== true && residentMs(found) < entry.freshMs + entry.staleIfErrorMs)
        staleForError = found;
    }
    cache.counters.misses++;
    const miss =
      found === undefined
        ? "fwd=uri-miss"
        : directives !== undefined && entryUse(found) === "fresh"
          ? "fwd=request"
          : "fwd=stale";
    if (req.method === "HEAD") return pass(res, next, `${miss}; detail=head`, staleForError);
    if (!config.coalesce) {
      const claim = cache.unlockedClaim();
      return fill(req, res, next, t, key, base, claim, staleForError, miss, validating);
    }
    const seen = found?.storedAt;
    const claim = await cache.claim(key, seen);
    if (claim.kind === "fill" && claim.vanished)
      return fill(req, res, next, t, key, base, claim, undefined, miss); // purged meanwhile
    if (claim.kind === "fill")
      return fill(req, res, next, t, key, base, claim, staleForError, miss, validating);
    if (claim.kind === "busy") {
      const handed = await cache.wait(key);
      if (handed !== undefined) {
        cache.counters.hits++;
        return replay(req, res, handed, "HIT", `hit; ttl=${ttlSeconds(handed)}; collapsed`);
      }
    }
    // Filled by another process meanwhile (or its wait ran out): its entry answers this request
    // when fresh, or when stored since this request looked (a revalidation of a `no-cache`
    // entry, or a fill this request waited for).
    ({ key, base, found } = await find(req, t, true));
    if (
      found !== undefined &&
      (entryUse(found) === "fresh" ||
        (found.storedAt !== seen && residentMs(found) <= config.coalesceWaitMs))
    ) {
      cache.counters.hits++;
      return replay(req, res, found, "HIT", `hit; ttl=${ttlSeconds(found)}; collapsed`);
    }
    return pass(res, next, `${miss}; collapsed; detail=fill-timeout`, staleForError);
  }

  /** Runs the handler without storing (stale-if-error still applies). */
  function pass(res: Response, next: NextFunction, params: string, staleForError?: Lookup): void {
    markResponse(res, "MISS", params);
    if (staleForError !== undefined) {
      const before = snapshot(res);
      new ResponseCapture(res, 0, (originals) => {
        if (res.statusCode < 500) return "pass";
        cache.counters.stale++;
        replayStaleForError(res.req as Request, res, staleForError, originals, before);
        return "replace";
      });
    }
    next();
  }

  const fillContext: FillContext = { cache, config, varyOf, variantKey };
  const fill = (...args: FillArgs) => fillResponse(fillContext, ...args);

  const middleware = function cacheResponseMiddleware(
    req: Request,
    res: Response,
    next: NextFunction,
  ) {
    if (req.method !== "GET" && req.method !== "HEAD") {
      invalidateOnUnsafe(req, res);
      return next();
    }
    let t: Target | string;
    let directives: RequestDirectives | undefined;
    try {
      if (config.honorRequest) directives = requestDirectives(req.headers);
      t = directives?.noStore ? "request-no-store" : requestTarget(req, res, config);
    } catch (err) {
      return next(err);
    }
    if (typeof t === "string") {
      cache.counters.bypasses++;
      markResponse(res, "BYPASS", `fwd=bypass; detail=${t}`);
      return next();
    }
    routing = t.routing;
    const target = t;
    const failed = (err: unknown) => {
      if (err instanceof StoreUnavailableError)
        answerUnavailable(res, err); // closed
      else next(err);
    };
    // The hot path: a fresh entry answered in the lookup's own continuation (synchronously
    // from process memory), with no async frame; anything else goes to serve() with the
    // lookup already made.
    const looked = (first: First) => {
      const { found } = first;
      if (found?.entry.vary === undefined && found !== undefined && directives === undefined) {
        if (residentMs(found) < found.entry.freshMs && found.entry.noCache !== true) {
          cache.counters.hits++;
          try {
            replay(req, res, found, "HIT", `hit; ttl=${ttlSeconds(found)}`);
          } catch (err) {
            failed(err);
          }
          return;
        }
      }
      serve(req, res, next, target, first, directives).catch(failed);
    };
    const go = (ready: boolean) => {
      // Not ready (the subscriber is down, the generation unknown): a bypass, unless Redis
      // itself is failing and the mode is closed, which spares the origin.
      if (!ready && config.onRedisError === "closed" && cache.degraded) {
        return answerUnavailable(res, new StoreUnavailableError(`${SCOPE}: Redis unavailable`));
      }
      if (!ready) {
        cache.counters.bypasses++;
        markResponse(res, "BYPASS", "fwd=bypass; detail=cache-unavailable");
        return next();
      }
      try {
        const base = cache.keyFor(target.parts);
        const vary = varyOf.get(base);
        const key = vary === undefined ? base : variantKey(target, req, vary);
        const found = cache.lookup(key);
        if (found instanceof Promise) found.then((f) => looked({ key, found: f }), failed);
        else looked({ key, found });
      } catch (err) {
        failed(err);
      }
    };
    const ready = cache.ready();
    if (typeof ready === "boolean") go(ready);
    else ready.then(go, () => go(false));
  } as CacheResponseMiddleware;

  /**
   * RFC 9111 §4.4: a request whose method is not known to be safe (anything but GET, HEAD,
   * OPTIONS and TRACE, extension methods included) invalidates its target URI once answered
   * with a non-error status, and the same-origin URIs in `Location` and `Content-Location`.
   */
  function invalidateOnUnsafe(req: Request, res: Response): void {
    if (req.method === "OPTIONS" || req.method === "TRACE") return;
    res.once("finish", () => {
      if (res.statusCode < 200 || res.statusCode >= 400) return;
      const tags = [requestUrlTag(req, config), ...locationTags(req, res, config)];
      // Failures are counted in stats(), not thrown at the client.
      cache.invalidate([...new Set(tags)]).catch(() => {});
    });
  }

  middleware.purge = async (target) => cache.purgeTags([purgeUrlTag(target, routing, config)]);
  middleware.purgeTags = async (tags) => cache.purgeTags(checkPurgeTags(tags));
  middleware.purgeAll = async () => {
    await cache.purgeAll();
  };
  middleware.stats = () => cache.stats();
  middleware.idle = () => cache.idle();
  middleware.close = () => cache.close();
  return middleware;
}
