/**
 * The miss path of `cacheResponse()`: runs the handler as the filler of a key, captures its
 * response, decides with HTTP's rules whether to store it (again on the headers as sent), and
 * stores it with its tags and Vary variants, or abandons the fill.
 */
import etag from "etag";
import type { NextFunction, Request, Response } from "express";
import type { LRUCache } from "lru-cache";
import type { ResponseCache as Engine } from "../stores/cache/cache.js";
import type { FillClaim, Lookup, StoredResponse } from "../stores/cache/types.js";
import { toError } from "../stores/core/errors.js";
import { ResponseCapture } from "./cache-capture.js";
import {
  type Freshness,
  headerText,
  storability,
  storedHeaders,
  varyNames,
} from "./cache-policy.js";
import { markResponse, replayStaleForError, snapshot } from "./cache-replay.js";
import { collectTags, type Target } from "./cache-request.js";
import { type CacheConfig, SCOPE } from "./cache-response-options.js";

/** What the miss path shares with the middleware. */
export interface FillContext {
  cache: Engine;
  config: CacheConfig;
  /** Base key → the Vary fields its responses carry. */
  varyOf: LRUCache<string, string[]>;
  /** The key of one variant of `t`. */
  variantKey(t: Target, req: Request, vary: readonly string[]): string;
}

/** Runs the handler as the filler of `key`, captures the response and stores it. */
export function fillResponse(
  ctx: FillContext,
  req: Request,
  res: Response,
  next: NextFunction,
  t: Target,
  key: string,
  base: string,
  claim: FillClaim,
  staleForError: Lookup | undefined,
  fwd: string,
): void {
  const { cache, config, varyOf, variantKey } = ctx;
  // The entry must be the full response: the conditional is answered from it on later hits.
  delete req.headers["if-none-match"];
  delete req.headers["if-modified-since"];
  const before = snapshot(res); // set by earlier middleware: not stored unless changed
  const tags: string[] = [];
  res.cacheTags = (list) => {
    for (const tag of list) tags.push(tag);
  };
  let freshness: Freshness | undefined;
  let status = 200;
  let dateIsNow = false;
  const capture = new ResponseCapture(res, config.maxBodyBytes, (originals) => {
    status = res.statusCode;
    if (staleForError !== undefined && status >= 500) {
      cache.counters.stale++;
      replayStaleForError(req, res, staleForError, originals, before);
      return "replace";
    }
    dateIsNow = !res.hasHeader("date");
    if (dateIsNow) res.setHeader("Date", new Date().toUTCString());
    const verdict = storability(status, res.getHeaders(), t.perUser, config, Date.now(), dateIsNow);
    if (typeof verdict === "string") {
      markResponse(res, "MISS", `${fwd}; detail=${verdict}`);
      return "pass";
    }
    freshness = verdict;
    // `stored` when it will be: not while Redis is failing (it is then handed to waiters only).
    markResponse(res, "MISS", cache.degraded ? fwd : `${fwd}; stored`);
    return "capture";
  });
  let settled = false;
  res.once("finish", () => {
    if (settled) return;
    settled = true;
    if (freshness === undefined || !capture.complete) return cache.abandon(key, claim.token);
    // Decide again on the headers as sent: hooks that run inside writeHead (on-headers, as
    // express-session's Set-Cookie) may have changed them after the first decision.
    const sent = res.getHeaders();
    const final = storability(status, sent, t.perUser, config, Date.now(), dateIsNow);
    if (typeof final === "string") return cache.abandon(key, claim.token);
    const vary = varyNames(headerText(sent, "vary"));
    const headers = storedHeaders(sent).filter(
      ([name]) => name === "date" || !before.has(name) || before.get(name) !== sent[name],
    );
    const entryTags = collectTags(req, res, tags, t, config);
    if (entryTags === undefined) return cache.abandon(key, claim.token);
    const body = capture.body();
    if (status === 200 && !headers.some(([name]) => name === "etag")) {
      headers.push(["etag", etag(body)]);
    }
    const entry: StoredResponse = { status, headers, body, tags: entryTags, ...freshness };
    const items = [{ key: base, entry }];
    if (vary.length > 0) {
      varyOf.set(base, vary);
      const marker: StoredResponse = { ...entry, headers: [], body: Buffer.alloc(0), vary };
      items[0] = { key: base, entry: marker };
      items.push({ key: variantKey(t, req, vary), entry });
    } else {
      varyOf.delete(base);
    }
    const ttl =
      freshness.freshMs + Math.max(freshness.staleWhileRevalidateMs, freshness.staleIfErrorMs);
    cache.fill(key, claim, items, ttl).catch((err: unknown) => {
      config.logger.warn(`${SCOPE}: storing a response failed (${toError(err).message})`);
    });
  });
  res.once("close", () => {
    if (settled) return;
    settled = true; // aborted: never stored
    cache.abandon(key, claim.token);
  });
  next();
}
