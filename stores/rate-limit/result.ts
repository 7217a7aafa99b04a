/**
 * Rate limit results: one `RateLimitResult` from a store's per-policy answer, the result of
 * `onRedisError: "open"`, and the refund data a result carries (under a private symbol).
 */

import { inspect } from "node:util";
import type { Policy, PolicyResult, RateLimitResult, StoreAnswer } from "./types.js";

/**
 * What a consume charged, kept on its result (under a private symbol) for `refund()`. It
 * prints as a placeholder, so logging a result never shows the raw key.
 */
export class Charge {
  /** Set by the first refund, so copies of the result cannot refund twice. */
  refunded = false;

  constructor(
    readonly key: string,
    readonly cost: number,
    readonly policies: readonly Policy[],
    readonly markers: readonly number[],
    readonly backend: "redis" | "memory",
  ) {}

  [inspect.custom](): string {
    return "[refund data]";
  }
}

export const CHARGE = Symbol("express-redis-kit.charge");

/**
 * A result. A class so express-rate-limit's `req.rateLimit.used` and `.resetTime` are
 * prototype getters: free unless read.
 */
class Result implements RateLimitResult {
  [CHARGE]: Charge | undefined;

  constructor(
    readonly allowed: boolean,
    readonly limit: number,
    readonly remaining: number,
    readonly resetMs: number,
    readonly retryAfterMs: number,
    readonly policy: string,
    readonly policies: readonly PolicyResult[],
    readonly blockedMs: number,
    readonly backend: "redis" | "memory" | "open",
    charge: Charge | undefined,
  ) {
    this[CHARGE] = charge;
  }

  /** express-rate-limit's name: units used in the binding policy's window. */
  get used(): number {
    return this.limit - this.remaining;
  }

  /** express-rate-limit's name: when the binding policy's window resets. */
  get resetTime(): Date {
    return new Date(Date.now() + this.resetMs);
  }
}

/** How long a rejecting policy makes the caller wait; "never" (-1) waits longest. */
function waitOf(p: PolicyResult): number {
  return p.retryAfterMs === -1 ? Number.POSITIVE_INFINITY : p.retryAfterMs;
}

/**
 * One result from per-policy answers: the binding policy (the rejecting one that makes the
 * caller wait longest, else the one with the fewest units left) speaks for the whole.
 */
export function summarize(
  answer: StoreAnswer,
  backend: "redis" | "memory",
  charge?: Charge,
): RateLimitResult {
  const { policies, blockedMs } = answer;
  let binding = policies[0]!;
  let rejected = !binding.allowed;
  for (let i = 1; i < policies.length; i++) {
    const p = policies[i]!;
    if (!p.allowed) {
      if (!rejected || waitOf(p) > waitOf(binding)) binding = p;
      rejected = true;
    } else if (!rejected && p.remaining < binding.remaining) {
      binding = p;
    }
  }
  const allowed = !rejected && blockedMs === 0;
  let retryAfterMs = 0;
  if (!allowed) {
    const wait = rejected ? waitOf(binding) : 0;
    retryAfterMs = wait === Number.POSITIVE_INFINITY ? -1 : Math.max(blockedMs, wait);
  }
  return new Result(
    allowed,
    binding.limit,
    blockedMs > 0 ? 0 : binding.remaining,
    Math.max(binding.resetMs, blockedMs),
    retryAfterMs,
    binding.name,
    policies,
    blockedMs,
    backend,
    allowed ? charge : undefined,
  );
}

/** The result when Redis failed and `onRedisError` is `"open"`: allowed, nothing counted. */
export function openResult(policies: readonly Policy[]): RateLimitResult {
  const first = policies[0]!;
  return new Result(
    true,
    first.limit,
    first.limit,
    0,
    0,
    first.name,
    policies.map((p) => ({ ...p, allowed: true, remaining: p.limit, resetMs: 0, retryAfterMs: 0 })),
    0,
    "open",
    undefined,
  );
}
