/**
 * `createRateLimiter()`: the rate limit primitive. Picks the Redis or memory store, applies
 * the failure mode, and turns a store's per-policy answer into one `RateLimitResult`.
 */

import { InvalidOptionError } from "../core/errors.js";
import { BackendSwitch, pingOf } from "../core/fallback.js";
import { positiveInt } from "../core/options.js";
import { track } from "../core/registry.js";
import { LocalRejections } from "./local.js";
import { MemoryRateLimitStore } from "./memory.js";
import {
  MAX_POLICIES,
  type PolicyOptions,
  parsePolicy,
  parseRateLimiterOptions,
  type RateLimiterConfig,
  type RateLimiterOptions,
} from "./options.js";
import { RedisRateLimitStore } from "./redis.js";
import { CHARGE, Charge, openResult, summarize } from "./result.js";
import type { Algorithm, Policy, RateLimitResult, RateLimitStore } from "./types.js";

/**
 * Per-call limits of `consume()` and `peek()`: `{ limit, windowMs }` (one policy) or
 * `{ policies }`. Required when the limiter's limits are per request (`limiter.perRequest`);
 * otherwise they replace the limiter's own for this call (as many policies as it has).
 * Calls with different windows for one key count apart (up to 8 windows per key).
 */
export interface ConsumeOptions {
  /** Units per window of this call's single policy (with `windowMs`). */
  limit?: number;
  /** Window in milliseconds of this call's single policy (with `limit`). */
  windowMs?: number;
  /**
   * Algorithm of this call's single policy.
   * @default the limiter's `algorithm` ("sliding-window")
   */
  algorithm?: Algorithm;
  /** Policies for this call (e.g. limits that depend on the plan). */
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
  /** Rejections answered in this process from an earlier Redis rejection (no round trip). */
  localRejections: number;
}

