/**
 * `createRateLimiter()`: the rate limit primitive. Picks the Redis or memory store, applies
 * the failure mode, and turns a store's per-policy answer into one `RateLimitResult`.
 */

import { inspect } from "node:util";
import { InvalidOptionError } from "../core/errors.js";
import { BackendSwitch } from "../core/fallback.js";
import { positiveInt } from "../core/options.js";
import { track } from "../core/registry.js";
import { MemoryRateLimitStore } from "./memory.js";
import {
  type PolicyOptions,
  parsePolicy,
  parseRateLimiterOptions,
  type RateLimiterConfig,
  type RateLimiterOptions,
} from "./options.js";
import { RedisRateLimitStore } from "./redis.js";
import type {
  Policy,
  PolicyResult,
  RateLimitResult,
  RateLimitStore,
  StoreAnswer,
} from "./types.js";

/** Per-call overrides of `consume()` and `peek()`. */
export interface ConsumeOptions {
  /** Policies for this call instead of the limiter's (e.g. a limit that depends on the plan). */
  policies?: readonly PolicyOptions[];
}

/** Counters since the limiter was created. */
export interface RateLimiterStats {
  allowed: number;
  blocked: number;
  /** Refunds attempted of charges made on Redis (including the dropped ones). */
  refunds: number;
  /** Refunds dropped because Redis was failing (those requests stay counted). */
  droppedRefunds: number;
  /** Calls answered by the failure mode (memory, open or closed) instead of Redis. */
  fallbacks: number;
  /** `"redis"`, `"memory"` (no Redis given) or `"degraded"` (Redis failing). */
  state: "redis" | "memory" | "degraded";
}

/** A rate limiter; see `createRateLimiter()`. */
export interface RateLimiter {
  /** The resolved policies. */
  readonly policies: readonly Policy[];
  /** Charges `cost` units to `key` in every policy, or to none when any rejects. */
  consume(key: string, cost?: number, options?: ConsumeOptions): Promise<RateLimitResult>;
  /** What `consume(key, cost)` would answer, without charging (`remaining` is before the charge). */
  peek(key: string, cost?: number, options?: ConsumeOptions): Promise<RateLimitResult>;
  /**
   * Gives back what the `consume()` that returned `result` charged (never below zero), once.
   * A Redis charge is refunded on Redis only; if Redis fails, the refund is dropped (counted in
   * `stats().droppedRefunds`). Never rejects for a Redis failure.
   */
  refund(result: RateLimitResult): Promise<void>;
  /** Forgets `key`'s counters and block, on Redis and in memory. */
  reset(key: string): Promise<void>;
  /** Rejects every request for `key` for `ms` milliseconds. */
  block(key: string, ms: number): Promise<void>;
  /** Counters for monitoring. */
  stats(): RateLimiterStats;
}

/**
 * What a consume charged, kept on its result (under a private symbol) for `refund()`. It
 * prints as a placeholder, so logging a result never shows the raw key.
 */
class Charge {
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

const CHARGE = Symbol("express-redis-kit.charge");

/**
 * Creates a rate limiter. With `redis` every call is one atomic script round trip using Redis
 * server time; without it, an in-process limiter with the same semantics.
 * @throws InvalidOptionError when an option is invalid
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  return createLimiterFromConfig(parseRateLimiterOptions(options), "createRateLimiter");
}

/** Builds a limiter from an already parsed config (the `rateLimit()` middleware parses its own). */
export function createLimiterFromConfig(config: RateLimiterConfig, scope: string): RateLimiter {
  return new Limiter(config, scope);
}

class Limiter implements RateLimiter {
  readonly policies: readonly Policy[];
  private readonly switch: BackendSwitch<RateLimitStore>;
  private readonly memory: MemoryRateLimitStore;
  private allowed = 0;
  private blocked = 0;
  private refunds = 0;
  private droppedRefunds = 0;

  constructor(
    private readonly config: RateLimiterConfig,
    private readonly scope: string,
  ) {
    this.policies = config.policies;
    this.memory = new MemoryRateLimitStore(config.maxKeys);
    this.switch = new BackendSwitch<RateLimitStore>({
      scope,
      redis: config.redis && new RedisRateLimitStore(config.redis, config.prefix),
      memory: this.memory,
      onRedisError: config.onRedisError,
      timeoutMs: config.timeoutMs,
      recheckMs: config.recheckMs,
      logger: config.logger,
    });
    track("rateLimiter", config.prefix, this, config.redis);
  }

