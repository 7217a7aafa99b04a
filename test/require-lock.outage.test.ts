/**
 * requireLock() when Redis stops, on a redis-server of this file's own: `onRedisError:
 * "closed"` answers 503 with Retry-After (within the middleware's own timeoutMs, then without
 * waiting), `"open"` runs the handler without a lock; after the restart both lock on Redis
 * again with the same middleware.
 */
import type { RequestHandler } from "express";
import type { Redis } from "ioredis";
import request from "supertest";
import { requireLock } from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  createApp,
  eventually,
  newRedis,
  ready,
  recordingLogger,
  testPrefix,
  wait,
} from "./helpers.js";

const TIMEOUT_MS = 300; // below the default 1000: proves the option reaches the manager
const RECHECK_MS = 1500;
const MARGIN_MS = 400;
const FAST_MS = TIMEOUT_MS / 2;
const prefix = testPrefix(__filename);
let server: RedisServer;
let admin: Redis;
const unhandled = collectUnhandledRejections();

beforeAll(async () => {
  server = await startRedisServer();
  admin = newRedis(server.url);
});
afterAll(async () => {
  await closeClients();
  await server.stop();
});
afterEach(() => expect(unhandled).toEqual([]));

async function timedPost(app: Parameters<typeof request>[0], path: string) {
  const started = Date.now();
  const res = await request(app).post(path);
  return { res, ms: Date.now() - started, at: Date.now() };
}

it("Redis stopped: closed answers 503 with Retry-After, open runs unlocked; both lock on Redis after the restart", async () => {
  // A client that queues commands while Redis is down (only the deadline ends a wait) and
  // reconnects every 50 ms.
  const redis = newRedis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
  const logs = { closed: recordingLogger(), open: recordingLogger() };
  const options = { redis, timeoutMs: TIMEOUT_MS, recheckMs: RECHECK_MS, key: () => "r" };
  const closed = requireLock({ ...options, prefix: `${prefix}c:`, logger: logs.closed });
  const open = requireLock({
    ...options,
    prefix: `${prefix}o:`,
    onRedisError: "open",
    logger: logs.open,
  });
  let runs = 0;
  const app = createApp();
  /** Answers whether the request holds a lock, and whether Redis holds that lock's token. */
  const handler =
    (lockPrefix: string): RequestHandler =>
    async (req, res) => {
      runs++;
      const held =
        req.lock === undefined ? null : (await admin.get(`${lockPrefix}{r}`)) === req.lock.token;
      res.json({ locked: req.lock !== undefined, held });
    };
  app.post("/closed", closed, handler(`${prefix}c:`));
  app.post("/open", open, handler(`${prefix}o:`));

  // On Redis: both hold the lock, which is the key in Redis with the request's token.
  expect((await request(app).post("/closed")).body).toEqual({ locked: true, held: true });
  expect((await request(app).post("/open")).body).toEqual({ locked: true, held: true });
  expect(runs).toBe(2);

  await server.stop();
  // closed: 503 within timeoutMs, then 503 at once while Redis is known to be failing.
  const first = await timedPost(app, "/closed");
  expect(first.res.status).toBe(503);
  expect(first.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  expect(first.res.body).toEqual({ error: "Service Unavailable", code: "ERK_STORE_UNAVAILABLE" });
  const retryAfter = Number(first.res.headers["retry-after"]);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(Math.ceil(RECHECK_MS / 1000));
  const second = await timedPost(app, "/closed");
  expect(second.res.status).toBe(503);
  expect(second.res.headers["retry-after"]).toMatch(/^[12]$/);
  expect(second.ms).toBeLessThan(FAST_MS);
  // open: the handler runs, without a lock (first after the deadline, then at once).
  const unlocked = await timedPost(app, "/open");
  expect(unlocked.res.status).toBe(200);
  expect(unlocked.res.body).toEqual({ locked: false, held: null });
  expect(unlocked.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  const again = await timedPost(app, "/open");
  expect(again.res.body).toEqual({ locked: false, held: null });
  expect(again.ms).toBeLessThan(FAST_MS);
  expect(runs).toBe(4); // closed never ran the handler
  // Each middleware's manager logged the outage once, under requireLock, in its own mode.
  expect(logs.closed.lines).toEqual([
    expect.stringMatching(/^warn requireLock: Redis unavailable \(.+\); rejecting requests/),
  ]);
  expect(logs.open.lines).toEqual([
    expect.stringMatching(/^warn requireLock: Redis unavailable \(.+\); letting requests through/),
  ]);

  // Once the probe is due (still down), a probe (this request's, or the switch's own PING)
  // waits at most this middleware's timeoutMs, not the default 1000 ms.
  await wait(Math.max(0, first.at + RECHECK_MS - Date.now()) + 20);
  const probe = await timedPost(app, "/closed");
  expect(probe.res.status).toBe(503);
  expect(probe.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);

  // Restarted: the same middlewares lock on Redis again once their next probe is due.
  await server.start();
  await ready(redis);
  await ready(admin);
  // Each comes back within its recheckMs (a request's probe or the switch's own PING).
  for (const path of ["/closed", "/open"]) {
    await eventually(`${path} locks on Redis again`, async () => {
      expect((await request(app).post(path)).body).toEqual({ locked: true, held: true });
    });
  }
  expect(runs).toBeGreaterThanOrEqual(6); // /open may run unlocked until its probe is due
  for (const log of [logs.closed, logs.open]) {
    expect(log.lines.filter((l) => l.startsWith("info"))).toEqual([
      "info requireLock: Redis answers again; back on Redis",
    ]);
  }
  // Released after each response (the release is sent on "finish", which may come after the
  // client has read the response).
  await eventually("both locks released", async () => {
    expect(await admin.exists(`${prefix}c:{r}`, `${prefix}o:{r}`)).toBe(0);
  });
  await closed.locks.close();
  await open.locks.close();
});
