/**
 * `express-redis-kit/rate-limit`: the rate limit middleware and the limiter under it, with the
 * errors they throw. The same modules as the root barrel re-exports (one class per error, so
 * `instanceof` holds across subpaths and the root).
 */
export { ipKeyGenerator, normalizeIp } from "../middleware/client-key.js";
export {
  type PerRequest,
  type RateLimitMiddleware,
  type RateLimitOptions,
  rateLimit,
} from "../middleware/rate-limit.js";
export type { HeaderStyle } from "../middleware/rate-limit-headers.js";
export type { RateLimitKey, RateLimitRejection } from "../middleware/rate-limit-options.js";
export {
  ExpressRedisKitError,
  InvalidOptionError,
  RedisTimeoutError,
  StoreUnavailableError,
} from "../stores/core/errors.js";
export type { FailureOptions, OnRedisError } from "../stores/core/failure.js";
export type { Logger } from "../stores/core/logger.js";
export type { RedisClient } from "../stores/core/scripts.js";
export {
  type ConsumeOptions,
  createRateLimiter,
  type RateLimiter,
  type RateLimiterStats,
} from "../stores/rate-limit/limiter.js";
export type { PolicyOptions, RateLimiterOptions } from "../stores/rate-limit/options.js";
export type {
  Algorithm,
  Policy,
  PolicyResult,
  RateLimitResult,
} from "../stores/rate-limit/types.js";
