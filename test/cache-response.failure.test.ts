/**
 * cacheResponse() while Redis fails in the middle of traffic (shut down, CLIENT PAUSE) on a
 * redis-server of this file's own: every request is answered by the handler (a miss), none
 * fails or hangs, no unhandled rejection; hits come back after Redis does. Also the pub/sub
 * subscriber's reconnect: the memory tier is dropped and the generation re-read.
 */
import type { Redis } from "ioredis";
import { cacheResponse, createRedisClient } from "../index.js";
import { type CacheApp, closeServers, quiet, serve } from "./cache-helpers.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { closeClients, collectUnhandledRejections, ready, testPrefix, wait } from "./helpers.js";

const prefix = testPrefix(__filename);
let server: RedisServer;
let redis: Redis;
let admin: Redis;
const unhandled = collectUnhandledRejections();

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedisClient<Redis>({
    url: server.url,
    logger: quiet,
    redisOptions: { disconnectTimeout: 100 },
  }) as Redis;
  admin = createRedisClient<Redis>({ url: server.url, logger: quiet }) as Redis;
});
afterAll(async () => {
  await closeServers();
  await closeClients();
  redis.disconnect();
  admin.disconnect();
  await server.stop();
});
afterEach(() => expect(unhandled).toEqual([]));

async function app(name: string, extra = {}): Promise<CacheApp> {
  return serve(
    { redis, prefix: `${prefix}${name}:`, timeoutMs: 50, ...extra },
    {
      "/r": (_req, res) => void res.json({ at: Date.now() }),
    },
  );
}

/** Sends `count` requests, `gapMs` apart; returns their statuses, X-Cache values and durations. */
async function traffic(a: CacheApp, count: number, gapMs: number) {
  const out: { status: number; xCache: string; ms: number }[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const res = await a.get("/r");
    out.push({
      status: res.status,
      xCache: String(res.headers["x-cache"]),
      ms: performance.now() - started,
    });
    await wait(gapMs);
  }
  return out;
}

it("Redis shut down mid-traffic: every request answered by the handler, then hits again after restart", async () => {
  const a = await app("shutdown");
  await a.get("/r");
  expect((await a.get("/r")).headers["x-cache"]).toBe("HIT");
  await server.stop();
  const during = await traffic(a, 30, 10);
  expect(during.every((r) => r.status === 200)).toBe(true);
  expect(during.every((r) => r.xCache === "MISS" || r.xCache === "BYPASS")).toBe(true);
  expect(Math.max(...during.map((r) => r.ms))).toBeLessThan(1000);
  expect(a.calls.get("/r")).toBe(1 + 30);
  expect(a.cache.stats().state).toBe("degraded");
  await server.start();
  await ready(redis);
  // Recovery is noticed by traffic: one probe per second while degraded.
  let res = await a.get("/r");
  for (let i = 0; i < 40 && res.headers["x-cache"] !== "HIT"; i++) {
    await wait(100);
    res = await a.get("/r");
  }
  expect(res.headers["x-cache"]).toBe("HIT");
  expect(a.cache.stats().state).toBe("redis");
});

it("onRedisError closed: 503 with Retry-After while Redis is down, the handler never runs; back on Redis after a restart", async () => {
  const a = await app("closed", { onRedisError: "closed", recheckMs: 200 });
  await a.get("/r");
  expect((await a.get("/r")).headers["x-cache"]).toBe("HIT");
  await server.stop();
  const during = await traffic(a, 10, 10);
  // Two lone failures are answered as misses (the cache degrades on the third in a row); from
  // then on, 503 without running the handler.
  expect(during.slice(2).map((r) => r.status)).toEqual(Array(8).fill(503));
  expect(Math.max(...during.map((r) => r.ms))).toBeLessThan(1000);
  const one = await a.get("/r");
  expect(one.status).toBe(503);
  expect(Number(one.headers["retry-after"])).toBeGreaterThanOrEqual(1);
  expect(one.body).toEqual({ error: "Service Unavailable", code: "ERK_STORE_UNAVAILABLE" });
  expect(a.calls.get("/r")).toBeLessThanOrEqual(3); // the origin was spared the rest of the outage
  expect(a.cache.stats().state).toBe("degraded");
  await server.start();
  await ready(redis);
  let res = await a.get("/r");
  for (let i = 0; i < 40 && res.status !== 200; i++) {
    await wait(50); // one probe per recheckMs
    res = await a.get("/r");
  }
  expect(res.status).toBe(200);
  expect(a.cache.stats().state).toBe("redis");
});

