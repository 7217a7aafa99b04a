/**
 * `createRedisClient()`: one place that turns a URL or a list of Cluster nodes into an ioredis
 * client tuned to fail fast. Every feature also accepts a client the application made itself.
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { InvalidOptionError } from "./errors.js";
import { consoleLogger, type Logger } from "./logger.js";
import { show } from "./options.js";
import type { RedisClient } from "./scripts.js";

/** Options of `createRedisClient()`. */
export interface RedisClientOptions {
  /**
   * Standalone server URL (`redis://`, `rediss://`).
   * @default process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
   */
  url?: string;
  /**
   * Connect to a Redis Cluster instead: seed nodes as `"host:port"` strings or objects.
   * @default process.env.REDIS_CLUSTER_NODES (comma-separated), else standalone
   */
  cluster?: { nodes: (string | { host: string; port: number })[]; options?: ClusterOptions };
  /**
   * Connect timeout and per-command timeout, in milliseconds.
   * @default Number(process.env.REDIS_TIMEOUT) * 1000, else 500
   */
  timeoutMs?: number;
  /** Extra ioredis options, applied last (to each Cluster node for a Cluster). */
  redisOptions?: RedisOptions;
  /**
   * Where connection errors are logged: once when the connection fails, again only after it
   * was ready in between (never one line per reconnect attempt).
   * @default console
   */
  logger?: Logger;
}

/** Default connect and command timeout, in milliseconds, when `REDIS_TIMEOUT` is not set. */
export const DEFAULT_REDIS_TIMEOUT_MS = 500;

/**
 * Creates an ioredis client: a `Cluster` when `cluster.nodes` or `REDIS_CLUSTER_NODES` is
 * given, else a `Redis` from `url`, `REDIS_URL` or `redis://127.0.0.1:6379`.
 *
 * Defaults fail fast instead of queueing for ever: a 500 ms connect and command timeout
 * (`REDIS_TIMEOUT` in seconds overrides both), one retry per command while reconnecting, and
 * reconnect back-off capped at 2 s. Commands left unanswered by a disconnect are not resent.
 */
export function createRedisClient(options: RedisClientOptions = {}): RedisClient {
  const timeoutMs = parseTimeout(options.timeoutMs);
  const tuned: RedisOptions = {
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    // A command whose reply was lost in a disconnect may already have run: never send it again
    // (a rate limit consume would count twice).
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times) => Math.min(times * 100, 2000),
    ...options.redisOptions,
  };
  const nodes = options.cluster?.nodes ?? parseClusterNodes(process.env.REDIS_CLUSTER_NODES);
  if (nodes !== undefined) {
    if (nodes.length === 0) {
      throw new InvalidOptionError(
        "createRedisClient: cluster.nodes must not be empty",
        "cluster.nodes",
      );
    }
    const cluster = new Cluster(nodes.map(parseNode), {
      redisOptions: tuned,
      clusterRetryStrategy: (times) => Math.min(times * 100, 2000),
      slotsRefreshTimeout: Math.max(timeoutMs, 1000),
      enableOfflineQueue: true,
      ...options.cluster?.options,
    });
    return logErrors(cluster, options.logger ?? consoleLogger);
  }
  const url = options.url ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  if (typeof url !== "string" || !/^rediss?:\/\//.test(url)) {
    throw new InvalidOptionError(
      `createRedisClient: url must start with redis:// or rediss:// (got ${show(url)})`,
      "url",
    );
  }
  return logErrors(new Redis(url, tuned), options.logger ?? consoleLogger);
}

/**
 * Listens for `error` so a dead Redis never crashes the process or floods the log: one line
 * when the connection fails, the next only after it was ready again. Secrets in the URL are
 * never logged (ioredis error messages carry host and port only).
 */
function logErrors<C extends RedisClient>(client: C, logger: Logger): C {
  let quiet = false;
  client.on("ready", () => {
    quiet = false;
  });
  client.on("error", (err: Error) => {
    if (quiet) return;
    quiet = true;
    logger.warn(`[express-redis-kit] Redis connection error: ${err.message} (retrying)`);
  });
  return client;
}

function parseTimeout(value: number | undefined): number {
  if (value !== undefined) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidOptionError(
        `createRedisClient: timeoutMs must be a positive integer (got ${show(value)})`,
        "timeoutMs",
      );
    }
    return value;
  }
  const env = process.env.REDIS_TIMEOUT;
  if (env === undefined || env === "") return DEFAULT_REDIS_TIMEOUT_MS;
  const seconds = Number(env);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new InvalidOptionError(
      `createRedisClient: REDIS_TIMEOUT must be a positive number of seconds (got ${show(env)})`,
      "REDIS_TIMEOUT",
    );
  }
  return Math.ceil(seconds * 1000);
}

function parseClusterNodes(env: string | undefined): string[] | undefined {
  if (env === undefined || env.trim() === "") return undefined;
  return env
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function parseNode(node: string | { host: string; port: number }): { host: string; port: number } {
  if (typeof node === "object" && node !== null) return node;
  const match = /^(.+):(\d{1,5})$/.exec(String(node));
  if (match === null) {
    throw new InvalidOptionError(
      `createRedisClient: cluster node must be "host:port" (got ${show(node)})`,
      "cluster.nodes",
    );
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]) };
}

/**
 * True when `redis` resends commands left unanswered by a disconnect (ioredis's default
 * `autoResendUnfulfilledCommands`), which can run a script twice.
 */
export function resendsUnanswered(redis: RedisClient): boolean {
  const options = isCluster(redis) ? redis.options.redisOptions : (redis as Redis).options;
  return options?.autoResendUnfulfilledCommands !== false;
}

/** True when `redis` is an ioredis `Cluster`. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as Cluster).isCluster === true;
}