/** A rate limiter; see `createRateLimiter()`. */
export interface RateLimiter {
  /** The resolved policies; empty when the limits are per request (`perRequest`). */
  readonly policies: readonly Policy[];
  /**
   * True when this limiter has no limits of its own (`rateLimit()` with `limit` or `windowMs`
   * functions): every `consume()` and `peek()` must pass `{ limit, windowMs }` or `{ policies }`,
   * else it rejects with `InvalidOptionError`.
   */
  readonly perRequest: boolean;
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
  /** Stops the local rejection subscription and drops the limiter from health (the client stays yours). */
  close(): Promise<void>;
  /** Counters for monitoring. */
  stats(): RateLimiterStats;
}

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
  readonly perRequest: boolean;
  private readonly switch: BackendSwitch<RateLimitStore>;
  /** Absent when Redis is given and the failure mode never counts in memory. */
  private readonly memory: MemoryRateLimitStore | undefined;
  /** Policy positions `reset()` clears: every one a call may use. */
  private readonly positions: number;
  /** Rejections Redis gave, answered here until their retry time (Redis only; see local.ts). */
  private readonly local: LocalRejections | undefined;
  /** The `"open"` answer with the limiter's own policies (no closure per call). */
  private readonly openOwn = () => openResult(this.policies);
  private allowed = 0;
  private blocked = 0;
  private refunds = 0;
  private droppedRefunds = 0;

  constructor(
    private readonly config: RateLimiterConfig,
    private readonly scope: string,
  ) {
    this.policies = config.policies;
    this.perRequest = config.perRequest;
    this.positions = config.perRequest ? MAX_POLICIES : config.policies.length;
    this.memory =
      config.redis === undefined || config.onRedisError === "memory"
        ? new MemoryRateLimitStore(config.maxKeys)
        : undefined;
    this.switch = new BackendSwitch<RateLimitStore>({
      scope,
      redis: config.redis && new RedisRateLimitStore(config.redis, config.prefix),
      memory: this.memory,
      onRedisError: config.onRedisError,
      timeoutMs: config.timeoutMs,
      recheckMs: config.recheckMs,
      logger: config.logger,
      ping: pingOf(config.redis),
    });
    this.local =
      config.redis !== undefined && config.localRejections > 0
        ? new LocalRejections(config.redis, config.prefix, config.localRejections, config.logger)
        : undefined;
    track("rateLimiter", config.prefix, this, config.redis);
  }

  consume(key: string, cost = 1, options?: ConsumeOptions): Promise<RateLimitResult> {
    let policies: readonly Policy[];
    try {
      policies = this.resolve("consume", key, cost, options);
    } catch (err) {
      return Promise.reject(err);
    }
    // The limiter's own policies only: a local entry says nothing of per-call limits.
    const local = policies === this.policies ? this.local : undefined;
    if (local !== undefined) {
      const known = local.check(key, cost);
      if (known !== undefined) {
        this.blocked++;
        return Promise.resolve(summarize(known, "redis"));
      }
    }
    const blockMs = this.config.blockDurationMs;
    const sentAt = Date.now();
    return this.switch.runThen(
      (store) => store.consume(key, policies, cost, blockMs),
      (value, backend) => {
        const charge = new Charge(key, cost, policies, value.markers, backend);
        const result = summarize(value, backend, charge);
        if (result.allowed) this.allowed++;
        else {
          this.blocked++;
          if (local !== undefined && backend === "redis") {
            local.remember(key, cost, sentAt, result.retryAfterMs, value);
          }
        }
        return result;
      },
      policies === this.policies ? this.openOwn : () => openResult(policies),
    );
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
      await this.memory?.refund(key, policies, cost, markers);
      return;
    }
    // Charged on Redis: refund there or nowhere (never into memory, which was not charged).
    this.refunds++;
    const outcome = { lifted: false };
    const done = await this.switch.tryRedis(async (store) => {
      outcome.lifted = await store.refund(key, policies, cost, markers);
    });
    if (!done) this.droppedRefunds++;
    // A rejection was outstanding: every process's local answer for the key goes.
    if (this.local !== undefined) await this.local.lift(key, outcome.lifted);
  }

  async reset(key: string): Promise<void> {
    checkKey(this.scope, "reset", key);
    await this.memory?.reset(key, this.positions);
    await this.switch.run((store) => store.reset(key, this.positions));
    await this.local?.lift(key, true);
  }

  /** Closes the local rejection subscription and forgets the limiter for health. */
  async close(): Promise<void> {
    this.switch.close();
    await this.local?.close();
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
      localRejections: this.local?.answered ?? 0,
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
    if (options === undefined) {
      if (this.perRequest) throw this.missingLimits(method);
      return this.policies;
    }
    const scope = `${this.scope}.${method}`;
    const { policies, limit, windowMs, algorithm } = options;
    if (policies !== undefined) {
      if (limit !== undefined || windowMs !== undefined || algorithm !== undefined) {
        throw new InvalidOptionError(
          `${scope}: give options.policies or options.limit/windowMs, not both`,
          "policies",
        );
      }
      const count = this.policies.length;
      const n = Array.isArray(policies) ? policies.length : -1;
      if (this.perRequest ? n < 1 || n > MAX_POLICIES : n !== count) {
        throw new InvalidOptionError(
          this.perRequest
            ? `${scope}: options.policies must list 1 to ${MAX_POLICIES} policies`
            : `${scope}: options.policies must list ${count} ${count === 1 ? "policy" : "policies"} like the limiter's`,
          "policies",
        );
      }
      return policies.map((p, i) => parsePolicy(scope, `policies[${i}].`, p));
    }
    if (limit === undefined && windowMs === undefined) {
      if (this.perRequest) throw this.missingLimits(method);
      return this.policies;
    }
    if (!this.perRequest && this.policies.length !== 1) {
      throw new InvalidOptionError(
        `${scope}: options.limit/windowMs replace a single policy; this limiter has ${this.policies.length}, pass options.policies`,
        "policies",
      );
    }
    return [
      parsePolicy(scope, "", {
        limit: limit ?? this.policies[0]?.limit,
        windowMs: windowMs ?? this.policies[0]?.windowMs,
        algorithm: algorithm ?? this.policies[0]?.algorithm ?? this.config.algorithm,
      } as PolicyOptions),
    ];
  }

  private missingLimits(method: string): InvalidOptionError {
    return new InvalidOptionError(
      `${this.scope}.${method}: this limiter's limit and windowMs are per request (functions of the request), so it has no policies of its own; pass them with each call: ${method}(key, cost, { limit, windowMs }) or ${method}(key, cost, { policies })`,
      "policies",
    );
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
