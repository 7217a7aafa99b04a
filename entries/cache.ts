/**
 * `express-redis-kit/cache`: the response cache middleware, with the errors it throws. The
 * same modules as the root barrel re-exports (one class per error, so `instanceof` holds across
 * subpaths and the root).
 */
export {
  type CacheResponseMiddleware,
  type CacheResponseOptions,
  cacheResponse,
  type ResponseCacheStats,
} from "../middleware/cache-response.js";
export {
  ExpressRedisKitError,
  InvalidOptionError,
  RedisTimeoutError,
  StoreUnavailableError,
} from "../stores/core/errors.js";
export type { FailureOptions, OnRedisError } from "../stores/core/failure.js";
export type { Logger } from "../stores/core/logger.js";
export type { RedisClient } from "../stores/core/scripts.js";
