/**
 * The miss path of `cacheResponse()`: runs the handler as the filler of a key, captures its
 * response, decides with HTTP's rules whether to store it (again on the headers as sent), and
 * stores it with its tags and Vary variants, or abandons the fill.
 */

import type { OutgoingHttpHeaders } from "node:http";
import etag from "etag";
import type { NextFunction, Request, Response } from "express";
import type { LRUCache } from "lru-cache";
import type { ResponseCache as Engine } from "../stores/cache/cache.js";
import {
  type FillClaim,
  type Lookup,
  retentionMs,
  type StoredResponse,
} from "../stores/cache/types.js";
import { toError } from "../stores/core/errors.js";
import { ResponseCapture } from "./cache-capture.js";
import {
  type Freshness,
  headerText,
  storability,
  storedHeaders,
  varyNames,
} from "./cache-policy.js";
import { markResponse, replay, replayStaleForError, snapshot, stored } from "./cache-replay.js";
import { collectTags, type Target } from "./cache-request.js";
import { type CacheConfig, SCOPE } from "./cache-response-options.js";
import { opaqueTag } from "./conditional.js";

/** What the miss path shares with the middleware. */
export interface FillContext {
  cache: Engine;
  config: CacheConfig;
  /** Base key → the Vary fields its responses carry. */
  varyOf: LRUCache<string, string[]>;
  /** The key of one variant of `t`. */
  variantKey(t: Target, req: Request, vary: readonly string[]): string;
}

/** The client's own header fields the cache's conditional request replaces. */
const CONDITIONAL = ["if-none-match", "if-modified-since", "cache-control", "pragma"] as const;

/**
 * Runs the handler as the filler of `key`, captures the response and stores it. With
 * `validating` (a stale entry with a validator), the handler gets the cache's conditional
 * request: a 304 refreshes that entry and the client is answered from it (RFC 9111 §4.3).
 */
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
  validating?: Lookup,
): void {
  const { cache, config } = ctx;
  if (req.socket?.destroyed === true) {
    // The client left while the lock was being taken: its "close" has been and gone, so this
    // fill would never end, and its flight would hold every later request of the key.
    cache.abandon(key, claim.token);
    return;
  }
  // The entry must be the full response: the client's conditional is answered from it on
  // later hits. Validating, the handler sees the cache's own conditional request instead
  // (the stored validators, no request directives, which would make Express answer 200).
  const client = CONDITIONAL.map((name) => req.headers[name]);
  const restore = () => {
    CONDITIONAL.forEach((name, i) => {
      if (client[i] === undefined) delete req.headers[name];
      else req.headers[name] = client[i] as string;
    });
  };
  delete req.headers["if-none-match"];
  delete req.headers["if-modified-since"];
  if (validating !== undefined) {
    cache.counters.validations++;
    delete req.headers["cache-control"];
    delete req.headers.pragma;
    // An ETag the cache made up names nothing the origin knows: only Last-Modified is sent then.
    const etag = validating.entry.etagGenerated ? undefined : stored(validating, "etag");
    const lastModified = stored(validating, "last-modified");
    if (etag !== undefined) req.headers["if-none-match"] = etag;
    if (lastModified !== undefined) req.headers["if-modified-since"] = lastModified;
  }
  const before = snapshot(res); // set by earlier middleware: not stored unless changed
  const tags: string[] = [];
  res.cacheTags = (list) => {
    for (const tag of list) tags.push(tag);
  };
  let freshness: Freshness | undefined;
  /** After a 304: the refreshed entry, why it may not be stored, or "keep" (left as it was). */
  let validated: StoredResponse | string | undefined;
  let status = 200;
  let dateIsNow = false;
  const capture = new ResponseCapture(res, config.maxBodyBytes, (originals) => {
    if (validating !== undefined) restore();
    status = res.statusCode;
    if (staleForError !== undefined && status >= 500) {
      cache.counters.stale++;
      replayStaleForError(req, res, staleForError, originals, before);
      return "replace";
    }
    dateIsNow = !res.hasHeader("date");
    if (dateIsNow) res.setHeader("Date", new Date().toUTCString());
    if (validating !== undefined && status === 304) {
      cache.counters.notModified++;
      const now = Date.now();
      const update = updatedEntry(validating.entry, res, before, t.perUser, config, now, dateIsNow);
      validated = update === "validator-mismatch" ? "keep" : update;
      const detail = typeof update === "string" ? `; detail=${update}` : "; stored";
      const answer = {
        entry: typeof update === "string" ? validating.entry : update,
        storedAt: now,
        now,
      };
      replay(req, res, answer, "REVALIDATED", `${fwd}; fwd-status=304${detail}`, originals);
      return "replace";
    }
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
    if (validated !== undefined) {
      // A hook inside writeHead (express-session's Set-Cookie) may have added a cookie to the
      // answer: then the shared entry is not refreshed from it. One that may not be stored any
      // more (no-store, private, Set-Cookie) is deleted: its old body must not be used again.
      if (validated === "keep") return cache.abandon(key, claim.token);
      if (typeof validated === "string" || res.hasHeader("set-cookie")) {
        return cache.discard(key, claim.token);
      }
      const vary = varyNames(validated.headers.find(([name]) => name === "vary")?.[1]);
      return store(ctx, req, t, key, base, claim, validated, vary);
    }
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
    const etagGenerated = status === 200 && !headers.some(([name]) => name === "etag");
    if (etagGenerated) headers.push(["etag", etag(body)]);
    const entry = entryOf(status, headers, body, entryTags, final, etagGenerated);
    store(ctx, req, t, key, base, claim, entry, vary);
  });
  res.once("close", () => {
    if (validating !== undefined) restore();
    if (settled) return;
    settled = true; // aborted: never stored
    cache.abandon(key, claim.token);
  });
  next();
}

