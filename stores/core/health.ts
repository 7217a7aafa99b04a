/**
 * `checkRedisHealth()`: PING latency plus the INFO numbers an operator looks at first, for a
 * standalone server or every master of a Cluster, bounded by a timeout, together with the state
 * of every feature instance in the process (on Redis, on memory, or degraded on its fallback).
 */

import type { ClientFamily, NodeHandle, RedisDriver } from "./driver.js";
import { driverOf, type RedisClient } from "./drivers.js";
import { InvalidOptionError, toError } from "./errors.js";
import { parseFailureOptions } from "./failure.js";
import { type FeatureState, featureStates } from "./fallback.js";
import { withTimeout } from "./in-flight.js";
import { fail, positiveInt, rejectUnknown } from "./options.js";

/** What `checkRedisHealth()` and `redisHealth()` report. */
export interface RedisHealth {
  /**
   * `ok`: Redis answers and no feature is on its fallback (or no Redis is used at all);
   * `degraded`: Redis answers but slowly, near a `noeviction` memory limit or with a Cluster
   * state not ok, or a feature serves from its fallback; `down`: the Redis checked does not
   * answer within `timeoutMs`.
   */
  status: "ok" | "degraded" | "down";
  /** PING round trip in milliseconds (the slowest master on a Cluster), or null when down. */
  latencyMs: number | null;
  /** The server's version (`valkey_version` on Valkey, else `redis_version`), or null when down. */
  version: string | null;
  /** `valkey` when INFO reports `server_name:valkey`, else `redis`; null when down or memory. */
  server: "redis" | "valkey" | null;
  /** The client library: `ioredis` (also iovalkey) or `node-redis`; null when none is checked. */
  client: ClientFamily | null;
  /** On Sentinel, the current master's `host:port`; null otherwise. */
  master: string | null;
  /** `used_memory` in bytes (summed over masters), or null when down. */
  usedMemoryBytes: number | null;
  /** `connected_clients` (summed over masters), or null when down. */
  connectedClients: number | null;
  /** Memory numbers (summed over masters; ratios of the sums), or null when down or memory mode. */
  memory: {
    usedBytes: number;
    peakBytes: number;
    /** `maxmemory`; 0 means no limit. */
    maxBytes: number;
    /** usedBytes / maxBytes, or null without a limit. Over 0.9 with `noeviction`: `degraded`. */
    usedRatio: number | null;
    /** `mem_fragmentation_ratio` (the highest master's). */
    fragmentationRatio: number;
    /** `maxmemory_policy`, e.g. `noeviction` (then writes fail at the limit). */
    policy: string;
  } | null;
  /** Keyspace numbers (summed over masters), or null when down or memory mode. */
  keyspace: {
    keys: number;
    /** Keys with a TTL. */
    expires: number;
    /** Keys evicted for maxmemory since the server started (a cache or session lost early). */
    evictedKeys: number;
    expiredKeys: number;
    /** keyspace_hits / (hits + misses) since start, or null before any lookup. */
    hitRatio: number | null;
  } | null;
  /**
   * The checked client's `standalone`, `cluster` or `sentinel`; `memory` when no Redis is used
   * at all (no client checked, no feature configured with one); `unchecked` when no client was
   * given to check but features use Redis (only their states are reported).
   */
  mode: "standalone" | "cluster" | "sentinel" | "memory" | "unchecked";
  /**
   * Every live feature instance of this process (`rateLimit`, `cacheResponse`, …): `state`
   * `redis`, `memory` (made without Redis) or `degraded` (Redis failed; serving per its
   * `onRedisError`, with the failure as `error`). Any `degraded` one makes the status not `ok`.
   */
  features: FeatureState[];
  /** Why the status is not `ok`. */
  error?: string;
}

/** Options of `checkRedisHealth()` (and, with `redis`, of `redisHealth()`). */
export interface HealthCheckOptions {
  /**
   * Longest wait for the whole check; past it the status is `down`.
   * @default 1000 (the `health` row of the failure-defaults table)
   */
  timeoutMs?: number;
  /**
   * PING latency above which the status is `degraded`.
   * @default 100
   */
  degradedLatencyMs?: number;
}

