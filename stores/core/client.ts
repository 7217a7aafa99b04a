/**
 * `createRedisClient()`: one place that turns a URL, a list of Cluster nodes or a Sentinel
 * group into a client tuned to fail fast, built with ioredis (the default) or node-redis.
 * Every feature also accepts a client the application made itself.
 *
 * The client libraries are optional peer dependencies: the one asked for is loaded when a
 * client is created, and a missing one is reported with the command that installs it.
 */
import { createRequire } from "node:module";
import { nodesOf, parseList } from "./client-nodes.js";
import { driverOf } from "./drivers.js";
import { InvalidOptionError } from "./errors.js";
import { consoleLogger, type Logger } from "./logger.js";
import { oneOf, rejectUnknown, show } from "./options.js";
import type { RedisClient } from "./scripts.js";
import { followSwitches, type IoSentinelClient } from "./sentinel-switch.js";

/** A server address: `"host:port"` or `{ host, port }`. */
export type NodeAddress = string | { host: string; port: number };

/** Options of `createRedisClient()`. */
export interface RedisClientOptions {
  /**
   * The client library: `ioredis` (also used for Valkey) or `node-redis` (the `redis` package,
   * which must be installed).
   * @default process.env.REDIS_CLIENT ?? "ioredis"
   */
  client?: "ioredis" | "node-redis";
  /**
   * Standalone server URL (`redis://`, `rediss://`).
   * @default process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
   */
  url?: string;
  /**
   * Connect to a Redis Cluster instead: seed nodes as `"host:port"` strings or objects, and
   * options for the client library's Cluster constructor, applied last.
   * @default process.env.REDIS_CLUSTER_NODES (comma-separated), else standalone
   */
  cluster?: { nodes: NodeAddress[]; options?: object };
  /**
   * Connect through Redis Sentinel instead: the master group `name`, the Sentinel `nodes`, and
   * options for the client library's Sentinel setup, applied last (ioredis: `RedisOptions`
   * such as `sentinelPassword`; node-redis: `createSentinel()` options).
   * @default REDIS_SENTINELS (comma-separated host:port) with REDIS_SENTINEL_NAME (default "mymaster")
   */
  sentinel?: { name: string; nodes: NodeAddress[]; options?: object };
  /**
   * Connect timeout and per-command timeout, in milliseconds.
   * @default Number(process.env.REDIS_TIMEOUT) * 1000, else 500
   */
  timeoutMs?: number;
  /**
   * Extra options for the client library, applied last: ioredis `RedisOptions` (to each
   * Cluster node for a Cluster), or node-redis `createClient()` options (`defaults` of a
   * Cluster, `nodeClientOptions` of a Sentinel).
   */
  redisOptions?: object;
  /**
   * Where connection errors are logged: once when the connection fails, again only after it
   * was ready in between (never one line per reconnect attempt).
   * @default console
   */
  logger?: Logger;
}

/** Default connect and command timeout, in milliseconds, when `REDIS_TIMEOUT` is not set. */
export const DEFAULT_REDIS_TIMEOUT_MS = 500;

const SCOPE = "createRedisClient";
const KNOWN = ["client", "url", "cluster", "sentinel", "timeoutMs", "redisOptions", "logger"];
/** Reconnect back-off: 100 ms per attempt, at most 2 s. */
export const backoff = (times: number) => Math.min(times * 100, 2000);

/**
 * Creates a client: a Cluster when `cluster.nodes` or `REDIS_CLUSTER_NODES` is given, a
 * Sentinel-managed one when `sentinel` or `REDIS_SENTINELS` is given, else a standalone one
 * from `url`, `REDIS_URL` or `redis://127.0.0.1:6379`. With `client: "node-redis"` it is
 * already connecting (`connect()` called) when returned.
 *
 * Defaults fail fast instead of queueing for ever, whichever library builds the client: a
 * 500 ms connect and command timeout (`REDIS_TIMEOUT` in seconds overrides both), commands
 * queued while reconnecting only for that long, reconnect back-off capped at 2 s, and no
 * command resent after a disconnect lost its reply.
 *
 * `C` is the type you expect back, e.g. `createRedisClient<Redis>()` with ioredis's `Redis`
 * (this package does not import the client libraries' types).
 */
