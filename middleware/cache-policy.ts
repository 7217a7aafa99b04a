/**
 * The HTTP rules of `cacheResponse()`: whether a response may be stored and for how long
 * (RFC 9111 §3 and §4.2, RFC 9213 targeted fields, RFC 5861 stale directives), and which of
 * its header fields are replayed.
 */
import type { OutgoingHttpHeaders } from "node:http";
import { parseHttpDate } from "./http-date.js";
import { targetedDirectives } from "./targeted-field.js";

/** The parts of the resolved options the policy reads. */
export interface PolicyConfig {
  statuses: ReadonlySet<number>;
  ttlMs: number;
  maxTtlMs: number;
  /** Lowercase name of the targeted cache-control field, or `undefined` to ignore one. */
  targetedField: string | undefined;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  /** How long an entry with a validator is kept past its stale windows, to be revalidated. */
  keepMs: number;
}

/** Why a response was not stored (also shown in `Cache-Status` as `detail`). */
export type NotStored =
  | "status"
  | "set-cookie"
  | "vary-star"
  | "no-store"
  | "no-cache"
  | "private"
  | "stale"
  | "no-freshness";

/** How long a storable response stays fresh, may be served stale, and is kept to be revalidated. */
export interface Freshness {
  freshMs: number;
  initialAgeMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  /** Kept this long past its stale windows to be revalidated (0 without a validator). */
  keepMs: number;
  /** `no-cache`: validated with the origin before every use (RFC 9111 §5.2.2.4). */
  noCache: boolean;
  /** `must-revalidate` or `proxy-revalidate` (or `no-cache`): never served stale. */
  mustRevalidate: boolean;
  /** The origin gave a validator (`ETag`, `Last-Modified`): a stale entry can be revalidated. */
  validators: boolean;
}

/** Cache-Control directives, names lowercased; a directive seen twice with values is `null`. */
export type Directives = Map<string, string | true | null>;

/** Parses a Cache-Control style field (RFC 9111 §5.2): names are case-insensitive. */
export function parseDirectives(value: string): Directives {
  const directives: Directives = new Map();
  for (const part of listMembers(value)) {
    const eq = part.indexOf("=");
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === "") continue;
    let arg: string | true = true;
    if (eq !== -1) {
      arg = part.slice(eq + 1).trim();
      if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) arg = arg.slice(1, -1);
    }
    // Conflicting duplicates make the value unusable (RFC 9111 §4.2.1: treat as stale).
    directives.set(name, directives.has(name) && directives.get(name) !== arg ? null : arg);
  }
  return directives;
}

/** The members of a comma-separated field value: split on commas outside quoted strings. */
export function listMembers(value: string): string[] {
  return value.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
}

/** A delta-seconds value (RFC 9111 §1.2.2) in ms; `undefined` when absent, `NaN` when invalid. */
export function deltaMs(value: string | true | null | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^\d+$/.test(value)) return Number.NaN;
  return Math.min(Number(value), 2 ** 31) * 1000;
}