/** `HealthCheckOptions` resolved. */
export interface HealthCheckConfig {
  timeoutMs: number;
  degradedLatencyMs: number;
}

/** Default `degradedLatencyMs`. */
const DEGRADED_LATENCY_MS = 100;

/**
 * Validates the health options of `scope` (`known` adds the caller's own names, e.g. `redis`).
 * Health takes `timeoutMs` only of the failure options: it reports Redis failures, it has no
 * `onRedisError` of its own.
 * @throws InvalidOptionError when an option is unknown or invalid
 */
export function parseHealthOptions(
  scope: string,
  options: unknown,
  known: readonly string[] = [],
): HealthCheckConfig {
  if (typeof options !== "object" || options === null) fail(scope, "options", "an object", options);
  const given = options as HealthCheckOptions;
  for (const name of ["onRedisError", "recheckMs"]) {
    if (name in given) {
      throw new InvalidOptionError(
        `${scope}: unknown option "${name}": health has no failure mode; it answers 503 while Redis fails or a feature is on its fallback`,
        name,
      );
    }
  }
  rejectUnknown(scope, given, [...known, "timeoutMs", "degradedLatencyMs"]);
  return {
    timeoutMs: parseFailureOptions(scope, "health", { timeoutMs: given.timeoutMs }).timeoutMs,
    degradedLatencyMs: positiveInt(
      scope,
      "degradedLatencyMs",
      given.degradedLatencyMs,
      DEGRADED_LATENCY_MS,
    ),
  };
}

/**
 * Checks `redis` (or, when undefined, only the features) and reports every feature instance's
 * state; see `RedisHealth.status`. Resolves whatever Redis does.
 * @throws InvalidOptionError (as a rejection) when `redis` or an option is invalid
 */
export async function checkRedisHealth(
  client: RedisClient | undefined,
  options: HealthCheckOptions = {},
): Promise<RedisHealth> {
  const check = parseHealthOptions("checkRedisHealth", options);
  const redis = client === undefined ? undefined : driverOf(client, "checkRedisHealth", "redis");
  return checkDriver(redis, check);
}

/** `checkRedisHealth()` on an already resolved driver and options (for `redisHealth()`). */
export async function checkDriver(
  redis: RedisDriver | undefined,
  check: HealthCheckConfig,
): Promise<RedisHealth> {
  const own = redis === undefined ? undefined : await checkServer(redis, check);
  // Read after the PING: the freshest states.
  return withFeatures(own, featureStates());
}

/** The server report without features: what the PING and INFO say, or `down`. */
type ServerHealth = Omit<RedisHealth, "features">;

const NOTHING = {
  latencyMs: null,
  version: null,
  server: null,
  master: null,
  usedMemoryBytes: null,
  connectedClients: null,
  memory: null,
  keyspace: null,
} as const;

async function checkServer(redis: RedisDriver, check: HealthCheckConfig): Promise<ServerHealth> {
  try {
    return await withTimeout(probe(redis, check.degradedLatencyMs), check.timeoutMs);
  } catch (err) {
    return {
      status: "down",
      ...NOTHING,
      client: redis.family,
      mode: redis.topology,
      error: toError(err).message,
    };
  }
}

/** Merges the features' states into the server report (or into memory/unchecked without one). */
function withFeatures(own: ServerHealth | undefined, features: FeatureState[]): RedisHealth {
  const onRedis = features.some((f) => f.state !== "memory");
  const report: RedisHealth = {
    ...(own ?? { status: "ok", ...NOTHING, client: null, mode: onRedis ? "unchecked" : "memory" }),
    features,
  };
  const degraded = features.filter((f) => f.state === "degraded");
  if (degraded.length === 0) return report;
  if (report.status === "ok") report.status = "degraded";
  const list = degraded.map((f) => `${f.scope} (onRedisError ${f.onRedisError})`).join(", ");
  const what =
    degraded.length === 1
      ? `1 feature serves from its fallback: ${list}`
      : `${degraded.length} features serve from their fallback: ${list}`;
  report.error = report.error === undefined ? what : `${report.error}; ${what}`;
  return report;
}

