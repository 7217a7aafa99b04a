/**
 * Health that tells the truth: redisHealth() and checkRedisHealth() answer 503 while the Redis
 * they check is stopped or while a feature serves from its fallback, 200 `ok` once both are
 * back, and 200 `mode: "memory"` only when nothing in the process uses Redis.
 *
 * The feature states are per process (per test file here), so the tests run in order: first
 * the memory-only one, then the ones that configure Redis. Every feature made stays referenced
 * until the end, so the lists compared below are exact.
 */
import type { Redis } from "ioredis";
import request from "supertest";
import {
  checkRedisHealth,
  createRedisClient,
  InvalidOptionError,
  type RateLimitMiddleware,
  rateLimit,
  redisHealth,
} from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  createApp,
  eventually,
  newRedis,
  quiet,
  ready,
  testPrefix,
} from "./helpers.js";

let own: RedisServer;
let limited: Redis;
const prefix = testPrefix(__filename);
const made: RateLimitMiddleware[] = []; // kept alive: featureStates() holds features weakly
beforeAll(async () => {
  own = await startRedisServer();
  limited = createRedisClient<Redis>({ url: own.url, logger: quiet });
});
afterAll(async () => {
  limited.disconnect();
  await closeClients();
  await own.stop();
});

/** An app with `GET /limited` behind `limiter`, `GET /health` and `GET /health/features`. */
function appWith(limiter: RateLimitMiddleware, health: Redis | undefined) {
  const app = createApp();
  app.get("/limited", limiter, (_req, res) => {
    res.json({ ok: true });
  });
  app.get("/health", redisHealth({ redis: health, timeoutMs: 500 }));
  app.get("/health/features", redisHealth({ timeoutMs: 500 }));
  return app;
}

const MEMORY_ONE = { scope: "rateLimit", state: "memory", onRedisError: "memory" };

it("no Redis anywhere: 200 mode memory, the memory feature listed", async () => {
  const memoryOnly = rateLimit({ limit: 10, windowMs: 60_000, logger: quiet });
  made.push(memoryOnly);
  const app = appWith(memoryOnly, undefined);
  await request(app).get("/limited").expect(200);
  const res = await request(app).get("/health");
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ status: "ok", mode: "memory", client: null });
  expect(res.body.features).toEqual([MEMORY_ONE]);
  expect(res.body.error).toBeUndefined();
  const direct = await checkRedisHealth(undefined);
  expect(direct).toMatchObject({ status: "ok", mode: "memory", features: [MEMORY_ONE] });
});

it("a configured Redis stopped: 503 down from redisHealth and checkRedisHealth; 200 ok after restart", async () => {
  const health = newRedis(own.url);
  const app = createApp();
  app.get("/health", redisHealth({ redis: health, timeoutMs: 500 }));
  // Negative control: answering, it is ok.
  expect((await request(app).get("/health")).status).toBe(200);
  expect(await checkRedisHealth(health)).toMatchObject({ status: "ok", mode: "standalone" });

  await own.stop();
  try {
    const res = await request(app).get("/health");
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ status: "down", mode: "standalone", client: "ioredis" });
    expect(res.body.error).toEqual(expect.any(String));
    expect(res.body.features).toEqual([MEMORY_ONE]); // a memory feature is not a failure
    const direct = await checkRedisHealth(health, { timeoutMs: 500 });
    expect(direct).toMatchObject({ status: "down", mode: "standalone", latencyMs: null });
  } finally {
    await own.start();
  }
  await ready(health);
  const back = await request(app).get("/health");
  expect(back.status).toBe(200);
  expect(back.body).toMatchObject({ status: "ok", mode: "standalone" });
});

