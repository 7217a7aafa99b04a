/**
 * Answering from a cache entry: status, stored headers (with the origin's `Date`), `Age`
 * (RFC 9111 §4.2.3), `Cache-Status` (RFC 9211), `X-Cache`, and 304 for conditional requests
 * (RFC 9110 §13.1, evaluated by conditional.ts).
 */
import type { ServerResponse } from "node:http";
import type { Request, Response } from "express";
import type { Lookup } from "../stores/cache/types.js";
import type { Originals } from "./cache-capture.js";
import { notModified as matches } from "./conditional.js";

/** The cache's name in `Cache-Status`. */
export const CACHE_NAME = "express-redis-kit";

/** What `X-Cache` says. */
export type XCache = "HIT" | "MISS" | "STALE" | "BYPASS" | "REVALIDATED";

/** Sets `X-Cache` and `Cache-Status` (`params`: the RFC 9211 parameters after the name). */
export function markResponse(res: ServerResponse, xCache: XCache, params: string): void {
  res.setHeader("X-Cache", xCache);
  res.setHeader("Cache-Status", params === "" ? CACHE_NAME : `${CACHE_NAME}; ${params}`);
}

/** Milliseconds `found` has been resident past its storing, on the store's clock. */
export function residentMs(found: Lookup): number {
  return Math.max(0, found.now - found.storedAt);
}

/** The value of a stored header field (first occurrence, name lowercase). */
export function stored(found: Lookup, name: string): string | undefined {
  for (const [field, value] of found.entry.headers) if (field === name) return value;
  return undefined;
}

/** True when a field before `i` has `name` (a handful of fields: no set allocated per hit). */
function repeated(headers: readonly (readonly [string, string])[], i: number, name: string) {
  for (let j = 0; j < i; j++) if (headers[j]![0] === name) return true;
  return false;
}

/** Fields a 304 carries (RFC 9110 §15.4.5), besides ours. */
const NOT_MODIFIED_FIELDS = new Set([
  "cache-control",
  "content-location",
  "date",
  "etag",
  "expires",
  "vary",
  "last-modified",
]);

/**
 * Answers `req` from `found`. `originals` (when given) writes past a capture that is being
 * replaced. `params` are the `Cache-Status` parameters.
 */
export function replay(
  req: Request,
  res: Response,
  found: Lookup,
  xCache: XCache,
  params: string,
  originals?: Originals,
): void {
  const { entry } = found;
  // Headers already on `res` were set for this request by earlier middleware: kept (a stale
  // replacement of an error response has removed the error path's own before calling this).
  const notModified =
    entry.status >= 200 &&
    entry.status < 300 &&
    (req.headers["if-none-match"] !== undefined ||
      req.headers["if-modified-since"] !== undefined) &&
    matches(req.headers, {
      etag: stored(found, "etag"),
      lastModified: stored(found, "last-modified"),
      date: stored(found, "date"),
    });
  const { headers } = entry;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    if (notModified && !NOT_MODIFIED_FIELDS.has(name)) continue;
    if (repeated(headers, i, name)) res.appendHeader(name, value);
    else res.setHeader(name, value);
  }
  res.setHeader("Age", String(Math.floor((entry.initialAgeMs + residentMs(found)) / 1000)));
  markResponse(res, xCache, params);
  const status = notModified ? 304 : entry.status;
  const withBody = !notModified && req.method !== "HEAD" && status !== 204;
  if (!notModified && status !== 204) res.setHeader("Content-Length", entry.body.length);
  const writeHead = (originals?.writeHead ?? res.writeHead) as (s: number) => unknown;
  const end = (originals?.end ?? res.end) as (chunk?: Buffer) => unknown;
  writeHead.call(res, status);
  if (withBody) end.call(res, entry.body);
  else end.call(res);
}

/** Remaining freshness in whole seconds (negative once stale), for `Cache-Status: ttl`. */
export function ttlSeconds(found: Lookup): number {
  return Math.floor((found.entry.freshMs - residentMs(found)) / 1000);
}

/** Header values set on `res` so far, by name (what earlier middleware set). */
export function snapshot(res: ServerResponse): Map<string, unknown> {
  return new Map(Object.entries(res.getHeaders()));
}

/**
 * Answers an error (5xx or `next(err)`) with a stale entry (RFC 5861 stale-if-error): drops
 * what the error path set, keeps what earlier middleware set (`before`: CORS, rate limits).
 */
export function replayStaleForError(
  req: Request,
  res: Response,
  found: Lookup,
  originals: Originals,
  before: Map<string, unknown>,
): void {
  const status = res.statusCode;
  for (const name of res.getHeaderNames()) {
    if (!before.has(name) || before.get(name) !== res.getHeader(name)) res.removeHeader(name);
  }
  for (const [name, value] of before)
    if (!res.hasHeader(name)) res.setHeader(name, value as string);
  replay(
    req,
    res,
    found,
    "STALE",
    `hit; ttl=${ttlSeconds(found)}; fwd-status=${status}; detail=stale-if-error`,
    originals,
  );
}
