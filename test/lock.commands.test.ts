/**
 * What the lock scripts run inside Redis, on a redis-server of this file's own (INFO
 * commandstats counts the commands a script calls): an uncontended acquire + release is two
 * EVALSHA running at most 6 commands, with no PUBLISH; with a waiter the release publishes the
 * pub/sub envelope and the waiter takes the lock. Fences keep increasing when the counter
 * expires.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import express from "express";
import type { Redis } from "ioredis";
import request from "supertest";
import { createLockManager, type Lock, type LockManager, requireLock } from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { closeClients, eventually, newRedis, quiet, testPrefix } from "./helpers.js";

const prefix = testPrefix(__filename);
let server: RedisServer;
let admin: Redis;
const managers: LockManager[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  admin = newRedis(server.url);
});
afterAll(async () => {
  for (const m of managers) await m.close();
  await closeClients();
  await server.stop();
});

/** A manager on a connection of its own that has run its scripts once (EVALSHA from then on). */
async function manager(p = prefix) {
  const m = createLockManager({ redis: newRedis(server.url), prefix: p, logger: quiet });
  managers.push(m);
  await (await m.acquire("warm")).release();
  return m;
}

/** Calls per command since the last CONFIG RESETSTAT, without the admin's INFO and CONFIG. */
async function commands(): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  const calls: Record<string, number> = {};
  for (const [, name, n] of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (name !== "info" && !name!.startsWith("config")) calls[name!] = Number(n);
  }
  return calls;
}

/** The commands `fn` sends and its scripts run (nothing else talks to this server meanwhile). */
async function counted(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  await admin.config("RESETSTAT");
  await fn();
  return commands();
}

/** Sums the calls of every command but EVALSHA: what the scripts ran. */
const inside = (calls: Record<string, number>) =>
  Object.entries(calls).reduce((sum, [name, n]) => (name === "evalsha" ? sum : sum + n), 0);

it("lock manager: an uncontended acquire + release is 2 EVALSHA running 6 commands (new counter) or 5", async () => {
  const locks = await manager();
  const fresh = await counted(async () => {
    const lock = await locks.acquire("fresh");
    expect(await lock.release()).toBe(true);
  });
  // No waiters and no counter yet: EXISTS, SET lock, TIME, SET counter; GET, DEL.
  expect(fresh).toEqual({ evalsha: 2, exists: 1, set: 2, time: 1, get: 1, del: 1 });
  expect(inside(fresh)).toBe(6);
  const again = await counted(async () => {
    const lock = await locks.acquire("fresh");
    expect(await lock.release()).toBe(true);
  });
  // The counter exists: EXISTS, SET lock, INCR; GET, DEL.
  expect(again).toEqual({ evalsha: 2, exists: 1, set: 1, incr: 1, get: 1, del: 1 });
  expect(inside(again)).toBe(5);
});

it("requireLock: an uncontended request is 2 EVALSHA running at most 6 commands", async () => {
  const guard = requireLock({
    redis: newRedis(server.url),
    prefix,
    key: (req) => String(req.query.id),
    logger: quiet,
  });
  managers.push(guard.locks);
  const app = express();
  app.post("/", guard, (req, res) => void res.json({ fence: req.lock?.fence }));
  const http = app.listen(0, "127.0.0.1");
  await once(http, "listening");
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  try {
    expect((await request(url).post("/?id=warm")).status).toBe(200);
    let fence = 0;
    const calls = await counted(async () => {
      const res = await request(url).post("/?id=r1");
      expect(res.status).toBe(200);
      fence = res.body.fence;
      // The release runs on 'finish', after the answer: wait until Redis has run it.
      await eventually("released", async () => {
        expect((await commands()).evalsha).toBe(2);
      });
    });
    expect(fence).toBeGreaterThan(0);
    expect(calls).toEqual({ evalsha: 2, exists: 1, set: 2, time: 1, get: 1, del: 1 });
    expect(inside(calls)).toBe(6);
    expect(await admin.exists(`${prefix}{r1}`)).toBe(0);
  } finally {
    http.closeAllConnections();
    http.close();
  }
});

