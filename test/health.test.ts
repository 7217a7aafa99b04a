/**
 * redisHealth() against a standalone server and the Cluster (through ioredis and node-redis),
 * a sleeping and a stopped server.
 */
import type { Redis } from "ioredis";
import request from "supertest";
import { createRedisClient, redisHealth } from "../index.js";
import { parseInfo, serverFlavour } from "../stores/core/health.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { clientFor, closeClients, createApp, newRedis } from "./helpers.js";

let own: RedisServer;
beforeAll(async () => {
  own = await startRedisServer();
});
afterAll(async () => {
  await closeClients();
  await own.stop();
});

const app = (options: Parameters<typeof redisHealth>[0]) => {
  const a = createApp();
  a.get("/health", redisHealth(options));
  return a;
};

it.each([
  ["standalone", "ioredis"],
  ["node-redis", "node-redis"],
] as const)(
  "%s: 200 with version, server flavour, client family, memory and clients",
  async (backend, family) => {
    const res = await request(app({ redis: clientFor(backend) })).get("/health");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: "ok",
      mode: "standalone",
      client: family,
      server: "redis",
      master: null,
    });
    expect(res.body.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(res.body.usedMemoryBytes).toBeGreaterThan(0);
    expect(res.body.connectedClients).toBeGreaterThanOrEqual(1);
    expect(res.body.latencyMs).toBeGreaterThanOrEqual(0);
  },
);

it.each([
  ["cluster", "ioredis"],
  ["node-redis-cluster", "node-redis"],
] as const)("%s: 200, numbers summed over the masters", async (backend, family) => {
  const cluster = clientFor(backend);
  // Numbers, not latency, are tested here: a loaded machine must not make the check "degraded".
  const slack = { timeoutMs: 5_000, degradedLatencyMs: 5_000 };
  // node-redis's Cluster connects in the background: ask once it knows its masters (before,
  // health rightly says "down": no master known; a loaded machine once got there first).
  const c = cluster as unknown as {
    isReady?: boolean;
    isOpen?: boolean;
    once?(e: string, f: () => void): void;
  };
  if (family === "node-redis" && (c.isReady ?? c.isOpen) !== true) {
    await new Promise<void>((resolve) => c.once!("connect", resolve));
  }
  const single = await request(app({ redis: newRedis(), ...slack })).get("/health");
  const res = await request(app({ redis: cluster, ...slack })).get("/health");
  expect({ status: res.status, body: res.body.status }).toEqual({ status: 200, body: "ok" });
  expect(res.body).toMatchObject({ status: "ok", mode: "cluster", client: family });
  expect(res.body.connectedClients).toBeGreaterThanOrEqual(3);
  expect(res.body.usedMemoryBytes).toBeGreaterThan(single.body.usedMemoryBytes);
});

it("no redis: reports the memory backend", async () => {
  const res = await request(app({})).get("/health");
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ status: "ok", mode: "memory", client: null });
  expect(res.body.features).toEqual([]); // no feature in this file: nothing else to report
});

it("a slow server is degraded (503), a stopped one is down (503) within the timeout", async () => {
  const redis = createRedisClient<Redis>({
    url: own.url,
    logger: { info() {}, warn() {}, error() {} },
  });
  try {
    const health = app({ redis, timeoutMs: 600, degradedLatencyMs: 100 });
    expect((await request(health).get("/health")).body.status).toBe("ok");
    // Sent on the checked client's own connection, so it runs before the health check's PING.
    const sleeping = redis.debug("SLEEP", "0.3").catch(() => {});
    const slow = await request(health).get("/health");
    await sleeping;
    expect(slow.status).toBe(503);
    expect(slow.body).toMatchObject({ status: "degraded" });
    expect(slow.body.error).toMatch(/PING took \d+ ms/);

    await own.stop();
    const started = Date.now();
    const down = await request(health).get("/health");
    expect(Date.now() - started).toBeLessThan(600 + 400);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ status: "down", mode: "standalone", latencyMs: null });
  } finally {
    redis.disconnect();
    await own.start();
  }
});

it("memory and keyspace numbers; memory near maxmemory is degraded", async () => {
  const redis = newRedis(own.url);
  await redis.flushall();
  for (let i = 0; i < 10; i++) {
    if (i < 4) await redis.set(`k${i}`, "v", "EX", 60);
    else await redis.set(`k${i}`, "v");
  }
  await redis.get("k0"); // a hit
  await redis.get("missing"); // a miss
  const ok = await request(app({ redis })).get("/health");
  expect(ok.status).toBe(200);
  expect(ok.body.keyspace).toMatchObject({ keys: 10, expires: 4 });
  expect(ok.body.keyspace.hitRatio).toBeGreaterThan(0);
  expect(ok.body.keyspace.hitRatio).toBeLessThan(1);
  expect(ok.body.memory).toMatchObject({ maxBytes: 0, usedRatio: null, policy: "noeviction" });
  expect(ok.body.memory.usedBytes).toBe(ok.body.usedMemoryBytes);
  expect(ok.body.memory.peakBytes).toBeGreaterThanOrEqual(ok.body.memory.usedBytes);
  // A limit just above what is used: over 90 % of it.
  await redis.config("SET", "maxmemory", String(Math.ceil(ok.body.memory.usedBytes * 1.05)));
  try {
    const near = await request(app({ redis })).get("/health");
    expect(near.status).toBe(503);
    expect(near.body.status).toBe("degraded");
    expect(near.body.error).toMatch(/used memory is \d+ % of maxmemory/);
    expect(near.body.memory.usedRatio).toBeGreaterThan(0.9);
    // With an eviction policy, sitting near the limit is what a cache does: still ok.
    await redis.config("SET", "maxmemory-policy", "allkeys-lru");
    const evicting = await request(app({ redis })).get("/health");
    expect(evicting.status).toBe(200);
    expect(evicting.body.memory.policy).toBe("allkeys-lru");
  } finally {
    await redis.config("SET", "maxmemory-policy", "noeviction");
    await redis.config("SET", "maxmemory", "0");
    await redis.flushall();
  }
});

it("rejects bad options", () => {
  expect(() => redisHealth({ timeoutMs: 0 })).toThrow(
    /redisHealth: timeoutMs must be a positive integer \(got 0\)/,
  );
  expect(() => redisHealth({ timeout: 5 } as never)).toThrow(
    /unknown option "timeout"; did you mean "timeoutMs"\?/,
  );
});

it("tells Valkey from Redis by INFO's server_name (Valkey 8 INFO server, abridged)", () => {
  const valkey = parseInfo(
    "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\nredis_mode:standalone\r\n",
  );
  expect(serverFlavour(valkey)).toBe("valkey");
  expect(valkey.valkey_version).toBe("8.0.1");
  expect(serverFlavour(parseInfo("# Server\r\nredis_version:7.0.15\r\n"))).toBe("redis");
});
