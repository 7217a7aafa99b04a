/**
 * Locks when Redis misbehaves, on a redis-server of this file's own: FLUSHALL and CLIENT KILL
 * mid-hold are detected and signalled; Redis down makes acquire fail with
 * StoreUnavailableError and requireLock answer 503 (or let requests through when "open");
 * nothing becomes an unhandled rejection. The failure switch in detail (deadline, refusals
 * without waiting, the probe, the way back): lock.outage.test.ts.
 */
import express from "express";
import type { Redis } from "ioredis";
import request from "supertest";
import {
  createLockManager,
  createRedisClient,
  LockLostError,
  type LockManager,
  requireLock,
  StoreUnavailableError,
} from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  commandCalls,
  newRedis,
  quiet,
  ready,
  testPrefix,
  wait,
} from "./helpers.js";

const prefix = testPrefix(__filename);
let server: RedisServer;
let admin: Redis;
const managers: LockManager[] = [];
const unhandled = collectUnhandledRejections();

beforeAll(async () => {
  server = await startRedisServer();
  admin = newRedis(server.url);
});
afterAll(async () => {
  for (const m of managers) await m.close().catch(() => {});
  await closeClients();
  await server.stop();
});
afterEach(async () => {
  await server.start();
  expect(unhandled).toEqual([]);
});

function manager(redis: Redis) {
  const m = createLockManager({ redis, prefix, logger: quiet, timeoutMs: 300 });
  managers.push(m);
  return m;
}

/** Resolves with the reason `signal` aborts with. */
const abortedWith = (signal: AbortSignal) =>
  new Promise<unknown>((resolve) => signal.addEventListener("abort", () => resolve(signal.reason)));

it("FLUSHALL mid-hold: the next extension finds the lock gone and signals its loss", async () => {
  const locks = manager(newRedis(server.url));
  const lock = await locks.acquire("flush", { ttlMs: 300 });
  const stop = locks.autoExtend(lock);
  const lost = abortedWith(lock.signal);
  await admin.flushall();
  const reason = await lost;
  stop();
  expect(reason).toBeInstanceOf(LockLostError);
  expect((reason as LockLostError).reason).toBe("taken");
  expect(locks.stats().lost).toBe(1);
});

it("CLIENT KILL of the holder's connection: the failed extension signals the loss", async () => {
  // A holder whose connection does not come back (as when its host is cut off).
  const holder = newRedis(server.url, { retryStrategy: () => null });
  const locks = manager(holder);
  const lock = await locks.acquire("killed", { ttlMs: 300 });
  const stop = locks.autoExtend(lock);
  const lost = abortedWith(lock.signal);
  const id = await holder.client("ID");
  await admin.client("KILL", "ID", String(id));
  const reason = await lost;
  stop();
  expect(reason).toBeInstanceOf(LockLostError);
  expect(["extend-failed", "expired"]).toContain((reason as LockLostError).reason);
  // Another client can take the resource once the TTL has run out in Redis.
  const other = manager(newRedis(server.url));
  const next = await other.acquire("killed", { waitMs: 2000 });
  expect(next.fence).toBeGreaterThan(lock.fence);
  await next.release();
});

it("a connection killed and restored within the TTL keeps its lock (ioredis reconnects)", async () => {
  const holder = newRedis(server.url);
  const locks = manager(holder);
  const lock = await locks.acquire("kept", { ttlMs: 1500 });
  const stop = locks.autoExtend(lock);
  const id = await holder.client("ID");
  await admin.client("KILL", "ID", String(id));
  await ready(holder);
  expect(await lock.extend()).toBe(true);
  stop();
  expect(lock.lost).toBe(false);
  expect(await lock.release()).toBe(true);
});

it("an acquire that times out on our side does not leave an orphan lock behind", async () => {
  const locks = manager(newRedis(server.url));
  await admin.client("PAUSE", 600, "WRITE");
  await expect(locks.acquire("orphan", { ttlMs: 20_000 })).rejects.toThrow(StoreUnavailableError);
  // After the pause the acquire runs in Redis, then the release that follows it. A write on
  // another connection returns once the pause is over.
  await newRedis(server.url).set(`${prefix}after-pause`, "1");
  const other = manager(newRedis(server.url));
  const lock = await other.acquire("orphan", { ttlMs: 1000, waitMs: 3000 });
  await lock.release();
});

it("a contended waiter costs one try when it arrives and one per wake-up (INFO commandstats)", async () => {
  const locks = manager(newRedis(server.url));
  const warm = await locks.acquire("rt", { waitMs: 1000 }); // also starts hearing releases
  await warm.release();
  const holder = await locks.acquire("rt", { ttlMs: 20_000 });
  const evalsha = () => commandCalls(admin, "evalsha");
  const before = await evalsha();
  const waiting = locks.acquire("rt", { waitMs: 5000 });
  await holder.release();
  const lock = await waiting;
  await lock.release();
  // try on arrival, holder's release, try on wake-up, waiter's release
  expect((await evalsha()) - before).toBe(4);
});

it("Redis down (createRedisClient): acquire fails with StoreUnavailableError; requireLock answers 503, or lets through when open; back after the next probe", async () => {
  const redis = createRedisClient<Redis>({
    url: server.url,
    logger: quiet,
    redisOptions: { disconnectTimeout: 100 },
  });
  const locks = createLockManager({ redis, prefix, logger: quiet, recheckMs: 300 });
  managers.push(locks);
  const closed = requireLock({ locks, key: () => "k", logger: quiet });
  const open = requireLock({ locks, key: () => "k", onRedisError: "open", logger: quiet });
  const app = express();
  app.post("/closed", closed, (_req, res) => void res.json({ locked: _req.lock !== undefined }));
  app.post("/open", open, (_req, res) => void res.json({ locked: _req.lock !== undefined }));
  await server.stop();
  const started = Date.now();
  await expect(locks.acquire("down")).rejects.toThrow(StoreUnavailableError);
  expect(Date.now() - started).toBeLessThan(1500);
  const refused = await request(app).post("/closed");
  expect(refused.status).toBe(503);
  expect(refused.headers["retry-after"]).toBe("1");
  const through = await request(app).post("/open");
  expect(through.status).toBe(200);
  expect(through.body).toEqual({ locked: false });
  await server.start();
  await ready(redis);
  await wait(350); // the next probe is due within recheckMs of the last failure
  const lock = await locks.acquire("down");
  expect(await admin.get(`${prefix}{down}`)).toBe(lock.token);
  await lock.release();
  expect((await request(app).post("/closed")).body).toEqual({ locked: true });
  redis.disconnect();
});
