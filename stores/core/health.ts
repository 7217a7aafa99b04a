/**
 * `checkRedisHealth()`: PING latency plus the INFO numbers an operator looks at first, for a
 * standalone server or every master of a Cluster, bounded by a timeout.
 */

import type { ClientFamily, NodeHandle, RedisDriver } from "./driver.js";
import { driverOf, type RedisClient } from "./drivers.js";
import { toError } from "./errors.js";
import { withTimeout } from "./fallback.js";

/** What `checkRedisHealth()` and `redisHealth()` report. */
export interface RedisHealth {
  /** `ok`; `degraded` (slow PING, or a Cluster whose state is not ok); `down` (no answer). */
  status: "ok" | "degraded" | "down";
  /** PING round trip in milliseconds (the slowest master on a Cluster), or null when down. */
  latencyMs: number | null;
  /** The server's version (`valkey_version` on Valkey, else `redis_version`), or null when down. */
  version: string | null;
  /** `valkey` when INFO reports `server_name:valkey`, else `redis`; null when down or memory. */
  server: "redis" | "valkey" | null;
  /** The client library: `ioredis` (also iovalkey) or `node-redis`; null in memory mode. */
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
  /** `standalone`, `cluster`, `sentinel`, or `memory` when no Redis is configured. */
  mode: "standalone" | "cluster" | "sentinel" | "memory";
  /** Why the status is not `ok`. */
  error?: string;
}

/** Options of `checkRedisHealth()`. */
export interface HealthCheckOptions {
  /** Longest wait for the whole check; past it the status is `down`. */
  timeoutMs: number;
  /** PING latency above which the status is `degraded`. */
  degradedLatencyMs: number;
}

/** Checks `redis` (or reports `memory` mode when undefined); never rejects. */
export async function checkRedisHealth(
  client: RedisClient | undefined,
  options: HealthCheckOptions,
): Promise<RedisHealth> {
  const redis = client === undefined ? undefined : driverOf(client, "checkRedisHealth", "redis");
  if (redis === undefined) {
    return {
      status: "ok",
      latencyMs: null,
      version: null,
      server: null,
      client: null,
      master: null,
      usedMemoryBytes: null,
      connectedClients: null,
      memory: null,
      keyspace: null,
      mode: "memory",
    };
  }
  const mode = redis.topology;
  try {
    return await withTimeout(probe(redis, options.degradedLatencyMs), options.timeoutMs);
  } catch (err) {
    return {
      status: "down",
      latencyMs: null,
      version: null,
      server: null,
      client: redis.family,
      master: null,
      usedMemoryBytes: null,
      connectedClients: null,
      memory: null,
      keyspace: null,
      mode,
      error: toError(err).message,
    };
  }
}

async function probe(redis: RedisDriver, degradedMs: number): Promise<RedisHealth> {
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