it("negative control: with a waiter, the release deletes the wake key and publishes the envelope; the waiter gets the lock", async () => {
  const p = `${prefix}w:`;
  const locks = await manager(p);
  const listener = newRedis(server.url);
  const messages: string[] = [];
  await listener.subscribe(`${p}released`);
  listener.on("message", (_channel: string, message: string) => messages.push(message));
  const holder = await locks.acquire("busy", { ttlMs: 20_000 });
  let resolved = false;
  const waiting = locks.acquire("busy", { waitMs: 10_000 }).then((lock) => {
    resolved = true;
    return lock;
  });
  await eventually("the waiter asked", async () => {
    expect(await admin.exists(`${p}{busy}:wake`)).toBe(1);
  });
  expect(await admin.zcard(`${p}{busy}:waiters`)).toBe(1);
  await eventually("the waiter listens for releases", async () => {
    expect(await admin.pubsub("NUMSUB", `${p}released`)).toEqual([`${p}released`, 2]);
  });
  expect(resolved).toBe(false);
  let lock!: Lock;
  const calls = await counted(async () => {
    expect(await holder.release()).toBe(true);
    lock = await waiting;
  });
  // On a loaded machine the waiter may renew its lease (a failed try: ZADD, PEXPIRE, the wake
  // key, PTTL) inside the counted window; each renewal is counted exactly.
  const renewals = calls.zadd ?? 0;
  const renewal = {
    evalsha: 1,
    exists: 1,
    time: 1,
    zremrangebyscore: 1,
    set: 2,
    pexpire: 1,
    pttl: 1,
  };
  const expected: Record<string, number> = {
    evalsha: 2,
    // the release: GET, DEL of the lock and the wake key, PUBLISH
    get: 1,
    del: 1,
    publish: 1,
    // the waiter's try on wake-up: its lease is there, so the slow path; the lock; the counter
    exists: 1,
    time: 1,
    zremrangebyscore: 1,
    set: 1,
    zrem: 1,
    incr: 1,
  };
  if (renewals > 0) {
    expected.zadd = renewals;
    for (const [name, n] of Object.entries(renewal))
      expected[name] = (expected[name] ?? 0) + n * renewals;
  }
  expect(calls).toEqual(expected);
  expect(lock.fence).toBe(holder.fence + 1);
  // The waiter took the lock and dropped its lease in the same script.
  expect(await admin.get(`${p}{busy}`)).toBe(lock.token);
  expect(await admin.exists(`${p}{busy}:waiters`, `${p}{busy}:wake`)).toBe(0);
  await eventually("the message arrived", async () => {
    expect(messages).toHaveLength(1);
  });
  const envelope = JSON.parse(messages[0]!);
  expect(envelope).toEqual({
    id: expect.stringMatching(/^[0-9a-f]{40}$/),
    type: "lock.released",
    timestamp: expect.any(Number),
    origin: expect.any(String),
    data: { key: `${p}{busy}` },
  });
  expect(envelope.id).not.toContain(holder.token);
  // Nobody waits now: this release publishes nothing.
  const quietRelease = await counted(async () => {
    expect(await lock.release()).toBe(true);
  });
  expect(quietRelease).toEqual({ evalsha: 1, get: 1, del: 1 });
  expect(messages).toHaveLength(1);
});

it("a caller that does not wait yields a free lock to a live waiter lease (the slow path)", async () => {
  const p = `${prefix}y:`;
  const locks = await manager(p);
  // A live lease of another process's waiter, as the acquire script writes it.
  const [seconds] = await admin.time();
  await admin.zadd(`${p}{y}:waiters`, Number(seconds) * 1000 + 60_000, "someone");
  await admin.pexpire(`${p}{y}:waiters`, 60_000);
  const calls = await counted(() =>
    expect(locks.acquire("y")).rejects.toMatchObject({ name: "LockNotAcquiredError" }),
  );
  expect(calls).toEqual({ evalsha: 1, exists: 1, time: 1, zremrangebyscore: 1, zcard: 1, pttl: 1 });
  expect(await admin.exists(`${p}{y}`)).toBe(0);
  // Negative control: the lease gone, the same call takes the lock.
  await admin.del(`${p}{y}:waiters`);
  const lock = await locks.acquire("y");
  expect(await lock.release()).toBe(true);
});

it("fences: the counter lives a day from its first acquisition; after it expires the next fence is larger", async () => {
  const p = `${prefix}f:`;
  const locks = await manager(p);
  const fenceKey = `${p}{f}:fence`;
  const [s0, us0] = await admin.time();
  const first = await locks.acquire("f");
  await first.release();
  // A new counter starts at Redis's clock in microseconds.
  expect(first.fence).toBeGreaterThanOrEqual(Number(s0) * 1e6 + Number(us0));
  expect(await admin.get(fenceKey)).toBe(String(first.fence));
  const ttl = await admin.pttl(fenceKey);
  expect(ttl).toBeGreaterThan(86_400_000 - 60_000);
  const second = await locks.acquire("f");
  await second.release();
  expect(second.fence).toBe(first.fence + 1);
  // The TTL runs from the first acquisition: the second did not renew it.
  expect(await admin.pttl(fenceKey)).toBeLessThanOrEqual(ttl);
  await admin.pexpire(fenceKey, 1);
  await eventually("the counter expired", async () => {
    expect(await admin.exists(fenceKey)).toBe(0);
  });
  const third = await locks.acquire("f");
  await third.release();
  expect(third.fence).toBeGreaterThan(second.fence);
  // Negative control: had the counter restarted from 1, fences would have gone back.
  expect(third.fence).toBeGreaterThan(2);
});

it("a client keyPrefix: the release message names the key as the manager does, so its waiter is the one woken", async () => {
  const p = `${prefix}kp:`;
  const locks = createLockManager({
    redis: newRedis(server.url, { keyPrefix: "client:" }),
    prefix: p,
    logger: quiet,
  });
  managers.push(locks);
  const listener = newRedis(server.url);
  const messages: string[] = [];
  await listener.subscribe(`${p}released`);
  listener.on("message", (_channel: string, message: string) => messages.push(message));
  const holder = await locks.acquire("k", { ttlMs: 20_000 });
  const waiting = locks.acquire("k", { waitMs: 10_000 });
  await eventually("the waiter asked", async () => {
    expect(await admin.exists(`client:${p}{k}:wake`)).toBe(1);
  });
  expect(await holder.release()).toBe(true);
  await (await waiting).release();
  await eventually("the message arrived", async () => {
    expect(messages).toHaveLength(1);
  });
  expect(JSON.parse(messages[0]!).data).toEqual({ key: `${p}{k}` });
});
