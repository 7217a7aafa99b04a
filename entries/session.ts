/**
 * `express-redis-kit/session`: the express-session stores with their per-user index and the
 * middleware that records activity, with the errors they throw. The same modules as the root
 * barrel re-exports (one class per error, so `instanceof` holds across subpaths and the root).
 */
export { type TrackSessionsOptions, trackSessions } from "../middleware/track-sessions.js";
export { unavailableHandler } from "../middleware/unavailable.js";
export {
  ExpressRedisKitError,
  InvalidOptionError,
  RedisTimeoutError,
  ReplicationTimeoutError,
  StoreUnavailableError,
} from "../stores/core/errors.js";
export type { FailureOptions, OnRedisError } from "../stores/core/failure.js";
export type { Logger } from "../stores/core/logger.js";
export type { ReplicasOptions } from "../stores/core/replicas.js";
export type { RedisClient } from "../stores/core/scripts.js";
export type { MessageHandler } from "../stores/pubsub/pubsub.js";
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
} from "../stores/session/common.js";
export { createSessionStore, type SessionStoreOptions } from "../stores/session/create.js";
export { MemorySessionStore } from "../stores/session/memory.js";
export type {
  MemorySessionStoreOptions,
  Serializer,
  SessionIndexOptions,
  UserSessionStoreOptions,
} from "../stores/session/options.js";
export { UserSessionStore } from "../stores/session/redis.js";
