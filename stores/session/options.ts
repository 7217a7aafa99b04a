/**
 * Options of the session stores, checked once at construction.
 */
import type { SessionData } from "express-session";
import { ACCEPTED_CLIENTS } from "../core/drivers.js";
import { InvalidOptionError } from "../core/errors.js";
import { parseFailureOptions } from "../core/failure.js";
import { consoleLogger, type Logger } from "../core/logger.js";
import {
  bool,
  fail,
  optionalFunction,
  optionalRedis,
  positiveInt,
  rejectUnknown,
  show,
} from "../core/options.js";
import { parseReplicas, type ReplicasOptions } from "../core/replicas.js";
import type { RedisClient } from "../core/scripts.js";
import { defaultUserId } from "./common.js";

/** How sessions are turned into strings and back (connect-redis's `serializer`). */
export interface Serializer {
  parse(text: string): SessionData | Promise<SessionData>;
  stringify(session: SessionData): string;
}

/** Options shared by the Redis store and the memory store. */
export interface SessionIndexOptions {
  /**
   * Session TTL in seconds when the cookie has no expiry, or a function of the session.
   * @default 86400
   */
  ttl?: number | ((session: SessionData) => number);
  /** Never refresh the TTL of unmodified sessions (express-session's `touch`). @default false */
  disableTouch?: boolean;
  /**
   * The owner of a session; `undefined`/`null` for none.
   * @default session.userId ?? session.user?.id
   */
  userId?: (session: Partial<SessionData>) => unknown;
  /**
   * Past this many live sessions per user, the oldest (by expiry) are revoked, so no index
   * (and no "log out everywhere") grows without bound.
   * @default 1000
   */
  maxSessionsPerUser?: number;
  /** @default console */
  logger?: Logger;
}

/**
 * What the Redis session store does when Redis fails: only `"closed"` (calls reject with
 * `StoreUnavailableError`), see `FAILURE_DEFAULTS.sessions` for why not `"memory"` or `"open"`.
 */
export interface SessionFailureOptions {
  /** Longest wait for Redis per call; past it the call rejects. @default 1000 */
  timeoutMs?: number;
  /** Only `"closed"` is offered for sessions. @default "closed" */
  onRedisError?: "closed";
  /** While Redis is failing, one call per `recheckMs` tries it; the others reject at once. @default 1000 */
  recheckMs?: number;
}

/**
 * Options of `new UserSessionStore()`: connect-redis's options plus the index's and the failure
 * model's. Give the client as `redis` or as `client` (connect-redis's name), not both.
 */
export interface UserSessionStoreOptions extends SessionIndexOptions, SessionFailureOptions {
  /** Redis client (ioredis, iovalkey or node-redis; standalone, Cluster or Sentinel). */
  redis?: RedisClient;
  /** connect-redis's name for `redis`. */
  client?: RedisClient;
  /** Session key prefix. @default "sess:" */
  prefix?: string;
  /** Prefix of the per-user index keys (and of the revocation channel). @default "sess-user:" */
  indexPrefix?: string;
  /** Keys per SCAN call in `all()`, `ids()`, `length()`, `clear()`. @default 100 */
  scanCount?: number;
  /** Store sessions without a TTL (not recommended). @default false */
  disableTTL?: boolean;
  /** @default JSON */
  serializer?: Serializer;
  /**
   * Finish a session write (login, save, destroy, revoke) only once `count` replicas have
   * acknowledged it (Redis `WAIT`, sent behind the script: still one round trip), so a
   * failover that promotes one of them keeps it. Not in time: the call rejects with
   * `StoreUnavailableError` (cause `ReplicationTimeoutError`); the write is on the master and
   * may still survive. Reads and touches do not wait. Off by default.
   */
  replicas?: ReplicasOptions;
}

/** Options of `new MemorySessionStore()`. */
export interface MemorySessionStoreOptions extends SessionIndexOptions {
  /** Most sessions kept; past it the least recently used are dropped. @default 100000 */
  maxSessions?: number;
}

/** The resolved common options. */
export interface ResolvedIndexOptions {
  ttl: number | ((session: SessionData) => number);
  disableTouch: boolean;
  userId: (session: Partial<SessionData>) => unknown;
  maxSessionsPerUser: number;
  logger: Logger;
}

