/**
 * A feature that turned degraded probes Redis as soon as its client is ready again (a
 * reconnect, a new master after a Sentinel failover), not only at its next `recheckMs`: with
 * `recheckMs` at a minute, a rate limiter is back on Redis within seconds of the server's
 * restart (no probe is due before a minute: only the client's ready can bring it back).
 */
import { closeRedisClient, createRateLimiter, createRedisClient } from "../index.js";
import { featureStates } from "../stores/core/fallback.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { eventually, quiet, ready } from "./helpers.js";

describe.each(["ioredis", "node-redis"] as const)("probe on ready through %s", (family) => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(() => server?.stop());

  it("a degraded limiter is back on Redis once the client reconnects, long before recheckMs", async () => {
    const redis = createRedisClient({ client: family, url: server.url, logger: quiet });
    const limiter = createRateLimiter({
      redis,
      prefix: `probe-${family}:`,
      limit: 1000,
      windowMs: 60_000,
      recheckMs: 60_000,
      logger: quiet,
    });
    const state = () =>
      featureStates().find((f) => f.scope === "createRateLimiter" || f.scope === "rateLimit")
        ?.state;
    try {
      expect(await limiter.consume("k")).toMatchObject({ backend: "redis" });
      await server.stop();
      expect(await limiter.consume("k")).toMatchObject({ backend: "memory" });
      expect(state()).toBe("degraded");
      await server.start();
      if (family === "ioredis") await ready(redis as never);
      await eventually(
        "back on Redis",
        async () => expect(await limiter.consume("k")).toMatchObject({ backend: "redis" }),
        10_000,
      );
    } finally {
      await limiter.close();
      closeRedisClient(redis);
    }
  }, 30_000);
});