async function probe(redis: RedisDriver, degradedMs: number): Promise<ServerHealth> {
  const nodes: NodeHandle[] = await redis.masters();
  if (nodes.length === 0) throw new Error("no Cluster master is known");
  const answers = await Promise.all(
    nodes.map(async (node) => {
      const started = performance.now();
      await node.command(["PING"]);
      const latencyMs = performance.now() - started;
      return { latencyMs, info: parseInfo(String(await node.command(["INFO", "default"]))) };
    }),
  );
  const latencyMs = Math.max(...answers.map((a) => a.latencyMs));
  const sum = (field: string) =>
    answers.reduce((total, a) => total + Number(a.info[field] ?? 0), 0);
  let error: string | undefined;
  if (redis.isCluster) {
    const state = String(await nodes[0]!.command(["CLUSTER", "INFO"]));
    if (!/cluster_state:ok/.test(state)) error = "cluster_state is not ok";
  }
  const master = await redis.sentinelMaster();
  redis.server = serverFlavour(answers[0]!.info);
  const used = sum("used_memory");
  const max = sum("maxmemory");
  const usedRatio = max > 0 ? round(used / max) : null;
  // Near the limit matters with noeviction (writes start failing); with an eviction policy a
  // cache normally sits there.
  const first = answers[0]!.info;
  const policy = first.maxmemory_policy ?? "unknown";
  if (usedRatio !== null && usedRatio > 0.9 && policy === "noeviction") {
    error = `used memory is ${Math.round(usedRatio * 100)} % of maxmemory (policy noeviction)`;
  }
  if (latencyMs > degradedMs)
    error = `PING took ${Math.round(latencyMs)} ms (over ${degradedMs} ms)`;
  const hits = sum("keyspace_hits");
  const misses = sum("keyspace_misses");
  const dbs = answers.flatMap((a) =>
    Object.entries(a.info)
      .filter(([field]) => /^db\d+$/.test(field))
      .map(([, value]) => parseList(value)),
  );
  return {
    status: error === undefined ? "ok" : "degraded",
    latencyMs: Math.round(latencyMs * 100) / 100,
    version: first.valkey_version ?? first.redis_version ?? null,
    server: redis.server,
    client: redis.family,
    master,
    usedMemoryBytes: used,
    connectedClients: sum("connected_clients"),
    memory: {
      usedBytes: used,
      peakBytes: sum("used_memory_peak"),
      maxBytes: max,
      usedRatio,
      fragmentationRatio: Math.max(
        ...answers.map((a) => Number(a.info.mem_fragmentation_ratio ?? 0)),
      ),
      policy,
    },
    keyspace: {
      keys: dbs.reduce((total, db) => total + (db.keys ?? 0), 0),
      expires: dbs.reduce((total, db) => total + (db.expires ?? 0), 0),
      evictedKeys: sum("evicted_keys"),
      expiredKeys: sum("expired_keys"),
      hitRatio: hits + misses === 0 ? null : round(hits / (hits + misses)),
    },
    mode: redis.topology,
    ...(error === undefined ? {} : { error }),
  };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** Parses an INFO list value such as `keys=12,expires=3,avg_ttl=0`. */
function parseList(value: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of value.split(",")) {
    const [k, v] = pair.split("=");
    if (k) out[k] = Number(v);
  }
  return out;
}

/** Parses `INFO` text into a field → value record. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(":");
    if (at > 0 && !line.startsWith("#")) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/** `valkey` when INFO says `server_name:valkey`, else `redis`. */
export function serverFlavour(info: Record<string, string>): "redis" | "valkey" {
  return info.server_name === "valkey" ? "valkey" : "redis";
}

/**
 * Learns `redis.server` from one `INFO server` in the background, for `metrics()` (which must
 * answer at once, even while Redis is down). Never rejects.
 */
export function learnServer(redis: RedisDriver): void {
  if (redis.server !== undefined || learning.has(redis)) return;
  learning.add(redis);
  redis
    .masters()
    .then(async (nodes) => {
      const node = nodes[0];
      if (node !== undefined)
        redis.server = serverFlavour(parseInfo(String(await node.command(["INFO", "server"]))));
    })
    .catch(() => {})
    .finally(() => learning.delete(redis));
}

const learning = new WeakSet<RedisDriver>();