/** The options both session stores take. */
export const COMMON = ["ttl", "disableTouch", "userId", "maxSessionsPerUser", "logger"] as const;
/** The failure options (validated by both factories). */
export const FAILURE = ["timeoutMs", "onRedisError", "recheckMs"] as const;
const PREFIX = /^[A-Za-z0-9_.:/@-]{1,64}$/;

function parseCommon(scope: string, o: SessionIndexOptions): ResolvedIndexOptions {
  const ttl = o.ttl;
  if (ttl !== undefined && typeof ttl !== "function") positiveInt(scope, "ttl", ttl);
  const logger = o.logger ?? consoleLogger;
  if (typeof logger !== "object" || typeof logger?.warn !== "function") {
    fail(scope, "logger", "an object with info, warn and error methods", logger);
  }
  return {
    ttl: ttl ?? 86_400,
    disableTouch: bool(scope, "disableTouch", o.disableTouch, false),
    userId: optionalFunction(scope, "userId", o.userId) ?? defaultUserId,
    maxSessionsPerUser: positiveInt(scope, "maxSessionsPerUser", o.maxSessionsPerUser, 1000),
    logger,
  };
}

function prefix(scope: string, name: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !PREFIX.test(value)) {
    fail(scope, name, "1-64 characters of A-Z a-z 0-9 _ . : / @ -", value);
  }
  return value;
}

/** Checks `new UserSessionStore()` options. */
export function parseUserSessionStoreOptions(options: UserSessionStoreOptions) {
  const scope = "UserSessionStore";
  if (typeof options !== "object" || options === null) fail(scope, "options", "an object", options);
  rejectUnknown(scope, options, [
    ...COMMON,
    ...FAILURE,
    "redis",
    "client",
    "prefix",
    "indexPrefix",
    "scanCount",
    "disableTTL",
    "serializer",
    "replicas",
  ]);
  const name = clientOption(scope, options);
  const client = optionalRedis(scope, name, options[name]);
  if (client === undefined) fail(scope, name, ACCEPTED_CLIENTS, client);
  const keyPrefix = client.keyPrefix;
  if (typeof keyPrefix !== "string" || /[{}*?[\]\\\s]/.test(keyPrefix)) {
    throw new InvalidOptionError(
      `${scope}: the client's keyPrefix must be a string without braces, glob characters or whitespace (got ${show(keyPrefix)})`,
      name,
    );
  }
  const serializer = options.serializer;
  if (
    serializer !== undefined &&
    (typeof serializer?.parse !== "function" || typeof serializer?.stringify !== "function")
  ) {
    fail(scope, "serializer", "an object with parse and stringify methods", serializer);
  }
  const sessionPrefix = prefix(scope, "prefix", options.prefix, "sess:");
  const indexPrefix = prefix(scope, "indexPrefix", options.indexPrefix, "sess-user:");
  if (indexPrefix === sessionPrefix || indexPrefix.startsWith(sessionPrefix)) {
    fail(
      scope,
      "indexPrefix",
      `a prefix that does not start with prefix ${show(sessionPrefix)}`,
      indexPrefix,
    );
  }
  const failure = parseFailureOptions(scope, "sessions", options);
  return {
    ...parseCommon(scope, options),
    client,
    keyPrefix,
    prefix: sessionPrefix,
    indexPrefix,
    scanCount: positiveInt(scope, "scanCount", options.scanCount, 100),
    disableTTL: bool(scope, "disableTTL", options.disableTTL, false),
    serializer,
    failure,
    replicas: parseReplicas(scope, options.replicas, client, failure.timeoutMs),
  };
}

/**
 * Which of `redis` and `client` (connect-redis's name) holds the client: `redis` when neither
 * does; InvalidOptionError when both do.
 */
export function clientOption(scope: string, options: { redis?: unknown; client?: unknown }) {
  if (options.redis !== undefined && options.client !== undefined) {
    throw new InvalidOptionError(
      `${scope}: give the Redis client as redis or as client (connect-redis's name), not both`,
      "client",
    );
  }
  return options.client === undefined ? "redis" : "client";
}

/** Checks `new MemorySessionStore()` options. */
export function parseMemorySessionStoreOptions(options: MemorySessionStoreOptions) {
  const scope = "MemorySessionStore";
  rejectUnknown(scope, options, [...COMMON, "maxSessions"]);
  return {
    ...parseCommon(scope, options),
    maxSessions: positiveInt(scope, "maxSessions", options.maxSessions, 100_000),
  };
}