export function createRedisClient<C extends RedisClient = RedisClient>(
  options: RedisClientOptions = {},
): C {
  if (typeof options !== "object" || options === null) {
    throw new InvalidOptionError(
      `${SCOPE}: options must be an object (got ${show(options)})`,
      "options",
    );
  }
  rejectUnknown(SCOPE, options, KNOWN);
  const family = oneOf(
    SCOPE,
    options.client === undefined && process.env.REDIS_CLIENT ? "REDIS_CLIENT" : "client",
    options.client ?? (process.env.REDIS_CLIENT || undefined),
    ["ioredis", "node-redis"] as const,
    "ioredis",
  );
  const timeoutMs = parseTimeout(options.timeoutMs);
  const logger = options.logger ?? consoleLogger;
  const topology = parseTopology(options);
  const client =
    family === "ioredis"
      ? buildIoredis(topology, timeoutMs, options.redisOptions)
      : buildNodeRedis(topology, timeoutMs, options.redisOptions, logger);
  logErrors(client, logger);
  return client as C;
}

/** Where the client connects, as parsed from the options. */
export type Topology =
  | { kind: "standalone"; url: string }
  | { kind: "cluster"; nodes: { host: string; port: number }[]; options?: object }
  | { kind: "sentinel"; name: string; nodes: { host: string; port: number }[]; options?: object };

function parseTopology(options: RedisClientOptions): Topology {
  const clusterNodes = options.cluster?.nodes ?? parseList(process.env.REDIS_CLUSTER_NODES);
  const sentinel =
    options.sentinel ??
    (parseList(process.env.REDIS_SENTINELS) === undefined
      ? undefined
      : {
          name: process.env.REDIS_SENTINEL_NAME || "mymaster",
          nodes: parseList(process.env.REDIS_SENTINELS)!,
        });
  if (clusterNodes !== undefined && sentinel !== undefined) {
    throw new InvalidOptionError(
      `${SCOPE}: give either cluster (REDIS_CLUSTER_NODES) or sentinel (REDIS_SENTINELS), not both`,
      "sentinel",
    );
  }
  if (clusterNodes !== undefined) {
    return {
      kind: "cluster",
      nodes: nodesOf("cluster.nodes", clusterNodes),
      options: options.cluster?.options,
    };
  }
  if (sentinel !== undefined) {
    if (typeof sentinel.name !== "string" || sentinel.name === "") {
      throw new InvalidOptionError(
        `${SCOPE}: sentinel.name must be the master group's name, e.g. "mymaster" (got ${show(sentinel.name)})`,
        "sentinel.name",
      );
    }
    return {
      kind: "sentinel",
      name: sentinel.name,
      nodes: nodesOf("sentinel.nodes", sentinel.nodes),
      options: sentinel.options,
    };
  }
  const url = options.url ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  if (typeof url !== "string" || !/^rediss?:\/\//.test(url)) {
    throw new InvalidOptionError(
      `${SCOPE}: url must start with redis:// or rediss:// (got ${show(url)})`,
      "url",
    );
  }
  return { kind: "standalone", url };
}

/** A client library's constructor. */
export type Ctor = new (...args: unknown[]) => RedisClient;

/** ioredis: `Redis` (standalone or with `sentinels`) or `Cluster`. */
function buildIoredis(topology: Topology, timeoutMs: number, extra?: object): RedisClient {
  const { Redis, Cluster } = load("ioredis", "ioredis") as { Redis: Ctor; Cluster: Ctor };
  const tuned = {
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    // A command whose reply was lost in a disconnect may already have run: never send it again
    // (a rate limit consume would count twice).
    autoResendUnfulfilledCommands: false,
    retryStrategy: backoff,
    ...extra,
  };
  if (topology.kind === "cluster") {
    return new Cluster(topology.nodes, {
      redisOptions: tuned,
      clusterRetryStrategy: backoff,
      slotsRefreshTimeout: Math.max(timeoutMs, 1000),
      enableOfflineQueue: true,
      ...topology.options,
    });
  }
  if (topology.kind === "sentinel") {
    const options = { sentinelRetryStrategy: backoff, ...tuned, ...topology.options };
    const client = new Redis({
      sentinels: topology.nodes,
      name: topology.name,
      // After a failover the old master is a replica that refuses writes (READONLY): reconnect,
      // which asks the sentinels for the new master. The refused command did not run; it fails
      // and is not resent.
      reconnectOnError: (err: Error) => (err.message.startsWith("READONLY") ? 1 : false),
      ...options,
    });
    followSwitches(Redis, client as unknown as IoSentinelClient, topology, topology.options ?? {});
    return client;
  }
  return new Redis(topology.url, tuned);
}