it("onRedisError: memory is refused for the cache, with the reason", () => {
  expect(() => cacheResponse({ redis, onRedisError: "memory" as never })).toThrow(
    /cacheResponse: onRedisError "memory" is not offered here: a per-process cache would keep serving entries purged/,
  );
  expect(() => cacheResponse({ redis, onRedisError: "closd" as never })).toThrow(
    /onRedisError must be one of "open", "closed" \(got "closd"\)/,
  );
});

it("CLIENT PAUSE longer than timeoutMs: requests fall through to the handler within the deadline", async () => {
  const a = await app("pause");
  await a.get("/r");
  await admin.client("PAUSE", 1500, "WRITE"); // blocks scripts too (EVALSHA may write)
  const during = await traffic(a, 10, 20);
  expect(during.every((r) => r.status === 200)).toBe(true);
  expect(during.every((r) => r.xCache === "MISS")).toBe(true);
  expect(Math.max(...during.map((r) => r.ms))).toBeLessThan(500);
  await admin.client("UNPAUSE");
});

it("Redis slower than timeoutMs during a burst: concurrent misses of one process still run the handler once", async () => {
  const a = await serve(
    { redis, prefix: `${prefix}slow:`, timeoutMs: 50 },
    {
      "/slow": (_req, res) => void setTimeout(() => res.json({ r: Math.random() }), 300),
    },
  );
  await admin.client("PAUSE", 400, "WRITE"); // the lock script waits past timeoutMs
  const results = await Promise.all(Array.from({ length: 10 }, () => a.get("/slow")));
  expect(a.calls.get("/slow")).toBe(1); // the filler hands its response to the waiters in memory
  expect(new Set(results.map((r) => r.text)).size).toBe(1);
  expect(results.filter((r) => r.headers["x-cache"] === "HIT")).toHaveLength(9);
  await admin.client("UNPAUSE");
});

it("after the subscriber reconnects, the memory tier is dropped (messages may have been missed)", async () => {
  const a = await app("tier", { memory: { maxEntries: 100 } });
  const b = await app("tier", { memory: { maxEntries: 100 } });
  await a.get("/r");
  await b.get("/r"); // b's memory tier now holds the entry
  expect((await b.get("/r")).headers["x-cache"]).toBe("HIT");
  // Retire the generation behind the caches' backs (no message): b's first tier still answers.
  await admin.incr(`${prefix}tier:gen`);
  expect((await b.get("/r")).headers["x-cache"]).toBe("HIT");
  // Drop the subscriber connections: on resubscribing, b forgets its first tier and re-reads
  // the generation, so it sees what it could not hear.
  const clients = (await admin.client("LIST")) as string;
  expect(clients.split("\n").filter((line) => / sub=[1-9]/.test(line)).length).toBe(1); // one subscriber connection per client, shared by both caches
  await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
  let res = await b.get("/r");
  for (let i = 0; i < 40 && res.headers["x-cache"] === "HIT"; i++) {
    await wait(50); // reconnecting takes ioredis's back-off; nothing to await from here
    res = await b.get("/r");
  }
  expect(res.headers["x-cache"]).toBe("MISS");
  let again = await b.get("/r");
  for (let i = 0; i < 20 && again.headers["x-cache"] !== "HIT"; i++) again = await b.get("/r");
  expect(again.headers["x-cache"]).toBe("HIT");
});