/** A stored response from its parts; flags written only when set (they travel as JSON). */
function entryOf(
  status: number,
  headers: [string, string][],
  body: Buffer,
  tags: string[],
  f: Freshness,
  etagGenerated: boolean,
): StoredResponse {
  const entry: StoredResponse = {
    status,
    headers,
    body,
    tags,
    freshMs: f.freshMs,
    initialAgeMs: f.initialAgeMs,
    staleWhileRevalidateMs: f.staleWhileRevalidateMs,
    staleIfErrorMs: f.staleIfErrorMs,
  };
  if (f.keepMs > 0) entry.keepMs = f.keepMs;
  if (f.validators) entry.validators = true;
  if (f.noCache) entry.noCache = true;
  if (f.mustRevalidate) entry.mustRevalidate = true;
  if (etagGenerated) entry.etagGenerated = true;
  return entry;
}

/**
 * The stored response updated by a 304 (RFC 9111 §3.2, §4.3.4): each field of the 304 replaces
 * the stored field of that name (not Content-Length, not what earlier middleware set), then
 * freshness is computed again from the result. A string says why it cannot be stored (a 304
 * whose strong validator names another representation updates nothing).
 */
function updatedEntry(
  old: StoredResponse,
  res: Response,
  before: Map<string, unknown>,
  perUser: boolean,
  config: FillContext["config"],
  now: number,
  dateIsNow: boolean,
): StoredResponse | string {
  const sent = res.getHeaders();
  const fresh = storedHeaders(sent).filter(
    ([name]) => name === "date" || !before.has(name) || before.get(name) !== sent[name],
  );
  const newTag = fresh.find(([name]) => name === "etag")?.[1];
  const oldTag = old.headers.find(([name]) => name === "etag")?.[1];
  if (newTag !== undefined && !newTag.startsWith("W/") && oldTag !== undefined) {
    if (opaqueTag(newTag) !== opaqueTag(oldTag)) return "validator-mismatch";
  }
  if (res.hasHeader("set-cookie")) return "set-cookie"; // never in a shared entry (and dropped below)
  const replaced = new Set(fresh.map(([name]) => name));
  const headers = [...old.headers.filter(([name]) => !replaced.has(name)), ...fresh];
  const verdict = storability(old.status, asOutgoing(headers), perUser, config, now, dateIsNow);
  if (typeof verdict === "string") return verdict;
  const etagGenerated = old.etagGenerated === true && !replaced.has("etag");
  return entryOf(old.status, headers, old.body, old.tags, verdict, etagGenerated);
}

/** `[name, value]` pairs as `res.getHeaders()` would give them. */
function asOutgoing(headers: readonly [string, string][]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of headers) {
    const had = out[name];
    out[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [String(had)]), value];
  }
  return out;
}

/** Stores `entry` under `key` (with a Vary marker at `base` when it varies) and lands the fill. */
function store(
  ctx: FillContext,
  req: Request,
  t: Target,
  key: string,
  base: string,
  claim: FillClaim,
  entry: StoredResponse,
  vary: string[],
): void {
  const { cache, config, varyOf, variantKey } = ctx;
  const items = [{ key: base, entry }];
  if (vary.length > 0) {
    varyOf.set(base, vary);
    const marker: StoredResponse = { ...entry, headers: [], body: Buffer.alloc(0), vary };
    items[0] = { key: base, entry: marker };
    items.push({ key: variantKey(t, req, vary), entry });
  } else {
    varyOf.delete(base);
  }
  cache.fill(key, claim, items, retentionMs(entry)).catch((err: unknown) => {
    config.logger.warn(`${SCOPE}: storing a response failed (${toError(err).message})`);
  });
}
