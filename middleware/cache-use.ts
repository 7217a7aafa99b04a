/**
 * What a request may do with the entry it found (RFC 9111 §4.2, §4.2.4, §5.2.1): use it fresh,
 * use it stale while one request revalidates it, use it stale because the request accepts that
 * (`max-stale`), or forward to the origin (revalidating the entry when it has a validator).
 * The request's own directives count only with `requestCacheControl: "honor"`.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Lookup } from "../stores/cache/types.js";
import { deltaMs, parseDirectives } from "./cache-policy.js";
import { residentMs } from "./cache-replay.js";

/** The request cache directives the cache honours, in ms. */
export interface RequestDirectives {
  /** `no-store`: the request bypasses the cache. */
  noStore: boolean;
  /** `no-cache` (or `Pragma: no-cache` without `Cache-Control`): validate before any use. */
  noCache: boolean;
  /** `max-age`: the entry's age must not exceed this. */
  maxAgeMs: number | undefined;
  /** `min-fresh`: the entry must stay fresh at least this much longer. */
  minFreshMs: number | undefined;
  /** `max-stale`: a stale entry is accepted this long past freshness (`Infinity` without a value). */
  maxStaleMs: number | undefined;
}

/** What `entryUse()` answers. */
export type EntryUse = "fresh" | "stale-while-revalidate" | "max-stale" | "forward";

/** The request's cache directives, or `undefined` when it states none. */
export function requestDirectives(headers: IncomingHttpHeaders): RequestDirectives | undefined {
  const cc = headers["cache-control"];
  if (cc === undefined) {
    const pragma = headers.pragma;
    if (pragma === undefined || !/(?:^|,)\s*no-cache\s*(?:,|$)/i.test(pragma)) return undefined;
    return {
      noStore: false,
      noCache: true,
      maxAgeMs: undefined,
      minFreshMs: undefined,
      maxStaleMs: undefined,
    };
  }
  const d = parseDirectives(cc);
  const seconds = (name: string): number | undefined => {
    const ms = deltaMs(d.get(name));
    return ms === undefined || Number.isNaN(ms) ? undefined : ms; // invalid: ignored
  };
  const maxStale = d.get("max-stale");
  return {
    noStore: d.has("no-store"),
    noCache: d.has("no-cache"),
    maxAgeMs: seconds("max-age"),
    minFreshMs: seconds("min-fresh"),
    maxStaleMs: maxStale === true ? Number.POSITIVE_INFINITY : seconds("max-stale"),
  };
}

/** See the module comment; `directives` is `undefined` when the request's do not count. */
export function entryUse(found: Lookup, directives?: RequestDirectives): EntryUse {
  const { entry } = found;
  const resident = residentMs(found);
  const freshLeft = entry.freshMs - resident;
  const fresh = entry.noCache !== true && freshLeft > 0;
  const staleAllowed = entry.noCache !== true && entry.mustRevalidate !== true;
  if (directives !== undefined) {
    if (directives.noCache) return "forward";
    const { maxAgeMs, minFreshMs, maxStaleMs } = directives;
    // max-age=0 is the usual "revalidate" (what browsers send on reload): never a stored answer.
    const age = entry.initialAgeMs + resident;
    if (maxAgeMs !== undefined && (maxAgeMs === 0 || age > maxAgeMs)) return "forward";
    if (fresh && minFreshMs !== undefined && freshLeft < minFreshMs) return "forward";
    if (!fresh && staleAllowed && maxStaleMs !== undefined && -freshLeft <= maxStaleMs) {
      return "max-stale";
    }
  }
  if (fresh) return "fresh";
  if (staleAllowed && freshLeft + entry.staleWhileRevalidateMs > 0) return "stale-while-revalidate";
  return "forward";
}
