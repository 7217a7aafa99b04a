/**
 * `checkRedisHealth()`: PING latency plus the INFO numbers an operator looks at first, for a
 * standalone server or every master of a Cluster, bounded by a timeout.
 */
import { isCluster } from "./client.js";
import { toError } from "./errors.js";
import { withTimeout } from "./fallback.js";
import type { RedisClient } from "./scripts.js";

/** What `checkRedisHealth()` and `redisHealth()` report. */
export interface RedisHealth {
  /** `ok`; `degraded` (slow PING, or a Cluster whose state is not ok); `down` (no answer). */
  status: "ok" | "degraded" | "down";
  /** PING round trip in milliseconds (the slowest master on a Cluster), or null when down. */
  latencyMs: number | null;
  /** `redis_version`, or null when down. */
  version: string | null;
  /** `used_memory` in bytes (summed over masters), or null when down. */
  usedMemoryBytes: number | null;
  /** `connected_clients` (summed over masters), or null when down. */
  connectedClients: number | null;
  /** `standalone`, `cluster`, or `memory` when no Redis is configured. */
  mode: "standalone" | "cluster" | "memory";
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

type Node = { ping(): Promise<string>; info(section: string): Promise<string> };

/** Checks `redis` (or reports `memory` mode when undefined); never rejects. */
export async function checkRedisHealth(
  redis: RedisClient | undefined,
  options: HealthCheckOptions,
): Promise<RedisHealth> {
  if (redis === undefined) {
    return {
      status: "ok",
      latencyMs: null,
      version: null,
      usedMemoryBytes: null,
      connectedClients: null,
      mode: "memory",
    };
  }
  const mode = isCluster(redis) ? "cluster" : "standalone";
  try {
    return await withTimeout(probe(redis, mode, options.degradedLatencyMs), options.timeoutMs);
  } catch (err) {
    return {
      status: "down",
      latencyMs: null,
      version: null,
      usedMemoryBytes: null,
      connectedClients: null,
      mode,
      error: toError(err).message,
    };
  }
}

async function probe(
  redis: RedisClient,
  mode: "standalone" | "cluster",
  degradedMs: number,
): Promise<RedisHealth> {
  const nodes: Node[] = isCluster(redis) ? redis.nodes("master") : [redis];
  if (nodes.length === 0) throw new Error("no Cluster master is known");
  const answers = await Promise.all(
    nodes.map(async (node) => {
      const started = performance.now();
      await node.ping();
      const latencyMs = performance.now() - started;
      return { latencyMs, info: parseInfo(await node.info("default")) };
    }),
  );
  const latencyMs = Math.max(...answers.map((a) => a.latencyMs));
  const sum = (field: string) =>
    answers.reduce((total, a) => total + Number(a.info[field] ?? 0), 0);
  let error: string | undefined;
  if (isCluster(redis)) {
    const state = await (redis as unknown as { cluster(sub: "INFO"): Promise<string> }).cluster(
      "INFO",
    );
    if (!/cluster_state:ok/.test(state)) error = "cluster_state is not ok";
  }
  if (latencyMs > degradedMs)
    error = `PING took ${Math.round(latencyMs)} ms (over ${degradedMs} ms)`;
  return {
    status: error === undefined ? "ok" : "degraded",
    latencyMs: Math.round(latencyMs * 100) / 100,
    version: answers[0]?.info.redis_version ?? null,
    usedMemoryBytes: sum("used_memory"),
    connectedClients: sum("connected_clients"),
    mode,
    ...(error === undefined ? {} : { error }),
  };
}

/** Parses `INFO` text into a field → value record. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0 && !line.startsWith("#")) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}
