/**
 * `redisHealth()`: a health endpoint answering 200 when Redis is ok and 503 otherwise, within
 * its timeout whatever Redis does.
 */
import type { Request, Response } from "express";
import { checkRedisHealth } from "../stores/core/health.js";
import { fail, optionalRedis, positiveInt, rejectUnknown } from "../stores/core/options.js";
import type { RedisClient } from "../stores/core/scripts.js";

/** Options of `redisHealth()`. */
export interface RedisHealthOptions {
  /** The client to check. Omitted: reports `{ status: "ok", mode: "memory" }`. */
  redis?: RedisClient;
  /**
   * Longest time the check may take before answering `down`.
   * @default 1000
   */
  timeoutMs?: number;
  /**
   * PING latency above which the status is `degraded`.
   * @default 100
   */
  degradedLatencyMs?: number;
}

/**
 * Health endpoint middleware: JSON `{ status, latencyMs, version, usedMemoryBytes,
 * connectedClients, memory, keyspace, mode }`, 200 when `status` is `ok`, else 503.
 */
export function redisHealth(options: RedisHealthOptions = {}) {
  const scope = "redisHealth";
  if (typeof options !== "object" || options === null) fail(scope, "options", "an object", options);
  rejectUnknown(scope, options, ["redis", "timeoutMs", "degradedLatencyMs"]);
  const check = {
    timeoutMs: positiveInt(scope, "timeoutMs", options.timeoutMs, 1000),
    degradedLatencyMs: positiveInt(scope, "degradedLatencyMs", options.degradedLatencyMs, 100),
  };
  const redis = optionalRedis(scope, "redis", options.redis);
  return async function redisHealthMiddleware(_req: Request, res: Response) {
    const health = await checkRedisHealth(redis?.client as RedisClient | undefined, check);
    res.setHeader("Cache-Control", "no-store");
    res.status(health.status === "ok" ? 200 : 503).json(health);
  };
}
