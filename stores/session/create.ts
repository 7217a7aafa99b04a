/**
 * `createSessionStore()`: the Redis store when a client is given, the memory store otherwise.
 */
import { parseFailureOptions } from "../core/failure.js";
import { fail, rejectUnknown } from "../core/options.js";
import { MemorySessionStore } from "./memory.js";
import {
  COMMON,
  clientOption,
  FAILURE,
  type MemorySessionStoreOptions,
  type UserSessionStoreOptions,
} from "./options.js";
import { UserSessionStore } from "./redis.js";

/**
 * Options of `createSessionStore()`: those of `UserSessionStore` (the client as `redis` or
 * `client`), or without a client those of `MemorySessionStore`.
 */
export interface SessionStoreOptions
  extends UserSessionStoreOptions,
    Pick<MemorySessionStoreOptions, "maxSessions"> {}

const REDIS_ONLY = [
  "prefix",
  "indexPrefix",
  "scanCount",
  "disableTTL",
  "serializer",
  "replicas",
] as const;

/**
 * A session store for express-session with the per-user index API: `UserSessionStore` on
 * `redis` (or `client`), or `MemorySessionStore` without one (Redis-only options such as
 * `prefix` are then accepted and unused, so one configuration serves both; the failure options
 * are checked all the same).
 */
export function createSessionStore(
  options: SessionStoreOptions = {},
): UserSessionStore | MemorySessionStore {
  const scope = "createSessionStore";
  rejectUnknown(scope, options, [
    "redis",
    "client",
    "maxSessions",
    ...REDIS_ONLY,
    ...FAILURE,
    ...COMMON,
  ]);
  const name = clientOption(scope, options);
  parseFailureOptions(scope, "sessions", options);
  const { redis, client, maxSessions, ...rest } = options;
  const given = redis ?? client;
  if (given !== undefined) {
    if (maxSessions !== undefined) {
      fail(scope, "maxSessions", `left out with ${name} (it bounds the memory store)`, maxSessions);
    }
    return new UserSessionStore({ ...rest, [name]: given });
  }
  const memory: MemorySessionStoreOptions = { maxSessions };
  for (const key of COMMON) {
    if (options[key] !== undefined) Object.assign(memory, { [key]: options[key] });
  }
  return new MemorySessionStore(memory);
}
