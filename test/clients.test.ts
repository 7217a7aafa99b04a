/**
 * Which clients every feature accepts, by shape: ioredis 5 and 6, iovalkey, node-redis 5 and 6
 * (RESP2 and RESP3); clear errors for a client of the wrong shape, a node-redis client that was
 * never connected, and a closed client; createRedisClient({ client: "node-redis" }).
 */
import { Redis as Ioredis5 } from "ioredis5";
import { Redis as Iovalkey } from "iovalkey";
import { createClient, createCluster } from "redis";
import { createClient as createClient5, createCluster as createCluster5 } from "redis5";
import request from "supertest";
import {
  closeRedisClient,
  createLockManager,
  createPubSub,
  createRateLimiter,
  createRedisClient,
  InvalidOptionError,
  isCluster,
  type RedisClient,
  rateLimit,
  redisHealth,
  StoreUnavailableError,
} from "../index.js";
import { freePort } from "./harness/redis-server.ts";
import {
  closeClients,
  clusterNodes,
  createApp,
  inspectorFor,
  newRedis,
  quiet,
  redisUrl,
  testPrefix,
} from "./helpers.js";

const prefix = testPrefix(__filename);
let n = 0;
const made: RedisClient[] = [];
afterAll(async () => {
  for (const client of made) closeRedisClient(client);
  await closeClients();
});

/** 150 consumes at limit 100 on `redis` count exactly 100 allowed; the key is in Redis. */
async function exactCount(redis: RedisClient) {
  const p = `${prefix}${n++}:`;
  const limiter = createRateLimiter({
    redis,
    prefix: p,
    limit: 100,
    windowMs: 60_000,
    logger: quiet,
    onRedisError: "closed",
    timeoutMs: 5000,
  });
  const results = await Promise.all(Array.from({ length: 150 }, () => limiter.consume("k")));
  expect(results.filter((r) => r.allowed)).toHaveLength(100);
  expect(new Set(results.map((r) => r.backend))).toEqual(new Set(["redis"]));
  const inspector = inspectorFor("standalone")!;
  expect(await inspector.exists(`${p}{k}:w0`)).toBe(1);
}

describe("accepted clients", () => {
  it("ioredis 5: limits and locks work", async () => {
    const redis = new Ioredis5(redisUrl(), { autoResendUnfulfilledCommands: false });
    made.push(redis);
    await exactCount(redis);
    const locks = createLockManager({ redis, prefix: `${prefix}${n++}:`, logger: quiet });
    const lock = await locks.acquire("r");
    expect(lock.fence).toBeGreaterThan(0);
    expect(await lock.release()).toBe(true);
    await locks.close();
  });

  it.each([
    ["node-redis 5 (RESP2)", () => createClient5({ url: redisUrl() })],
    ["node-redis 6 (RESP3, its default)", () => createClient({ url: redisUrl() })],
    ["node-redis 6 with RESP: 2", () => createClient({ url: redisUrl(), RESP: 2 })],
  ])("%s: exact counts, locks with fences, health", async (_name, make) => {
    const redis = make();
    await redis.connect();
    made.push(redis as RedisClient);
    await exactCount(redis as RedisClient);
    const locks = createLockManager({
      redis: redis as RedisClient,
      prefix: `${prefix}${n++}:`,
      logger: quiet,
    });
    const first = await locks.acquire("r");
    await expect(locks.acquire("r")).rejects.toThrow(/not acquired|held/i);
    expect(await first.release()).toBe(true);
    const second = await locks.acquire("r");
    expect(second.fence).toBeGreaterThan(first.fence);
    await second.release();
    await locks.close();
    const app = createApp();
    app.get("/h", redisHealth({ redis: redis as RedisClient }));
    const res = await request(app).get("/h").expect(200);
    expect(res.body).toMatchObject({ client: "node-redis", mode: "standalone", server: "redis" });
  });
});

describe("clear errors", () => {
  it.each([
    ["a plain object", {}, /got an object with keys \[\]/],
    ["a string", "redis://localhost", /got "redis:\/\/localhost"/],
    ["a Map", new Map(), /got a Map/],
  ])("%s is refused at construction, naming the option and what is accepted", (_n, value, got) => {
    for (const make of [
      () => rateLimit({ redis: value as never, limit: 1, windowMs: 1000 }),
      () => createLockManager({ redis: value as never }),
    ]) {
      let error: unknown;
      try {
        make();
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InvalidOptionError);
      const message = (error as Error).message;
      expect(message).toMatch(/redis must be an ioredis 5\/6 or iovalkey Redis or Cluster client/);
      expect(message).toMatch(/node-redis 5\/6 client from createClient\(\), createCluster\(\)/);
      expect(message).toMatch(got);
    }
  });

  it("a node-redis client never connected: refused at construction, saying so", () => {
    const redis = createClient({ url: redisUrl() });
    expect(() => createRateLimiter({ redis, limit: 1, windowMs: 1000 })).toThrow(
      /createRateLimiter: redis: the node-redis client is not connected \(isOpen is false\): call `await client.connect\(\)`/,
    );
  });

  it("a closed client: refused at construction; closed after construction: a clear error on use, no hang", async () => {
    const nodeRedis = createClient({ url: redisUrl() });
    await nodeRedis.connect();
    const limiter = createRateLimiter({
      redis: nodeRedis,
      prefix: `${prefix}${n++}:`,
      limit: 5,
      windowMs: 1000,
      onRedisError: "closed",
      logger: quiet,
    });
    expect((await limiter.consume("k")).allowed).toBe(true);
    nodeRedis.destroy();
    await expect(limiter.consume("k")).rejects.toThrow(
      /Redis unavailable \(The client is closed\)/,
    );
    expect(() => createRateLimiter({ redis: createClient(), limit: 1, windowMs: 1 })).toThrow(
      /not connected/,
    );

    const ioredis = newRedis();
    await ioredis.ping();
    ioredis.disconnect();
    await new Promise((resolve) => ioredis.once("end", resolve));
    expect(() => createRateLimiter({ redis: ioredis, limit: 1, windowMs: 1000 })).toThrow(
      /createRateLimiter: redis: the ioredis client was closed \(status end\)/,
    );
  });
});

