/**
 * `redisHealth()`: a health endpoint answering 200 only when Redis answers and no feature is on
 * its fallback (or no Redis is used at all), 503 otherwise, within its timeout whatever Redis
 * does.
 */
import type { Request, Response } from "express";
import { checkDriver, type HealthCheckOptions, parseHealthOptions } from "../stores/core/health.js";
import { optionalRedis } from "../stores/core/options.js";
import type { RedisClient } from "../stores/core/scripts.js";

/** Options of `redisHealth()`. */
export interface RedisHealthOptions extends HealthCheckOptions {
  /**
   * The client to check. Omitted: only the features' states are reported, and with no feature
   * on Redis either, `{ status: "ok", mode: "memory" }`.
   */
  redis?: RedisClient;
}

/**
 * Health endpoint middleware (a readiness probe): JSON `RedisHealth` (`status`, `mode`,
 * `features`, `latencyMs`, `version`, `memory`, `keyspace`, …), 200 when `status` is `ok`, else
 * 503. `status` is `down` when the Redis given does not answer within `timeoutMs`, `degraded`
 * when it answers poorly or any feature instance of the process serves from its fallback.
 * @throws InvalidOptionError when an option is unknown or invalid (`onRedisError` included:
 * health has no failure mode)
 */
export function redisHealth(options: RedisHealthOptions = {}) {
  const scope = "redisHealth";
  const check = parseHealthOptions(scope, options, ["redis"]);
  const redis = optionalRedis(scope, "redis", options.redis);
  return async function redisHealthMiddleware(_req: Request, res: Response) {
    const health = await checkDriver(redis, check);
    res.setHeader("Cache-Control", "no-store");
    res.status(health.status === "ok" ? 200 : 503).json(health);
  };
}