/** One header as a string (lists joined with ", "), or `undefined`. */
export function headerText(headers: OutgoingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/** Lowercase field names listed in a Vary value. */
export function varyNames(value: string | undefined): string[] {
  if (value === undefined) return [];
  const names = value
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  return [...new Set(names)].sort();
}

/**
 * Decides whether a response with `status` and `headers` (as `res.getHeaders()` returns them)
 * may be stored, and its freshness. `perUser` allows `private` responses (the entry is keyed
 * by user). `now` is the clock the `Date` field is compared with; `dateIsNow` says the cache
 * itself just set `Date` (its one-second precision must not count as age).
 */
export function storability(
  status: number,
  headers: OutgoingHttpHeaders,
  perUser: boolean,
  config: PolicyConfig,
  now: number,
  dateIsNow = false,
): Freshness | NotStored {
  if (!config.statuses.has(status)) return "status";
  if (headers["set-cookie"] !== undefined) return "set-cookie";
  if (varyNames(headerText(headers, "vary")).includes("*")) return "vary-star";
  const cc = directivesOf(headers, config.targetedField);
  if (cc.has("no-store")) return "no-store";
  if (cc.has("private") && !perUser) return "private";
  // With a validator, a response that must be validated before use (no-cache, or stale on
  // arrival) is still worth keeping: the next request asks the origin "modified?".
  const validators = hasValidator(headers, now);
  const keepMs = validators ? config.keepMs : 0;
  const noCache = cc.has("no-cache");
  if (noCache && keepMs === 0) return "no-cache";

  const date = parseHttpDate(headerText(headers, "date"), now);
  const base = date === undefined || dateIsNow ? now : date;
  let lifetime: number | undefined;
  const sMaxAge = deltaMs(cc.get("s-maxage"));
  const maxAge = deltaMs(cc.get("max-age"));
  if (sMaxAge !== undefined) lifetime = sMaxAge;
  else if (maxAge !== undefined) lifetime = maxAge;
  else if (headers.expires !== undefined) {
    // An invalid Expires (anything but an HTTP-date, "0" included) means already expired.
    const expires = parseHttpDate(headerText(headers, "expires"), now);
    lifetime = expires === undefined ? 0 : Math.max(0, expires - base);
  }
  if (lifetime !== undefined && Number.isNaN(lifetime)) lifetime = 0; // malformed: stale
  if (lifetime === undefined) {
    if (config.ttlMs === 0) return "no-freshness";
    lifetime = config.ttlMs;
  }
  lifetime = Math.min(lifetime, config.maxTtlMs);

  // Corrected initial age (RFC 9111 §4.2.3): the larger of the apparent age and `Age`.
  // An invalid `Age` is ignored (§5.1); a list uses its first member.
  const ageText = headerText(headers, "age")?.split(",")[0]?.trim();
  const ageValue = ageText !== undefined && /^\d+$/.test(ageText) ? Number(ageText) * 1000 : 0;
  const apparent = date === undefined || dateIsNow ? 0 : Math.max(0, now - date);
  const initialAgeMs = Math.max(ageValue, apparent);
  const freshMs = Math.max(0, lifetime - initialAgeMs);
  if (freshMs === 0 && keepMs === 0) return "stale";

  // Stale windows. must-revalidate and proxy-revalidate (and no-cache) forbid serving it stale
  // at all, even where the response's own stale-* directives say otherwise (RFC 9111 §4.2.4).
  // Otherwise its own RFC 5861 directives win, and the options apply unless s-maxage says the
  // response is for shared caches with its own rules.
  const neverStale = noCache || cc.has("must-revalidate") || cc.has("proxy-revalidate");
  const window = (name: string, fallback: number) => {
    if (neverStale) return 0;
    const own = deltaMs(cc.get(name));
    if (own !== undefined) return Number.isNaN(own) ? 0 : Math.min(own, config.maxTtlMs);
    return sMaxAge !== undefined ? 0 : fallback;
  };
  return {
    freshMs,
    initialAgeMs,
    staleWhileRevalidateMs: window("stale-while-revalidate", config.staleWhileRevalidateMs),
    staleIfErrorMs: window("stale-if-error", config.staleIfErrorMs),
    keepMs,
    noCache,
    mustRevalidate: neverStale,
    validators,
  };
}

/**
 * The cache directives that apply to a response: its targeted field (RFC 9213), when present
 * and a valid Structured Field Dictionary, else `Cache-Control`.
 */
export function directivesOf(
  headers: OutgoingHttpHeaders,
  targetedField: string | undefined,
): Directives {
  if (targetedField !== undefined) {
    const targeted = targetedDirectives(headerText(headers, targetedField));
    if (targeted !== undefined) return targeted;
  }
  return parseDirectives(headerText(headers, "cache-control") ?? "");
}

/** Whether the origin gave a validator: an `ETag`, or a valid `Last-Modified`. */
function hasValidator(headers: OutgoingHttpHeaders, now: number): boolean {
  if (headers.etag !== undefined) return true;
  return parseHttpDate(headerText(headers, "last-modified"), now) !== undefined;
}

/** Fields never stored or replayed: hop-by-hop (RFC 9110 §7.6.1), cookies, and our own. */
const NOT_REPLAYED = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "set-cookie",
  "age",
  "content-length",
  "x-cache",
  "cache-status",
]);

/** The header fields of a response to store, as `[name, value]` pairs in order. */
export function storedHeaders(headers: OutgoingHttpHeaders): [string, string][] {
  const dropped = new Set(NOT_REPLAYED);
  for (const name of varyNames(headerText(headers, "connection"))) dropped.add(name);
  const out: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || dropped.has(name)) continue;
    if (Array.isArray(value)) for (const item of value) out.push([name, item]);
    else out.push([name, String(value)]);
  }
  return out;
}