it("a feature on its fallback makes health 503 even while the checked Redis answers; 200 once it is back on Redis", async () => {
  const recheckMs = 200;
  await ready(limited); // the previous test restarted its server: the client reconnects first
  const limiter = rateLimit({
    redis: limited,
    prefix,
    limit: 10,
    windowMs: 60_000,
    onRedisError: "memory",
    recheckMs,
    localRejections: false, // its pub/sub channel would be one more feature in the list
    logger: quiet,
  });
  made.push(limiter);
  // The health check's own Redis is the shared test server, which keeps answering: any 503
  // below comes from the feature, not from a PING.
  const app = appWith(limiter, newRedis());
  await request(app).get("/limited").expect(200);
  const onRedis = { scope: "rateLimit", state: "redis", onRedisError: "memory" };
  const healthy = await request(app).get("/health");
  expect(healthy.status).toBe(200);
  expect(healthy.body.features).toEqual([MEMORY_ONE, onRedis]);
  // Without a client to check, features on Redis are not "memory": mode unchecked.
  const unchecked = await request(app).get("/health/features");
  expect(unchecked.status).toBe(200);
  expect(unchecked.body).toMatchObject({ status: "ok", mode: "unchecked", client: null });
  expect(await limited.keys(`${prefix}*`)).not.toHaveLength(0);

  await own.stop();
  try {
    // Negative control: stopped, but no request has met the failure yet.
    expect((await request(app).get("/health")).status).toBe(200);
    await request(app).get("/limited").expect(200); // served from memory: degraded now
    await request(app).get("/limited").expect(200);
    expect(limiter.limiter.stats()).toMatchObject({ state: "degraded", fallbacks: 2 });
    for (const path of ["/health", "/health/features"]) {
      const res = await request(app).get(path);
      expect(res.status).toBe(503);
      expect(res.body.status).toBe("degraded");
      expect(res.body.mode).toBe(path === "/health" ? "standalone" : "unchecked");
      expect(res.body.features).toEqual([
        MEMORY_ONE,
        {
          scope: "rateLimit",
          state: "degraded",
          onRedisError: "memory",
          error: expect.any(String),
        },
      ]);
      expect(res.body.error).toBe(
        "1 feature serves from its fallback: rateLimit (onRedisError memory)",
      );
    }
    const direct = await checkRedisHealth(undefined);
    expect(direct.status).toBe("degraded");
  } finally {
    await own.start();
  }
  await ready(limited);
  expect(await limited.dbsize()).toBe(0); // restarted empty (no persistence)
  // No request reaches the limiter (a load balancer took the instance out of rotation): the
  // switch's own PING, once per recheckMs, brings the feature back, and health with it.
  await eventually(
    "health is 200 again with no traffic",
    async () => expect((await request(app).get("/health")).status).toBe(200),
    10 * recheckMs,
  );
  expect(limiter.limiter.stats()).toMatchObject({ state: "redis", fallbacks: 2 });
  await request(app).get("/limited").expect(200);
  expect(await limited.keys(`${prefix}*`)).not.toHaveLength(0); // counted on Redis again
  const back = await request(app).get("/health");
  expect(back.status).toBe(200);
  expect(back.body).toMatchObject({ status: "ok", mode: "standalone" });
  expect(back.body.error).toBeUndefined();
  expect(back.body.features).toEqual([MEMORY_ONE, onRedis]);
});

it("takes timeoutMs and degradedLatencyMs only: no failure mode, validated at construction", () => {
  for (const [name, value] of [
    ["onRedisError", "open"],
    ["recheckMs", 100],
  ] as const) {
    const build = () => redisHealth({ [name]: value } as never);
    expect(build).toThrow(InvalidOptionError);
    expect(build).toThrow(`redisHealth: unknown option "${name}": health has no failure mode`);
  }
  expect(() => redisHealth({ degradedLatencyMs: -1 })).toThrow(
    "redisHealth: degradedLatencyMs must be a positive integer (got -1)",
  );
  expect(() => redisHealth({ timeoutMs: 1.5 })).toThrow(
    "redisHealth: timeoutMs must be a positive integer (got 1.5)",
  );
  expect(() => redisHealth(null as never)).toThrow("redisHealth: options must be an object");
});

it("checkRedisHealth rejects bad options too, and defaults timeoutMs to the table's 1000 ms", async () => {
  await expect(checkRedisHealth(undefined, { onRedisError: "closed" } as never)).rejects.toThrow(
    'checkRedisHealth: unknown option "onRedisError"',
  );
  await expect(checkRedisHealth(undefined, { timeout: 5 } as never)).rejects.toThrow(
    /unknown option "timeout"; did you mean "timeoutMs"\?/,
  );
  const frozen = newRedis(own.url);
  await frozen.ping();
  await own.signal("SIGSTOP");
  try {
    const started = Date.now();
    const health = await checkRedisHealth(frozen);
    const took = Date.now() - started;
    expect(health).toMatchObject({ status: "down" });
    expect(health.error).toMatch(/^Redis did not answer within 1000 ms/);
    expect(took).toBeGreaterThanOrEqual(990); // timers may fire a few ms early
    expect(took).toBeLessThan(1500);
  } finally {
    await own.signal("SIGCONT");
  }
});
