/**
 * Redis-specific behaviour of the rate limiter, on a redis-server of this file's own (so server
 * counters and failures do not touch other test files): round trips counted with INFO
 * commandstats, SCRIPT FLUSH mid-traffic, state left in Redis, and naive check-then-set as a
 * negative control for the concurrency tests.
 */
import type { Redis } from "ioredis";
import { createRateLimiter, type RateLimitResult } from "../index.js";
import { parseInfo } from "../stores/core/health.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { closeClients, newRedis, quiet, testPrefix } from "./helpers.js";

// Counting tests: a slow call under load must fail the test, not fall back to memory.
const strict = { logger: quiet, timeoutMs: 5000, onRedisError: "closed" } as const;
let server: RedisServer;
let admin: Redis;
const prefix = testPrefix(__filename);

beforeAll(async () => {
  server = await startRedisServer();
  admin = newRedis(server.url);
});
afterAll(async () => {
  await closeClients();
  await server.stop();
});

/** calls and failed_calls per command from INFO commandstats. */
async function commandStats(): Promise<Record<string, { calls: number; failed: number }>> {
  const info = parseInfo(await admin.info("commandstats"));
  const stats: Record<string, { calls: number; failed: number }> = {};
  for (const [field, value] of Object.entries(info)) {
    const match = /calls=(\d+).*failed_calls=(\d+)/.exec(value);
    if (field.startsWith("cmdstat_") && match) {
      stats[field.slice(8)] = { calls: Number(match[1]), failed: Number(match[2]) };
    }
  }
  return stats;
}

describe("round trips", () => {
  it.each([1, 3])("one command per consume with %i policies (INFO commandstats)", async (count) => {
    const redis = newRedis(server.url);
    const policies = Array.from({ length: count }, (_, i) => ({
      name: `p${i}`,
      limit: 1000,
      windowMs: 60_000 + i,
    }));
    const limiter = createRateLimiter({
      redis,
      prefix: `${prefix}rt${count}:`,
      policies,
      ...strict,
    });
    await limiter.consume("warm"); // the first call on a connection sends EVAL with the source
    await admin.config("RESETSTAT");
    const before = await commandStats();
    for (let i = 0; i < 50; i++) await limiter.consume(`k${i % 5}`);
    const after = await commandStats();
    const sent = Object.entries(after)
      .filter(([name]) => !name.startsWith("config") && name !== "info")
      .map(([name, s]) => [name, s.calls - (before[name]?.calls ?? 0)] as const)
      .filter(([, delta]) => delta > 0);
    const byName = Object.fromEntries(sent);
    expect(byName.evalsha).toBe(50); // the only command the client sent
    expect(byName.eval ?? 0).toBe(0);
    expect(byName.time).toBe(50); // run inside the script: Redis's clock, once per consume
    // Everything else ran inside the script (PTTL, GET, SET), nothing from the client:
    const clientSent = sent.filter(
      ([name]) => !["evalsha", "time", "get", "set", "pttl"].includes(name),
    );
    expect(clientSent).toEqual([]);
  });
});

describe("SCRIPT FLUSH in the middle of traffic", () => {
  it("answers every consume without error and counts exactly once", async () => {
    const clients = Array.from({ length: 4 }, () => newRedis(server.url));
    const limiters = clients.map((redis) =>
      createRateLimiter({
        redis,
        prefix: `${prefix}flush:`,
        limit: 500,
        windowMs: 60_000,
        algorithm: "fixed-window",
        localRejections: false, // every consume reaches Redis: executions are counted below
        ...strict,
      }),
    );
    await admin.config("RESETSTAT");
    const results: RateLimitResult[] = [];
    for (let batch = 0; batch < 10; batch++) {
      const calls = Array.from({ length: 100 }, (_, i) => limiters[i % 4]!.consume("hot"));
      // Flush the script cache while this batch is in flight, from another connection.
      const flush = batch % 3 === 1 ? admin.script("FLUSH") : undefined;
      results.push(...(await Promise.all(calls)));
      await flush;
    }
    expect(results).toHaveLength(1000);
    expect(results.filter((r) => r.allowed)).toHaveLength(500);
    const stats = await commandStats();
    const noscript = stats.evalsha?.failed ?? 0;
    expect(noscript).toBeGreaterThan(0); // the flush did bite
    const executed =
      (stats.evalsha?.calls ?? 0) - noscript + (stats.eval?.calls ?? 0) - (stats.eval?.failed ?? 0);
    expect(executed).toBe(1000); // one execution per consume: no retry of a script that ran
    expect(stats.time?.calls).toBe(1000);
    const state = await admin.get(`${prefix}flush:{hot}:w0`); // "<kind> <start> <count> 0"
    expect(state?.split(" ")[2]).toBe("500");
  });
});

describe("state in Redis", () => {
  it("keeps only hash-tagged keys with a TTL, and refunds keep the TTL", async () => {
    const redis = newRedis(server.url);
    const p = `${prefix}state:`;
    const l = createRateLimiter({
      redis,
      prefix: p,
      limit: 10,
      windowMs: 5000,
      algorithm: "sliding-window",
      ...strict,
    });
    const r = await l.consume("user:1", 3);
    const keys = await admin.keys(`${p}*`);
    expect(keys).toEqual([`${p}{user:1}:w0`]);
    const ttl = await admin.pttl(keys[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000); // two windows at most
    const count = async () => (await admin.get(keys[0]!))?.split(" ")[2]; // "<kind> <window> <count> <previous>"
    expect(await count()).toBe("3");
    await l.refund(r);
    expect(await count()).toBe("0");
    expect(await admin.pttl(keys[0]!)).toBeGreaterThan(0);
  });

  it("a 100 KB key stays a short Redis key", async () => {
    const redis = newRedis(server.url);
    const p = `${prefix}long:`;
    const l = createRateLimiter({ redis, prefix: p, limit: 10, windowMs: 5000, ...strict });
    await l.consume("x".repeat(100_000));
    await l.block("y".repeat(100_000), 1000);
    const keys = await admin.keys(`${p}*`);
    expect(keys).toHaveLength(2);
    for (const key of keys) expect(key.length).toBeLessThan(p.length + 128 + 10);
  });
});

describe("negative control", () => {
  it("a naive GET-then-SET limiter over 4 connections lets more than the limit through", async () => {
    const clients = Array.from({ length: 4 }, () => newRedis(server.url));
    const key = `${prefix}naive`;
    const attempt = async (redis: Redis) => {
      const count = Number((await redis.get(key)) ?? 0);
      if (count >= 100) return false;
      await redis.set(key, count + 1);
      return true;
    };
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => attempt(clients[i % 4]!)),
    );
    expect(results.filter(Boolean).length).toBeGreaterThan(100);
  });
});
