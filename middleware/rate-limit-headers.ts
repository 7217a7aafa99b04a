/**
 * Rate limit response headers: the IETF drafts (`draft-8`, `draft-7`, `draft-6`) and the
 * legacy `X-RateLimit-*` trio. The partition key in draft-8 is a keyed hash (HMAC-SHA-256) of
 * the key, never the raw IP or user id; a plain hash of an IPv4 address could be reversed by
 * trying all 2^32 of them.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { Response } from "express";
import type { RateLimitResult } from "../stores/rate-limit/types.js";

/** Which header set to send; `false` sends none (a 429 still gets `Retry-After`). */
export type HeaderStyle = "draft-8" | "draft-7" | "draft-6" | "legacy" | false;

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/** Default secret of the partition key: random per process (set one to share it across instances). */
export const PROCESS_PARTITION_SECRET = randomBytes(32);

/** The draft-8 `pk` parameter: 12 bytes of HMAC-SHA-256(secret, key) as a byte sequence. */
export function partitionKey(key: string, secret: string | Uint8Array): string {
  return `:${createHmac("sha256", secret).update(key).digest().subarray(0, 12).toString("base64")}:`;
}

/** Sets `style` headers for `result` on `res`. `key` is hashed with `secret` for draft-8's `pk`. */
export function setRateLimitHeaders(
  res: Response,
  style: HeaderStyle,
  result: RateLimitResult,
  key: string,
  secret: string | Uint8Array,
): void {
  switch (style) {
    case "draft-8": {
      const pk = partitionKey(key, secret);
      res.setHeader(
        "RateLimit-Policy",
        result.policies
          .map((p) => `"${p.name}";q=${p.limit};w=${seconds(p.windowMs)};pk=${pk}`)
          .join(", "),
      );
      res.setHeader(
        "RateLimit",
        result.policies
          .map((p) => {
            const remaining = result.blockedMs > 0 ? 0 : p.remaining;
            return `"${p.name}";r=${remaining};t=${seconds(Math.max(p.resetMs, result.blockedMs))};pk=${pk}`;
          })
          .join(", "),
      );
      return;
    }
    case "draft-7":
      res.setHeader("RateLimit-Policy", policyList(result));
      res.setHeader(
        "RateLimit",
        `limit=${result.limit}, remaining=${result.remaining}, reset=${seconds(result.resetMs)}`,
      );
      return;
    case "draft-6":
      res.setHeader("RateLimit-Policy", policyList(result));
      res.setHeader("RateLimit-Limit", String(result.limit));
      res.setHeader("RateLimit-Remaining", String(result.remaining));
      res.setHeader("RateLimit-Reset", String(seconds(result.resetMs)));
      return;
    case "legacy":
      res.setHeader("X-RateLimit-Limit", String(result.limit));
      res.setHeader("X-RateLimit-Remaining", String(result.remaining));
      res.setHeader("X-RateLimit-Reset", String(Math.ceil((Date.now() + result.resetMs) / 1000)));
      return;
    case false:
      return;
  }
}

function policyList(result: RateLimitResult): string {
  return result.policies.map((p) => `${p.limit};w=${seconds(p.windowMs)}`).join(", ");
}

/** `Retry-After` in whole seconds, rounded up; not sent when the request can never pass. */
export function setRetryAfter(res: Response, result: RateLimitResult): void {
  if (result.retryAfterMs > 0) res.setHeader("Retry-After", String(seconds(result.retryAfterMs)));
}
