/**
 * Redis Sentinel (1 master, 1 replica, 3 sentinels) through ioredis and node-redis, each client
 * built by createRedisClient({ sentinel }): every feature works, then after a SENTINEL FAILOVER
 * and then after a SIGKILL of the master, every feature works again through the promoted master
 * without a new client, pub/sub resubscribes (onResubscribed) and health names the new master.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import express from "express";
import request from "supertest";
import {
  cacheResponse,
  checkRedisHealth,
  closeRedisClient,
  createLockManager,
  createPubSub,
  createRateLimiter,
  createRedisClient,
  createSessionStore,
  type RedisClient,
} from "../index.js";
import { type RedisSentinelGroup, startRedisSentinel } from "./harness/redis-sentinel.ts";
import { collectUnhandledRejections, eventually, quiet, testPrefix } from "./helpers.js";

const run = promisify(execFile);
const unhandled = collectUnhandledRejections();

describe.each(["ioredis", "node-redis"] as const)("Sentinel through %s", (family) => {
  let group: RedisSentinelGroup;
  let redis: RedisClient;
  const prefix = testPrefix(`${__filename}-${family}`);
  let resubscribed = 0;
  let features: ReturnType<typeof build>;

  function build() {
    const limiter = createRateLimiter({
      redis,
      prefix: `${prefix}rl:`,
      limit: 1_000_000,
      windowMs: 60_000,
      onRedisError: "closed", // a success below is Redis's, never a fallback's
      timeoutMs: 2000,
      logger: quiet,
    });
    const locks = createLockManager({ redis, prefix: `${prefix}lock:`, logger: quiet });
    const sessions = createSessionStore({
      redis,
      prefix: `${prefix}s:`,
      indexPrefix: `${prefix}u:`,
    });
    const pubsub = createPubSub({ redis, logger: quiet, onResubscribed: () => resubscribed++ });
    const received: string[] = [];
    const app = express();
    let calls = 0;
    const cache = cacheResponse({
      redis,
      prefix: `${prefix}c:`,
      ttlMs: 60_000,
      timeoutMs: 2000,
      logger: quiet,
    });
    app.get("/c/:id", cache, (_req, res) => {
      calls++;
      res.json({ calls });
    });
    return { limiter, locks, sessions, pubsub, received, app, cache };
  }

  let round = 0;
  /** Every feature once, on Redis; throws at the first that does not work. */
  async function basics(masterPort: number) {
    const r = round++;
    const { limiter, locks, sessions, pubsub, received, app, cache } = features;
    const consumed = await limiter.consume(`k${r}`);
    expect(consumed).toMatchObject({ allowed: true, backend: "redis" });
    const lock = await locks.acquire(`r${r}`, { ttlMs: 5000 });
    expect(await lock.release()).toBe(true);
    const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) };
    await sessions.set(`sid${r}`, { cookie, userId: "alice" } as never);
    expect(await sessions.get(`sid${r}`)).toMatchObject({ userId: "alice" });
    // One Host: supertest listens on a new port per request, and the port is part of the key.
    const first = await request(app).get(`/c/${r}`).set("Host", "app.test");
    expect(first.headers["x-cache"]).toBe("MISS");
    await cache.idle(); // the entry is stored as the response ends
    const second = await request(app).get(`/c/${r}`).set("Host", "app.test");
    expect(second.headers["x-cache"]).toBe("HIT");
    const message = `m${r}`;
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${message} not received`)), 2000);
      const poll = setInterval(() => {
        if (received.includes(message)) {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    await pubsub.publish(`${prefix}events`, message);
    await arrived;
    const health = await checkRedisHealth(redis, { timeoutMs: 2000, degradedLatencyMs: 1000 });
    expect(health).toMatchObject({
      status: "ok",
      mode: "sentinel",
      client: family,
      master: `127.0.0.1:${masterPort}`,
    });
  }

  /** `work`, failing with the client's connection state added to the message. */
  async function withState(work: Promise<void>) {
    try {
      await work;
    } catch (err) {
      const c = redis as { status?: string; isReady?: boolean };
      const state = family === "ioredis" ? `status ${c.status}` : `isReady ${c.isReady}`;
      throw new Error(`${(err as Error).message} [client ${state}]`);
    }
  }

  beforeAll(async () => {
    group = await startRedisSentinel();
    redis = createRedisClient({
      client: family,
      sentinel: { name: group.name, nodes: group.sentinels },
      timeoutMs: 1000,
      logger: quiet,
    });
    features = build();
    await features.pubsub.subscribe(`${prefix}events`, (m) => {
      features.received.push(m.data as string);
    });
  }, 60_000);

  afterAll(async () => {
    await features?.cache.close();
    await features?.locks.close();
    await features?.sessions.close();
    await features?.pubsub.close();
    if (redis !== undefined) closeRedisClient(redis);
    await group?.stop();
  });

  it("every feature works through the master Sentinel names", async () => {
    await basics(await group.masterPort());
  });

  it("after SENTINEL FAILOVER, every feature works through the promoted master", async () => {
    const before = await group.masterPort();
    const resubscribedBefore = resubscribed;
    await run("redis-cli", [
      "-p",
      String(group.sentinels[0]!.port),
      "sentinel",
      "failover",
      group.name,
    ]);
    const after = await group.waitForNewMaster(before);
    await eventually("features after SENTINEL FAILOVER", () => withState(basics(after)));
    expect(resubscribed).toBeGreaterThan(resubscribedBefore);
  }, 60_000);

  it("after a SIGKILL of the master, every feature works through the promoted master", async () => {
    const before = await group.masterPort();
    const resubscribedBefore = resubscribed;
    const victim = group.servers.find((s) => s.port === before)!;
    await victim.signal("SIGKILL");
    const after = await group.waitForNewMaster(before);
    await eventually("features after SIGKILL", () => withState(basics(after)));
    expect(resubscribed).toBeGreaterThan(resubscribedBefore);
    expect(unhandled).toEqual([]);
  }, 60_000);
});
