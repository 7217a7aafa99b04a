/**
 * The HTTP rules of `cacheResponse()`: whether a response may be stored and for how long
 * (RFC 9111 §3 and §4.2, RFC 9213 targeted fields, RFC 5861 stale directives), and which of
 * its header fields are replayed.
 */
import type { OutgoingHttpHeaders } from "node:http";

/** The parts of the resolved options the policy reads. */
export interface PolicyConfig {
  statuses: ReadonlySet<number>;
  ttlMs: number;
  maxTtlMs: number;
  /** Lowercase name of the targeted cache-control field, or `undefined` to ignore one. */
  targetedField: string | undefined;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
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

/** How long a storable response stays fresh, and may be served stale. */
export interface Freshness {
  freshMs: number;
  initialAgeMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
}

/** Cache-Control directives, names lowercased; a directive seen twice with values is `null`. */
export type Directives = Map<string, string | true | null>;

/** Parses a Cache-Control style field (RFC 9111 §5.2): names are case-insensitive. */
export function parseDirectives(value: string): Directives {
  const directives: Directives = new Map();
  // Split on commas outside quoted strings.
  for (const part of value.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? []) {
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

/** A delta-seconds value (RFC 9111 §1.2.2) in ms; `undefined` when absent, `NaN` when invalid. */
function deltaMs(value: string | true | null | undefined): number | undefined {
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
  const targeted =
    config.targetedField === undefined ? undefined : headerText(headers, config.targetedField);
  const cc = parseDirectives(targeted ?? headerText(headers, "cache-control") ?? "");
  if (cc.has("no-store")) return "no-store";
  if (cc.has("no-cache")) return "no-cache";
  if (cc.has("private") && !perUser) return "private";

  const date = Date.parse(headerText(headers, "date") ?? "");
  const base = Number.isNaN(date) || dateIsNow ? now : date;
  let lifetime: number | undefined;
  const sMaxAge = deltaMs(cc.get("s-maxage"));
  const maxAge = deltaMs(cc.get("max-age"));
  if (sMaxAge !== undefined) lifetime = sMaxAge;
  else if (maxAge !== undefined) lifetime = maxAge;
  else if (headers.expires !== undefined) {
    const expires = Date.parse(headerText(headers, "expires") ?? "");
    lifetime = Number.isNaN(expires) ? 0 : Math.max(0, expires - base); // invalid: already stale
  }
  if (lifetime !== undefined && Number.isNaN(lifetime)) return "stale"; // malformed max-age
  if (lifetime === undefined) {
    if (config.ttlMs === 0) return "no-freshness";
    lifetime = config.ttlMs;
  }
  lifetime = Math.min(lifetime, config.maxTtlMs);

  // Corrected initial age (RFC 9111 §4.2.3): the larger of the apparent age and `Age`.
  // An invalid `Age` is ignored (§5.1); a list uses its first member.
  const ageText = headerText(headers, "age")?.split(",")[0]?.trim();
  const ageValue = ageText !== undefined && /^\d+$/.test(ageText) ? Number(ageText) * 1000 : 0;
  const apparent = Number.isNaN(date) || dateIsNow ? 0 : Math.max(0, now - date);
  const initialAgeMs = Math.max(ageValue, apparent);
  const freshMs = lifetime - initialAgeMs;
  if (freshMs <= 0) return "stale";

  // Stale windows: the response's own RFC 5861 directives win; otherwise the options, unless
  // the response forbids serving it stale (must-revalidate, proxy-revalidate, s-maxage).
  const forbidsStale =
    cc.has("must-revalidate") || cc.has("proxy-revalidate") || sMaxAge !== undefined;
  const window = (name: string, fallback: number) => {
    const own = deltaMs(cc.get(name));
    if (own !== undefined) return Number.isNaN(own) ? 0 : Math.min(own, config.maxTtlMs);
    return forbidsStale ? 0 : fallback;
  };
  return {
    freshMs,
    initialAgeMs,
    staleWhileRevalidateMs: window("stale-while-revalidate", config.staleWhileRevalidateMs),
    staleIfErrorMs: window("stale-if-error", config.staleIfErrorMs),
  };
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
