/**
 * express-redis-kit: Express middleware backed by Redis (standalone or Cluster), each with an
 * in-process memory backend of the same semantics.
 *
 * Middleware (HTTP glue) first, then the primitives under them, then shared pieces.
 */

// Middleware
export {
  type CacheResponseMiddleware,
  type CacheResponseOptions,
  cacheResponse,
  type ResponseCacheStats,
} from "./middleware/cache-response.js";
export { ipKeyGenerator, normalizeIp } from "./middleware/client-key.js";
export { type RedisHealthOptions, redisHealth } from "./middleware/health.js";
export {
  type MetricsMiddleware,
  type MetricsOptions,
  type MetricsRegistry,
  metrics,
} from "./middleware/metrics.js";
export {
  type PerRequest,
  type RateLimitMiddleware,
  type RateLimitOptions,
  rateLimit,
} from "./middleware/rate-limit.js";
export type { HeaderStyle } from "./middleware/rate-limit-headers.js";
export type { RateLimitKey, RateLimitRejection } from "./middleware/rate-limit-options.js";
export {
  ClientClosedError,
  type RequestLock,
  type RequireLockMiddleware,
  type RequireLockOptions,
  requireLock,
} from "./middleware/require-lock.js";
export {
  type SseConnection,
  type SseOptions,
  type SseStats,
  sse,
  sseStats,
} from "./middleware/sse.js";
export { type TrackSessionsOptions, trackSessions } from "./middleware/track-sessions.js";
export { unavailableHandler } from "./middleware/unavailable.js";
// Connection, health, errors, logging
export {
  closeRedisClient,
  createRedisClient,
  DEFAULT_REDIS_TIMEOUT_MS,
  isCluster,
  type NodeAddress,
  type RedisClientOptions,
} from "./stores/core/client.js";
export type { ClientFamily, Topology } from "./stores/core/driver.js";
export {
  ExpressRedisKitError,
  InvalidOptionError,
  LockLostError,
  LockNotAcquiredError,
  RedisTimeoutError,
  ReplicationTimeoutError,
  StoreUnavailableError,
} from "./stores/core/errors.js";
export type { FailureOptions, OnRedisError } from "./stores/core/failure.js";
export type { FeatureState } from "./stores/core/fallback.js";
export {
  checkRedisHealth,
  type HealthCheckOptions,
  type RedisHealth,
} from "./stores/core/health.js";
export { keyPart, MAX_TAG_LENGTH } from "./stores/core/keys.js";
export type { Logger } from "./stores/core/logger.js";
export type { ReplicasOptions } from "./stores/core/replicas.js";
export type { RedisClient } from "./stores/core/scripts.js";
// Primitives
export {
  type AcquireOptions,
  createLockManager,
  type Lock,
  type LockManager,
  type LockManagerOptions,
  type LockManagerStats,
  MAX_RESOURCE_LENGTH,
  type WithLockOptions,
} from "./stores/lock/lock.js";
export {
  createPubSub,
  type Envelope,
  type MessageHandler,
  type PubSub,
  type PubSubOptions,
  type PubSubStats,
} from "./stores/pubsub/pubsub.js";
export {
  type ConsumeOptions,
  createRateLimiter,
  type RateLimiter,
  type RateLimiterStats,
} from "./stores/rate-limit/limiter.js";
export type { PolicyOptions, RateLimiterOptions } from "./stores/rate-limit/options.js";
export type {
  Algorithm,
  Policy,
  PolicyResult,
  RateLimitResult,
} from "./stores/rate-limit/types.js";
export {
  isValidSessionId,
  type ListSessionsOptions,
  MAX_SESSION_ID_LENGTH,
  MAX_USER_ID_LENGTH,
  type RevokeSessionsOptions,
  type SessionInfo,
  type SessionRevokedEvent,
  type SessionStoreStats,
  type SessionTracking,
  sessionHandle,
  TRACKING_FIELD,
  type UserSessionIndex,
} from "./stores/session/common.js";
export { createSessionStore, type SessionStoreOptions } from "./stores/session/create.js";
export { MemorySessionStore } from "./stores/session/memory.js";
export type {
  MemorySessionStoreOptions,
  Serializer,
  SessionIndexOptions,
  UserSessionStoreOptions,
} from "./stores/session/options.js";
export { UserSessionStore } from "./stores/session/redis.js";