  consume(key: string, cost = 1, options?: ConsumeOptions): Promise<RateLimitResult> {
    let policies: readonly Policy[];
    try {
      policies = this.resolve("consume", key, cost, options);
    } catch (err) {
      return Promise.reject(err);
    }
    const blockMs = this.config.blockDurationMs;
    return this.switch
      .run((store) => store.consume(key, policies, cost, blockMs))
      .then((answer) => {
        if (answer === undefined) return openResult(policies);
        const { value, backend } = answer;
        const charge = new Charge(key, cost, policies, value.markers, backend);
        const result = summarize(value, backend, charge);
        if (result.allowed) this.allowed++;
        else this.blocked++;
        return result;
      });
  }

  async peek(key: string, cost = 1, options?: ConsumeOptions): Promise<RateLimitResult> {
    const policies = this.resolve("peek", key, cost, options);
    const answer = await this.switch.run((store) => store.peek(key, policies, cost));
    return answer === undefined ? openResult(policies) : summarize(answer.value, answer.backend);
  }

  async refund(result: RateLimitResult): Promise<void> {
    const charge = (result as { [CHARGE]?: Charge })[CHARGE];
    if (charge === undefined || charge.refunded) return; // rejected, open, or refunded already
    charge.refunded = true;
    const { key, policies, cost, markers } = charge;
    if (charge.backend === "memory") {
      await this.memory.refund(key, policies, cost, markers);
      return;
    }
    // Charged on Redis: refund there or nowhere (never into memory, which was not charged).
    this.refunds++;
    const done = await this.switch.tryRedis((store) => store.refund(key, policies, cost, markers));
    if (!done) this.droppedRefunds++;
  }

  async reset(key: string): Promise<void> {
    checkKey(this.scope, "reset", key);
    await this.memory.reset(key, this.policies.length);
    await this.switch.run((store) => store.reset(key, this.policies.length));
  }

  async block(key: string, ms: number): Promise<void> {
    checkKey(this.scope, "block", key);
    positiveInt(`${this.scope}.block`, "ms", ms);
    await this.switch.run((store) => store.block(key, ms));
  }

  stats(): RateLimiterStats {
    return {
      allowed: this.allowed,
      blocked: this.blocked,
      refunds: this.refunds,
      droppedRefunds: this.droppedRefunds,
      fallbacks: this.switch.fallbacks,
      state: this.switch.state,
    };
  }

  private resolve(
    method: string,
    key: string,
    cost: number,
    options?: ConsumeOptions,
  ): readonly Policy[] {
    checkKey(this.scope, method, key);
    positiveInt(`${this.scope}.${method}`, "cost", cost);
    const custom = options?.policies;
    if (custom === undefined) return this.policies;
    if (!Array.isArray(custom) || custom.length !== this.policies.length) {
      throw new InvalidOptionError(
        `${this.scope}.${method}: options.policies must list ${this.policies.length} ${this.policies.length === 1 ? "policy" : "policies"} like the limiter's`,
        "policies",
      );
    }
    return custom.map((p, i) => parsePolicy(`${this.scope}.${method}`, `policies[${i}].`, p));
  }
}

function checkKey(scope: string, method: string, key: unknown): void {
  if (typeof key !== "string" || key.length === 0) {
    throw new InvalidOptionError(
      `${scope}.${method}: key must be a non-empty string (got ${typeof key === "string" ? '""' : typeof key})`,
      "key",
    );
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
function summarize(
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
  return {
    allowed,
    limit: binding.limit,
    remaining: blockedMs > 0 ? 0 : binding.remaining,
    resetMs: Math.max(binding.resetMs, blockedMs),
    retryAfterMs,
    policy: binding.name,
    policies,
    blockedMs,
    backend,
    [CHARGE]: allowed ? charge : undefined,
  } as RateLimitResult;
}

/** The result when Redis failed and `onRedisError` is `"open"`: allowed, nothing counted. */
function openResult(policies: readonly Policy[]): RateLimitResult {
  const first = policies[0]!;
  return {
    allowed: true,
    limit: first.limit,
    remaining: first.limit,
    resetMs: 0,
    retryAfterMs: 0,
    policy: first.name,
    policies: policies.map((p) => ({
      ...p,
      allowed: true,
      remaining: p.limit,
      resetMs: 0,
      retryAfterMs: 0,
    })),
    blockedMs: 0,
    backend: "open",
  };
}
