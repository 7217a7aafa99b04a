/**
 * A feature that turned degraded is back on Redis soon after Redis is, not at its next
 * `recheckMs`: with `recheckMs` at a minute, a rate limiter is back within seconds of the
 * server's restart (the client's ready and the switch's own PINGs bring it back; no request
 * probe is due before a minute). After a reply error (OOM here), PINGs alone bring an idle
 * feature back once Redis accepts its commands again.
 */
import type { Redis } from "ioredis";
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

  it("degraded by a reply error (OOM), an idle limiter is back on Redis by its PINGs once writes are accepted", async () => {
    const redis = createRedisClient({ client: family, url: server.url, logger: quiet });
    const admin = createRedisClient({ client: "ioredis", url: server.url, logger: quiet });
    const limiter = createRateLimiter({
      redis,
      prefix: `oom-${family}:`,
      limit: 1000,
      windowMs: 60_000,
      recheckMs: 300,
      logger: quiet,
    });
    const config = (...args: string[]) => (admin as never as Redis).call("CONFIG", "SET", ...args);
    try {
      expect(await limiter.consume("k")).toMatchObject({ backend: "redis" });
      await config("maxmemory-policy", "noeviction");
      await config("maxmemory", "1");
      expect(await limiter.consume("k")).toMatchObject({ backend: "memory" }); // OOM
      expect(limiter.stats().state).toBe("degraded");
      await config("maxmemory", "0");
      // No traffic from here: a PING answers, and no call comes to decide.
      await eventually(
        "back on Redis",
        async () => expect(limiter.stats().state).toBe("redis"),
        10_000,
      );
      expect(await limiter.consume("k")).toMatchObject({ backend: "redis" });
    } finally {
      await config("maxmemory", "0");
      await limiter.close();
      closeRedisClient(redis);
      closeRedisClient(admin);
    }
  }, 30_000);
});
