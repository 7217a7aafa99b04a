/**
 * Which requests may use the cache, and what an entry is filed under: the key parts of a
 * request (origin, path as Express routes it, filtered sorted query, `key()`, `varyBy()`,
 * user), the request's values of the Vary fields, and the tags (its URL among them).
 */
import type { Request, Response } from "express";
import { InvalidOptionError, toError } from "../stores/core/errors.js";
import { show } from "../stores/core/options.js";
import { type CacheConfig, SCOPE } from "./cache-response-options.js";

/** A request that may use the cache: its key parts and whether entries are per user. */
export interface Target {
  parts: unknown[];
  path: string;
  query: string;
  perUser: boolean;
  /** The routing options of the app serving it. */
  routing: Routing;
}

/** Most tags one response may carry, and the longest tag. */
export const MAX_TAGS = 32;
export const MAX_CACHE_TAG_LENGTH = 256;

/**
 * The request's cache target, or why it bypasses the cache (`Cache-Status` detail): `range`,
 * `no-user`, `vary-by`, `authorization`, `signed-in`, `key`.
 * @throws InvalidOptionError when `key()` or `varyBy()` returns something unusable
 */
export function requestTarget(req: Request, res: Response, config: CacheConfig): Target | string {
  if (req.headers.range !== undefined) return "range";
  const r = req as Request & { session?: { userId?: unknown }; user?: unknown; auth?: unknown };
  let user: unknown = null;
  if (config.userAware) {
    user = r.session?.userId ?? (r.user as { id?: unknown } | undefined)?.id ?? null;
    if (typeof user === "bigint") user = String(user);
    if (typeof user !== "string" && typeof user !== "number") return "no-user";
  }
  let varyBy: unknown = null;
  if (config.varyBy !== undefined) {
    varyBy = config.varyBy(req, res) ?? null;
    if (varyBy === null) return "vary-by";
    checkPart("varyBy", varyBy);
  }
  const perUser = config.userAware || config.varyBy !== undefined;
  if (!perUser) {
    if (req.headers.authorization !== undefined) return "authorization";
    // Any sign of a principal (a session user, passport's req.user, express-jwt's req.auth):
    // its responses may be personal, so they are not shared.
    if (r.session?.userId != null || r.user != null || r.auth != null) return "signed-in";
  }
  let extra: unknown = null;
  if (config.key !== undefined) {
    extra = config.key(req, res) ?? null;
    if (extra === null) return "key";
    checkPart("key", extra);
  }
  const routing = routingOf(req);
  const { path, query } = splitUrl(req.originalUrl, routing, config.keepParam);
  // req.protocol and the host honour `trust proxy` (X-Forwarded-Proto / -Host): a handler
  // that builds links from them gets one entry per origin.
  const origin = `${req.protocol}://${requestHost(req)}`;
  return { parts: [origin, path, query, extra, varyBy, user], path, query, perUser, routing };
}

/**
 * The request's host with its port, lowercased: what Express 5's `req.host` gives, read the same
 * way on Express 4, whose `req.host` is a deprecated alias of `hostname` (no port). The Host
 * header, or the first X-Forwarded-Host when `trust proxy` trusts the peer.
 */
export function requestHost(req: Request): string {
  let host = req.headers.host;
  const forwarded = req.headers["x-forwarded-host"];
  if (typeof forwarded === "string" && forwarded !== "") {
    const trust = req.app?.get("trust proxy fn") as TrustProxy | undefined;
    if (trust?.(req.socket?.remoteAddress, 0)) {
      const comma = forwarded.indexOf(",");
      host = comma === -1 ? forwarded : forwarded.slice(0, comma).trimEnd();
    }
  }
  return host === undefined ? "" : host.toLowerCase();
}

/** Express's compiled `trust proxy` setting (`app.get("trust proxy fn")`, in Express 4 and 5). */
type TrustProxy = (address: string | undefined, hop: number) => boolean;

/** The entry's tags: `tags()` and `res.cacheTags()` plus its URL; `undefined` when invalid (logged). */
export function collectTags(
  req: Request,
  res: Response,
  tags: string[],
  t: Target,
  config: CacheConfig,
): string[] | undefined {
  let all: unknown[];
  try {
    all = [...(config.tags?.(req, res) ?? []), ...tags];
  } catch (err) {
    config.logger.error(
      `${SCOPE}: tags(req, res) threw (${toError(err).message}); the response was not stored`,
    );
    return undefined;
  }
  if (
    all.length > MAX_TAGS ||
    !all.every(
      (tag) => typeof tag === "string" && tag.length > 0 && tag.length <= MAX_CACHE_TAG_LENGTH,
    )
  ) {
    config.warnings.once(
      "ERK_CACHE_TAGS",
      `${SCOPE}: a response had invalid tags (at most ${MAX_TAGS} non-empty strings of at most ${MAX_CACHE_TAG_LENGTH} characters); it was not stored`,
    );
    return undefined;
  }
  return [...new Set([urlTag(t.path, t.query), ...(all as string[])])];
}

/** Express's routing options, which decide which paths name one resource. */
export interface Routing {
  caseSensitive: boolean;
  strict: boolean;
}

