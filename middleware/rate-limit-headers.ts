/**
 * Rate limit response headers: the IETF drafts (`draft-8`, `draft-7`, `draft-6`) and the
 * legacy `X-RateLimit-*` trio. The partition key in draft-8 is a keyed hash (HMAC-SHA-256) of
 * the key, never the raw IP or user id; a plain hash of an IPv4 address could be reversed by
 * trying all 2^32 of them.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { Response } from "express";
import { LRUCache } from "lru-cache";
import type { PolicyResult, RateLimitResult } from "../stores/rate-limit/types.js";

/** Which header set to send; `false` sends none (a 429 still gets `Retry-After`). */
export type HeaderStyle = "draft-8" | "draft-7" | "draft-6" | "legacy" | false;

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/** Default secret of the partition key: random per process (set one to share it across instances). */
export const PROCESS_PARTITION_SECRET = randomBytes(32);

/** The draft-8 `pk` parameter: 12 bytes of HMAC-SHA-256(secret, key) as a byte sequence. */
export function partitionKey(key: string, secret: string | Uint8Array): string {
  return `:${createHmac("sha256", secret).update(key).digest().subarray(0, 12).toString("base64")}:`;
}

/** Keys longer than this are hashed every time instead of being cached. */
const MAX_CACHED_KEY = 256;

/**
 * Writes one middleware's rate limit headers. Caches partition keys per key (an HMAC per
 * request is the costliest part of the headers), bounded to 10,000 short keys.
 */
export class RateLimitHeaders {
  private readonly partitionKeys = new LRUCache<string, string>({ max: 10_000 });
  private lastPolicy: { pk: string; policies: readonly PolicyResult[]; value: string } | undefined;

  constructor(
    private readonly style: HeaderStyle,
    private readonly secret: string | Uint8Array,
  ) {}

  /** Sets the headers for `result`; `key` is hashed for draft-8's `pk`. */
  set(res: Response, result: RateLimitResult, key: string): void {
    switch (this.style) {
      case "draft-8": {
        const pk = this.partitionKey(key);
        let state = "";
        for (const p of result.policies) {
          const remaining = result.blockedMs > 0 ? 0 : p.remaining;
          const reset = seconds(Math.max(p.resetMs, result.blockedMs));
          state += `${state === "" ? "" : ", "}"${p.name}";r=${remaining};t=${reset};pk=${pk}`;
        }
        res.setHeader("RateLimit-Policy", this.policyHeader(result, pk));
        res.setHeader("RateLimit", state);
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

  /** The draft-8 `RateLimit-Policy` value; the last one is kept (a static limiter's repeats). */
  private policyHeader(result: RateLimitResult, pk: string): string {
    const { policies } = result;
    const last = this.lastPolicy;
    if (last !== undefined && last.pk === pk && samePolicies(last.policies, policies)) {
      return last.value;
    }
    let value = "";
    for (const p of policies) {
      value += `${value === "" ? "" : ", "}"${p.name}";q=${p.limit};w=${seconds(p.windowMs)};pk=${pk}`;
    }
    this.lastPolicy = { pk, policies, value };
    return value;
  }

  private partitionKey(key: string): string {
    if (key.length > MAX_CACHED_KEY) return partitionKey(key, this.secret);
    let pk = this.partitionKeys.get(key);
    if (pk === undefined) {
      pk = partitionKey(key, this.secret);
      this.partitionKeys.set(key, pk);
    }
    return pk;
  }
}

/** True when both lists name the same policies with the same limits and windows. */
function samePolicies(a: readonly PolicyResult[], b: readonly PolicyResult[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.name !== y.name || x.limit !== y.limit || x.windowMs !== y.windowMs) return false;
  }
  return true;
}

function policyList(result: RateLimitResult): string {
  return result.policies.map((p) => `${p.limit};w=${seconds(p.windowMs)}`).join(", ");
}

/** `Retry-After` in whole seconds, rounded up; not sent when the request can never pass. */
export function setRetryAfter(res: Response, result: RateLimitResult): void {
  if (result.retryAfterMs > 0) res.setHeader("Retry-After", String(seconds(result.retryAfterMs)));
}