it("a node-redis Cluster that never connects: calls fail within the deadline, never hang", async () => {
  const cluster = createCluster({
    rootNodes: [
      { socket: { host: "127.0.0.1", port: await freePort(), reconnectStrategy: false } },
    ],
  });
  cluster.on("error", () => {});
  const connecting = cluster.connect().catch(() => {});
  const limiter = createRateLimiter({
    redis: cluster,
    limit: 5,
    windowMs: 1000,
    onRedisError: "closed",
    timeoutMs: 200,
    logger: quiet,
  });
  const started = performance.now();
  await expect(limiter.consume("k")).rejects.toThrow(StoreUnavailableError);
  expect(performance.now() - started).toBeLessThan(1000);
  await connecting;
});

describe('createRedisClient({ client: "node-redis" })', () => {
  const saved = process.env.REDIS_CLIENT;
  afterEach(() => {
    if (saved === undefined) delete process.env.REDIS_CLIENT;
    else process.env.REDIS_CLIENT = saved;
  });

  it("builds a connected node-redis client with the fail-fast options", async () => {
    const redis = createRedisClient<ReturnType<typeof createClient>>({
      client: "node-redis",
      url: redisUrl(),
      timeoutMs: 300,
      logger: quiet,
    });
    made.push(redis);
    expect(redis.isOpen).toBe(true);
    expect(isCluster(redis)).toBe(false);
    expect(redis.options).toMatchObject({
      socket: { connectTimeout: 300 },
      commandOptions: { timeout: 300 },
    });
    await exactCount(redis);
  });

  it("REDIS_CLIENT picks the library; a bad value is named with a hint", () => {
    process.env.REDIS_CLIENT = "node-redis";
    const redis = createRedisClient({ url: redisUrl(), logger: quiet });
    made.push(redis);
    expect("isOpen" in redis).toBe(true);
    process.env.REDIS_CLIENT = "noderedis";
    expect(() => createRedisClient({ url: redisUrl() })).toThrow(
      /createRedisClient: REDIS_CLIENT must be one of "ioredis", "node-redis"; did you mean "node-redis"\? \(got "noderedis"\)/,
    );
  });

  it("a node-redis client on a dead port fails a command within its timeout, logging one line", async () => {
    const lines: string[] = [];
    const redis = createRedisClient<ReturnType<typeof createClient>>({
      client: "node-redis",
      url: "redis://127.0.0.1:1",
      timeoutMs: 200,
      logger: { ...quiet, warn: (line: string) => lines.push(line) },
    });
    made.push(redis);
    const started = performance.now();
    await expect(redis.ping()).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(1000);
    await new Promise((resolve) => setTimeout(resolve, 300)); // reconnect attempts happen
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThanOrEqual(2); // the failed connect and the error event
  });
});

it("iovalkey with keyPrefix: block() and reset() reach the keys consume() uses", async () => {
  const redis = new Iovalkey(redisUrl(), { keyPrefix: `${prefix}kp:` });
  made.push(redis);
  const limiter = createRateLimiter({
    redis,
    prefix: "rl:",
    limit: 5,
    windowMs: 60_000,
    logger: quiet,
  });
  await limiter.block("k", 60_000);
  expect((await limiter.consume("k")).allowed).toBe(false);
  await limiter.reset("k");
  expect((await limiter.consume("k")).allowed).toBe(true);
  expect(await inspectorFor("standalone")!.exists(`${prefix}kp:rl:{k}:w0`)).toBe(1);
});

it("node-redis 5 Cluster (no isReady getter): scripts, commands and publish work", async () => {
  const cluster = createCluster5({ rootNodes: clusterNodes().map((socket) => ({ socket })) });
  await cluster.connect();
  made.push(cluster as unknown as RedisClient);
  const limiter = createRateLimiter({
    redis: cluster as unknown as RedisClient,
    prefix: `${prefix}${n++}:`,
    limit: 5,
    windowMs: 60_000,
    onRedisError: "closed",
    timeoutMs: 2000,
    logger: quiet,
  });
  expect(await limiter.consume("k")).toMatchObject({ allowed: true, backend: "redis" });
  await limiter.reset("k");
  const pubsub = createPubSub({ redis: cluster as unknown as RedisClient, logger: quiet });
  expect(await pubsub.publish(`${prefix}ch`, 1)).toBeGreaterThanOrEqual(0);
  await pubsub.close();
});
