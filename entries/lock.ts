/**
 * `express-redis-kit/lock`: the lock middleware and the lock manager under it, with the errors
 * they throw. The same modules as the root barrel re-exports (one class per error, so
 * `instanceof` holds across subpaths and the root).
 */
export {
  ClientClosedError,
  type RequestLock,
  type RequireLockMiddleware,
  type RequireLockOptions,
  requireLock,
} from "../middleware/require-lock.js";
export {
  ExpressRedisKitError,
  InvalidOptionError,
  LockLostError,
  LockNotAcquiredError,
  RedisTimeoutError,
  ReplicationTimeoutError,
  StoreUnavailableError,
} from "../stores/core/errors.js";
export type { FailureOptions, OnRedisError } from "../stores/core/failure.js";
export type { Logger } from "../stores/core/logger.js";
export type { ReplicasOptions } from "../stores/core/replicas.js";
export type { RedisClient } from "../stores/core/scripts.js";
export {
  type AcquireOptions,
  createLockManager,
  type Lock,
  type LockManager,
  type LockManagerOptions,
  type LockManagerStats,
  MAX_RESOURCE_LENGTH,
  type WithLockOptions,
} from "../stores/lock/lock.js";
