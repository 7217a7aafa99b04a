/**
 * `createSessionStore()`: the Redis store when a client is given, the memory store otherwise.
 */
import { fail, rejectUnknown } from "../core/options.js";
import type { RedisClient } from "../core/scripts.js";
import { MemorySessionStore } from "./memory.js";
import { COMMON, type MemorySessionStoreOptions, type UserSessionStoreOptions } from "./options.js";
import { UserSessionStore } from "./redis.js";

/** Options of `createSessionStore()`. */
export interface SessionStoreOptions
  extends Omit<UserSessionStoreOptions, "client">,
    Pick<MemorySessionStoreOptions, "maxSessions"> {
  /** Redis client (ioredis, iovalkey or node-redis; standalone, Cluster or Sentinel). Omitted: the in-process memory store. */
  redis?: RedisClient;
}

const REDIS_ONLY = ["prefix", "indexPrefix", "scanCount", "disableTTL", "serializer"] as const;

/**
 * A session store for express-session with the per-user index API: `UserSessionStore` on
 * `redis`, or `MemorySessionStore` without it (Redis-only options such as `prefix` are then
 * accepted and unused, so one configuration serves both).
 */
export function createSessionStore(
  options: SessionStoreOptions = {},
): UserSessionStore | MemorySessionStore {
  rejectUnknown("createSessionStore", options, ["redis", "maxSessions", ...REDIS_ONLY, ...COMMON]);
  const { redis, maxSessions, ...rest } = options;
  if (redis !== undefined) {
    if (maxSessions !== undefined) {
      fail(
        "createSessionStore",
        "maxSessions",
        "left out with redis (it bounds the memory store)",
        maxSessions,
      );
    }
    return new UserSessionStore({ ...rest, client: redis });
  }
  const memory: MemorySessionStoreOptions = { maxSessions };
  for (const name of COMMON) {
    if (options[name] !== undefined) Object.assign(memory, { [name]: options[name] });
  }
  return new MemorySessionStore(memory);
}