interface NodeRedisModule {
  createClient(options: object): RedisClient & { connect(): Promise<unknown> };
  createCluster(options: object): RedisClient & { connect(): Promise<unknown> };
  createSentinel(options: object): RedisClient & { connect(): Promise<unknown> };
}

/** node-redis: `createClient`, `createCluster` or `createSentinel`, connecting. */
function buildNodeRedis(
  topology: Topology,
  timeoutMs: number,
  extra: object | undefined,
  logger: Logger,
): RedisClient {
  const redis = load("redis", "node-redis") as NodeRedisModule;
  const tuned = {
    socket: { connectTimeout: timeoutMs, reconnectStrategy: backoff },
    // Commands wait at most this long to be sent (also while reconnecting); node-redis never
    // resends a command once written.
    commandOptions: { timeout: timeoutMs },
    ...extra,
  };
  const client =
    topology.kind === "cluster"
      ? redis.createCluster({
          rootNodes: topology.nodes.map((n) => ({ socket: n })),
          defaults: tuned,
          ...topology.options,
        })
      : topology.kind === "sentinel"
        ? redis.createSentinel({
            name: topology.name,
            sentinelRootNodes: topology.nodes,
            nodeClientOptions: tuned,
            sentinelClientOptions: { socket: tuned.socket },
            ...topology.options,
          })
        : redis.createClient({ url: topology.url, ...tuned });
  client.connect().catch((err: Error) => {
    logger.warn(`[express-redis-kit] Redis connection failed: ${err.message} (retrying)`);
  });
  return client;
}

/** Loads an optional peer dependency, or says how to install it. */
function load(pkg: string, family: string): unknown {
  // `require` where this runs as CommonJS (the published build); from the app's directory else.
  const req = typeof require === "function" ? require : createRequire(`${process.cwd()}/`);
  try {
    return req(pkg);
  } catch (err) {
    if ((err as { code?: string }).code !== "MODULE_NOT_FOUND") throw err;
    throw new InvalidOptionError(
      `${SCOPE}: client "${family}" needs the ${pkg} package, which is not installed: npm install ${pkg}`,
      "client",
    );
  }
}

/**
 * Listens for `error` so a dead Redis never crashes the process or floods the log: one line
 * when the connection fails, the next only after it was ready again. Secrets in the URL are
 * never logged (client error messages carry host and port only).
 */
function logErrors(client: RedisClient, logger: Logger): void {
  const driver = driverOf(client, SCOPE, "client");
  let quiet = false;
  driver.on("ready", () => {
    quiet = false;
  });
  driver.on("error", (err: Error) => {
    if (quiet) return;
    quiet = true;
    logger.warn(`[express-redis-kit] Redis connection error: ${err.message} (retrying)`);
  });
}

function parseTimeout(value: number | undefined): number {
  if (value !== undefined) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidOptionError(
        `${SCOPE}: timeoutMs must be a positive integer (got ${show(value)})`,
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
      `${SCOPE}: REDIS_TIMEOUT must be a positive number of seconds (got ${show(env)})`,
      "REDIS_TIMEOUT",
    );
  }
  return Math.ceil(seconds * 1000);
}

/** True when `redis` is a Cluster client (ioredis `Cluster` or node-redis `createCluster()`). */
export function isCluster(redis: RedisClient): boolean {
  return driverOf(redis, "isCluster", "redis").isCluster;
}

/**
 * Closes a client made by `createRedisClient()` (or any accepted client) without waiting for
 * pending replies: ioredis `disconnect()`, node-redis `destroy()`.
 */
export function closeRedisClient(redis: RedisClient): void {
  const c = redis as { isOpen?: unknown; disconnect?: () => unknown; destroy?: () => unknown };
  // By shape, so a client that is already closed (which driverOf refuses) closes quietly too.
  const done =
    typeof c.isOpen === "boolean" && typeof c.destroy === "function"
      ? c.isOpen
        ? c.destroy()
        : undefined
      : c.disconnect?.();
  if (done instanceof Promise) done.catch(() => {});
}
