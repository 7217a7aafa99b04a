/**
 * A cache's answer to a conditional GET or HEAD (RFC 9110 §13.1.2, §13.1.3, §13.2.2;
 * RFC 9111 §4.3.2): whether the stored response the request would get is "not modified".
 *
 * `If-None-Match` wins when present: weak comparison of entity tags, `*` matching any stored
 * response. Otherwise a valid `If-Modified-Since` (strict HTTP-date, one member) is compared
 * with the stored `Last-Modified`, or, without one, the stored `Date`. Request cache directives
 * play no part here: whether the stored response may be used at all was decided before.
 */
import type { IncomingHttpHeaders } from "node:http";
import { parseHttpDate } from "./http-date.js";

/** The validators of a stored response. */
export interface Validators {
  etag: string | undefined;
  lastModified: string | undefined;
  date: string | undefined;
}

/**
 * True when a request with `headers` is answered 304 from a stored response with `stored`
 * validators. `now` reads two-digit years.
 */
export function notModified(
  headers: IncomingHttpHeaders,
  stored: Validators,
  now = Date.now(),
): boolean {
  const inm = headers["if-none-match"];
  if (inm !== undefined) return matchesAny(inm, stored.etag);
  const ims = headers["if-modified-since"];
  if (ims === undefined) return false;
  const since = parseHttpDate(ims, now); // a list of dates is not an HTTP-date (§13.1.3)
  if (since === undefined) return false;
  const modified = parseHttpDate(stored.lastModified ?? stored.date, now);
  return modified !== undefined && modified <= since;
}

/**
 * Whether an `If-None-Match` value matches `etag` (weak comparison). A malformed list matches
 * nothing, so the full response is sent.
 */
export function matchesAny(value: string, etag: string | undefined): boolean {
  const list = value.trim();
  if (list === "*") return true;
  const own = etag === undefined ? undefined : opaqueTag(etag);
  if (own === undefined) return false;
  const tags = entityTags(list);
  return tags?.includes(own) === true;
}

/** The opaque part of an entity-tag (`W/"x"` → `"x"`), or `undefined` when malformed. */
export function opaqueTag(etag: string): string | undefined {
  const tags = entityTags(etag.trim());
  return tags?.length === 1 ? tags[0] : undefined;
}

/** `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE`, separated by commas and optional whitespace. */
const ENTITY_TAG = /[ \t]*(?:W\/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(,|$)/y;

/** The opaque tags of a comma-separated list of entity-tags, or `undefined` when malformed. */
function entityTags(list: string): string[] | undefined {
  const out: string[] = [];
  ENTITY_TAG.lastIndex = 0;
  while (ENTITY_TAG.lastIndex < list.length) {
    const m = ENTITY_TAG.exec(list);
    if (m === null) return undefined;
    out.push(m[1]!);
    if (m[2] === "") break;
    // Empty list members (`"a", , "b"`) are allowed by the list syntax (RFC 9110 §5.6.1).
    while (list[ENTITY_TAG.lastIndex] === "," || list[ENTITY_TAG.lastIndex] === " ")
      ENTITY_TAG.lastIndex++;
  }
  return out.length === 0 ? undefined : out;
}
