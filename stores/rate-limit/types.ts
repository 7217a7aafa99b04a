/**
 * The rate limiter's vocabulary: policies, results, and the small store interface that the
 * Redis and memory backends both implement.
 */

/** A rate limiting algorithm. */
export type Algorithm = "fixed-window" | "sliding-window" | "token-bucket" | "gcra";

/** All algorithms, in the order of their numeric code in the Lua script (1-based). */
export const ALGORITHMS: readonly Algorithm[] = [
  "fixed-window",
  "sliding-window",
  "token-bucket",
  "gcra",
];

/**
 * Most windows one key keeps apart per policy position: calls with different `windowMs` (or
 * algorithms) for one key count in separate entries of one state; past this many, the least
 * recently written entry is dropped.
 */
export const MAX_ENTRIES = 8;

/** One limit: `limit` units per `windowMs`, evaluated with `algorithm`. */
export interface Policy {
  /** Name shown in `RateLimit-Policy` headers and `result.policy`. */
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly algorithm: Algorithm;
}

/** The outcome of one policy for one call. */
export interface PolicyResult extends Policy {
  /** Whether this policy alone would let the request through. */
  readonly allowed: boolean;
  /** Units left in this policy after this call (nothing is charged when any policy rejects). */
  readonly remaining: number;
  /** Milliseconds until this policy's quota is fully restored (or the window ends). */
  readonly resetMs: number;
  /** 0 when allowed; milliseconds until a retry can pass; -1 when the cost exceeds the limit. */
  readonly retryAfterMs: number;
}

/** What `consume()` and `peek()` answer. Times are milliseconds from now. */
export interface RateLimitResult {
  /** True when every policy allowed the request and the key is not blocked. */
  readonly allowed: boolean;
  /** The binding policy's limit (the rejecting one, else the one with the fewest units left). */
  readonly limit: number;
  /** The binding policy's remaining units. */
  readonly remaining: number;
  /** The binding policy's `resetMs`. */
  readonly resetMs: number;
  /**
   * 0 when allowed; else milliseconds until a retry can pass (the longest of the rejecting
   * policies and any block); -1 ("never") when `cost` exceeds a policy's limit.
   */
  readonly retryAfterMs: number;
  /** The binding policy's name. */
  readonly policy: string;
  /** Every policy's own result, in declaration order. */
  readonly policies: readonly PolicyResult[];
  /** Milliseconds the key stays blocked (by `block()` or `blockDurationMs`), 0 if not blocked. */
  readonly blockedMs: number;
  /**
   * Which backend answered: `"redis"`, `"memory"` (embedded or fallback), or `"open"` (Redis
   * failed and `onRedisError: "open"` let the request through uncounted).
   */
  readonly backend: "redis" | "memory" | "open";
  /** Units used in the binding policy's window (`limit - remaining`; express-rate-limit's name). */
  readonly used: number;
  /** When the binding policy's window resets (express-rate-limit's name; a new `Date` per read). */
  readonly resetTime: Date;
}

/** A store's raw answer: the policy results plus refund markers (window identities). */
export interface StoreAnswer {
  readonly blockedMs: number;
  readonly policies: readonly PolicyResult[];
  /** Per policy, the window a consume charged (fixed: start, sliding: index), for refunds. */
  readonly markers: readonly number[];
}

/** What a rate limit backend does. Keys are the user's raw key; stores build Redis keys. */
export interface RateLimitStore {
  /** Charges `cost` to every policy, or to none when any rejects. */
  consume(
    key: string,
    policies: readonly Policy[],
    cost: number,
    blockMs: number,
  ): Promise<StoreAnswer>;
  /** Evaluates a request of `cost` without charging anything. */
  peek(key: string, policies: readonly Policy[], cost: number): Promise<StoreAnswer>;
  /**
   * Gives back `cost` charged by the consume that returned `markers`; never below zero.
   * Resolves true when a rejection of `key` was outstanding (Redis: other processes may answer
   * it locally and must hear of the refund).
   */
  refund(
    key: string,
    policies: readonly Policy[],
    cost: number,
    markers: readonly number[],
  ): Promise<boolean>;
  /** Forgets `key`'s block and the state (every window) of policy positions below `positions`. */
  reset(key: string, positions: number): Promise<void>;
  /** Rejects every request for `key` during `ms` milliseconds. */
  block(key: string, ms: number): Promise<void>;
}