/** The path as Express routes it: lowercased unless routing is case-sensitive, without a trailing slash unless strict. */
export function normalizePath(path: string, routing: Routing): string {
  let out = routing.caseSensitive ? path : path.toLowerCase();
  if (!routing.strict && out.length > 1 && out.endsWith("/")) out = out.slice(0, -1);
  return out;
}

/** The routing options of the app serving `req` (Express's defaults without an app). */
export function routingOf(req: Request): Routing {
  return {
    caseSensitive: Boolean(req.app?.get("case sensitive routing")),
    strict: Boolean(req.app?.get("strict routing")),
  };
}

/** Splits a request URL into its normalised path and query. */
export function splitUrl(url: string, routing: Routing, keep: (name: string) => boolean) {
  const q = url.indexOf("?");
  const path = normalizePath(q === -1 ? url : url.slice(0, q), routing);
  return { path, query: q === -1 ? "" : normalizeQuery(url.slice(q + 1), keep) };
}

/** The request's values of the Vary fields, normalised (trimmed, inner whitespace collapsed). */
export function varyValues(req: Request, names: readonly string[]): (string | null)[] {
  return names.map((name) => {
    const value = req.headers[name];
    if (value === undefined) return null;
    return (Array.isArray(value) ? value.join(",") : value).replace(/\s*,\s*/g, ",").trim();
  });
}

/** Sorted query with only the kept parameters, re-encoded canonically. */
export function normalizeQuery(query: string, keep: (name: string) => boolean): string {
  if (query === "") return "";
  const params = [...new URLSearchParams(query)].filter(([name]) => keep(name));
  params.sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return new URLSearchParams(params).toString();
}

/** Rejects a key part that is not a string or number. */
function checkPart(option: "key" | "varyBy", value: unknown): void {
  const ok =
    typeof value === "string" ||
    typeof value === "number" ||
    (option === "key" && Array.isArray(value) && value.every((v) => typeof v === "string"));
  if (!ok) {
    throw new InvalidOptionError(
      `${SCOPE}: ${option}(req) must return ${option === "key" ? "a string, an array of strings" : "a string, a number"} or null (got ${show(value)})`,
      option,
    );
  }
}

/**
 * The URL tag `purge(target)` deletes: a path with an optional query, or `{ path, query }`,
 * normalised as request URLs are.
 * @throws InvalidOptionError for anything else
 */
export function purgeUrlTag(
  target: string | { path: string; query?: string | Record<string, string> },
  routing: Routing,
  config: CacheConfig,
): string {
  let path: string;
  let query: string;
  if (typeof target === "string") {
    const q = target.indexOf("?");
    path = q === -1 ? target : target.slice(0, q);
    query = q === -1 ? "" : target.slice(q + 1);
  } else if (typeof target === "object" && target !== null && typeof target.path === "string") {
    path = target.path;
    const raw = target.query ?? "";
    query = typeof raw === "string" ? raw : new URLSearchParams(raw).toString();
  } else {
    throw new InvalidOptionError(
      `${SCOPE}: purge() takes a path or { path, query } (got ${show(target)})`,
      "target",
    );
  }
  if (!path.startsWith("/")) {
    throw new InvalidOptionError(
      `${SCOPE}: purge() path must start with "/" (got ${show(path)})`,
      "target",
    );
  }
  return urlTag(normalizePath(path, routing), normalizeQuery(query, config.keepParam));
}

/**
 * `purgeTags()`'s argument, checked.
 * @throws InvalidOptionError unless an array of non-empty tags of at most `MAX_CACHE_TAG_LENGTH`
 */
export function checkPurgeTags(tags: unknown): readonly string[] {
  const ok =
    Array.isArray(tags) &&
    tags.every(
      (tag) => typeof tag === "string" && tag.length > 0 && tag.length <= MAX_CACHE_TAG_LENGTH,
    );
  if (!ok) {
    throw new InvalidOptionError(
      `${SCOPE}: purgeTags() takes an array of non-empty tag strings (got ${show(tags)})`,
      "tags",
    );
  }
  return tags as string[];
}

/** The URL tag of the request's target URI (what an unsafe method invalidates). */
export function requestUrlTag(req: Request, config: CacheConfig): string {
  const { path, query } = splitUrl(req.originalUrl, routingOf(req), config.keepParam);
  return urlTag(path, query);
}

/**
 * The URL tags of the response's `Location` and `Content-Location` URIs that have the request's
 * origin (RFC 9111 §4.4 lets an unsafe request invalidate them too); others are ignored.
 */
export function locationTags(req: Request, res: Response, config: CacheConfig): string[] {
  const tags: string[] = [];
  let base: URL | undefined;
  for (const name of ["location", "content-location"]) {
    const value = res.getHeader(name);
    if (typeof value !== "string" || value === "") continue;
    try {
      base ??= new URL(req.originalUrl, `${req.protocol}://${requestHost(req)}`);
      const target = new URL(value, base);
      if (target.origin !== base.origin) continue;
      const { path, query } = splitUrl(
        target.pathname + target.search,
        routingOf(req),
        config.keepParam,
      );
      tags.push(urlTag(path, query));
    } catch {
      // not a URI: nothing to invalidate
    }
  }
  return tags;
}

/** The tag every entry of one URL carries, so `purge(url)` finds its variants. */
function urlTag(path: string, query: string): string {
  return `url:${path}${query === "" ? "" : `?${query}`}`;
}
