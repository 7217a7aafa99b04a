/**
 * `express-redis-kit/pubsub`: publish/subscribe and Server-Sent Events over it, with the errors
 * they throw. The same modules as the root barrel re-exports (one class per error, so
 * `instanceof` holds across subpaths and the root).
 */
export {
  type SseConnection,
  type SseOptions,
  type SseStats,
  sse,
  sseStats,
} from "../middleware/sse.js";
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
  createPubSub,
  type Envelope,
  type MessageHandler,
  type PubSub,
  type PubSubOptions,
  type PubSubStats,
} from "../stores/pubsub/pubsub.js";
