/**
 * The one failure model, every feature at once, through each client library: an app with
 * rateLimit (memory, open, closed), cacheResponse (open, closed), requireLock (open, closed),
 * sessions and redisHealth on one redis-server of this file's own. Redis stopped mid-traffic:
 * each mode answers as the README's "When Redis fails" table says, within its deadline; then
 * Redis restarted: every feature is back on Redis (state checked in Redis) without a restart
 * of the app.
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import express, { type Request, type Response } from "express";
import session from "express-session";
import request from "supertest";
import {
  cacheResponse,
  closeRedisClient,
  createRedisClient,
  type OnRedisError,
  type RedisClient,
  rateLimit,
  redisHealth,
  requireLock,
  StoreUnavailableError,
  UserSessionStore,
  unavailableHandler,
} from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { collectUnhandledRejections, eventually, newRedis, quiet, testPrefix } from "./helpers.js";

const TIMEOUT_MS = 150;
const RECHECK_MS = 300;
const MARGIN_MS = 700; // scheduling noise on a shared 2-core machine
const unhandled = collectUnhandledRejections();
let server: RedisServer;

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await server.stop();
});
afterEach(async () => {
  await server.start(); // a no-op when running
  expect(unhandled).toEqual([]);
});

/** The app: one route per feature and mode; `runs` counts handler calls per route. */
function appOn(redis: RedisClient, prefix: string) {
  const failure = { redis, timeoutMs: TIMEOUT_MS, recheckMs: RECHECK_MS, logger: quiet };
  const runs = new Map<string, number>();
  const caches: ReturnType<typeof cacheResponse>[] = [];
  const handler = (name: string) => (req: Request, res: Response) => {
    runs.set(name, (runs.get(name) ?? 0) + 1);
    res.json({ name, locked: req.lock !== undefined });
  };
  const app = express();
  const store = new UserSessionStore({ ...failure, prefix: `${prefix}sess:` });
  app.use(session({ store, secret: "s", resave: false, saveUninitialized: false, name: "sid" }));
  for (const mode of ["memory", "open", "closed"] as const satisfies OnRedisError[]) {
    const limiter = rateLimit({
      ...failure,
      prefix: `${prefix}rl-${mode}:`,
      limit: 3,
      windowMs: 60_000,
      onRedisError: mode,
    });
    app.get(`/rl/${mode}`, limiter, handler(`rl-${mode}`));
  }
  for (const mode of ["open", "closed"] as const) {
    const cache = cacheResponse({ ...failure, prefix: `${prefix}c-${mode}:`, onRedisError: mode });
    caches.push(cache);
    app.get(`/cache/${mode}`, cache, handler(`cache-${mode}`));
    const lock = requireLock({
      ...failure,
      prefix: `${prefix}l-${mode}:`,
      key: () => "r",
      onRedisError: mode,
    });
    app.post(`/lock/${mode}`, lock, handler(`lock-${mode}`));
  }
  app.post("/login", (req, res, next) =>
    req.session.regenerate((err) => {
      if (err) return next(err);
      (req.session as { userId?: string }).userId = "alice";
      res.json({ ok: true });
    }),
  );
  app.get("/me", (req, res) => res.json({ user: (req.session as { userId?: string }).userId }));
  app.get("/health", redisHealth({ redis, timeoutMs: TIMEOUT_MS }));
  app.use(unavailableHandler());
  const stored = () => Promise.all(caches.map((c) => c.idle()));
  return { app, runs, store, stored };
}

/** GETs (or POSTs) `path` `count` times in a row: statuses, Retry-After values, slowest ms. */
async function hit(app: string, path: string, count = 1, post = false, cookie = "") {
  const statuses: number[] = [];
  const retryAfter: (string | undefined)[] = [];
  let slowest = 0;
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const res = await (post ? request(app).post(path) : request(app).get(path)).set(
      "Cookie",
      cookie,
    );
    slowest = Math.max(slowest, performance.now() - started);
    statuses.push(res.status);
    retryAfter.push(res.headers["retry-after"]);
  }
  return { statuses, retryAfter, slowest };
}

describe.each(["ioredis", "node-redis"] as const)("through %s", (family) => {
  it("Redis stopped mid-traffic: every mode as documented, in time; restarted: all back on Redis", async () => {
    const prefix = `${testPrefix(__filename)}${family}:`;
    const redis = createRedisClient({ client: family, url: server.url, logger: quiet });
    const admin = newRedis(server.url);
    const built = appOn(redis, prefix);
    const { runs, store, stored } = built;
    // One listening server: the cache key includes the Host header, port and all.
    const listening = built.app.listen(0, "127.0.0.1");
    await once(listening, "listening");
    const app = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
    try {
      await eventually("the client is connected", async () => {
        expect((await request(app).get("/health")).status).toBe(200);
      });
      // Up: everything on Redis.
      const login = await request(app).post("/login").expect(200);
      const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
      expect((await hit(app, "/rl/memory", 1)).statuses).toEqual([200]);
      expect((await hit(app, "/cache/closed", 1)).statuses).toEqual([200]);
      await stored();
      expect((await hit(app, "/cache/closed", 1)).statuses).toEqual([200]);
      expect(runs.get("cache-closed")).toBe(1); // the second was a hit
      expect((await hit(app, "/lock/closed", 1, true)).statuses).toEqual([200]);
      expect((await request(app).get("/me").set("Cookie", cookie)).body).toEqual({
        user: "alice",
      });

      await server.stop();
      // rateLimit memory: counted in this process, exactly the limit, then 429.
      const memory = await hit(app, "/rl/memory", 5);
      expect(memory.statuses).toEqual([200, 200, 200, 429, 429]);
      // open: no limit at all; closed: 503 with Retry-After.
      expect((await hit(app, "/rl/open", 5)).statuses).toEqual(Array(5).fill(200));
      const rlClosed = await hit(app, "/rl/closed", 2);
      expect(rlClosed.statuses).toEqual([503, 503]);
      expect(rlClosed.retryAfter.every((v) => Number(v) >= 1)).toBe(true);
      expect(runs.get("rl-closed")).toBeUndefined();
      // cacheResponse open: a miss each time (the handler runs); closed: 503, the origin spared.
      const before = runs.get("cache-open") ?? 0;
      expect((await hit(app, "/cache/open", 3)).statuses).toEqual([200, 200, 200]);
      expect(runs.get("cache-open")).toBe(before + 3);
      // The cache degrades on the third failure in a row (two lone ones answer as misses).
      const cacheClosed = await hit(app, "/cache/closed", 5);
      expect(cacheClosed.statuses.slice(2)).toEqual([503, 503, 503]);
      expect(cacheClosed.retryAfter.slice(2).every((v) => Number(v) >= 1)).toBe(true);
      const spared = runs.get("cache-closed") ?? 0;
      expect(spared).toBeLessThanOrEqual(3);
      // requireLock open: runs unlocked; closed: 503.
      const lockOpen = await request(app).post("/lock/open").expect(200);
      expect(lockOpen.body).toEqual({ name: "lock-open", locked: false });
      const lockClosed = await hit(app, "/lock/closed", 2, true);
      expect(lockClosed.statuses).toEqual([503, 503]);
      expect(lockClosed.retryAfter.every((v) => Number(v) >= 1)).toBe(true);
      // Sessions: closed only, answered by unavailableHandler() as the middlewares answer.
      const me = await hit(app, "/me", 2, false, cookie);
      expect(me.statuses).toEqual([503, 503]);
      expect(me.retryAfter.every((v) => Number(v) >= 1)).toBe(true);
      // Health says so.
      const down = await request(app).get("/health");
      expect(down.status).toBe(503);
      const slowest = Math.max(memory.slowest, rlClosed.slowest, cacheClosed.slowest, me.slowest);
      expect(slowest).toBeLessThan(TIMEOUT_MS + MARGIN_MS); // nothing waits past its deadline

      await server.start(); // empty: persistence is off
      // No traffic needed: each feature's switch PINGs its way back; health waits for all.
      await eventually(
        "every feature back on Redis",
        async () => {
          const res = await request(app).get("/health");
          expect(res.body.features.filter((f: { state: string }) => f.state !== "redis")).toEqual(
            [],
          );
          expect(res.status).toBe(200);
        },
        15_000,
      );
      // Back on Redis: the state is in Redis again.
      expect((await hit(app, "/rl/memory", 1)).statuses).toEqual([200]);
      expect(await admin.keys(`${prefix}rl-memory:*`)).not.toEqual([]);
      expect((await hit(app, "/cache/closed", 1)).statuses).toEqual([200]);
      await stored();
      expect((await hit(app, "/cache/closed", 1)).statuses).toEqual([200]);
      expect(runs.get("cache-closed")).toBe(spared + 1); // filled once, then a hit from Redis
      expect(await admin.keys(`${prefix}c-closed:*`)).not.toEqual([]);
      expect((await request(app).post("/lock/closed").expect(200)).body.locked).toBe(true);
      const again = await request(app).post("/login").expect(200);
      const sid = decodeURIComponent(String(again.headers["set-cookie"]).split(";")[0]!.slice(4));
      expect(await admin.exists(`${prefix}sess:${sid.slice(2, sid.lastIndexOf("."))}`)).toBe(1);
    } finally {
      await store.close();
      await closeRedisClient(redis);
      admin.disconnect();
      listening.close();
    }
  });
});

it("unavailableHandler(): 503 with Retry-After for StoreUnavailableError, dropped once the response went, other errors passed on", async () => {
  const after: unknown[] = [];
  const app = express();
  app.get("/down", (_req, _res, next) =>
    next(new StoreUnavailableError("x: Redis unavailable", { retryAfterMs: 2500 })),
  );
  app.get("/late", (_req, res, next) => {
    res.json({ ok: true });
    next(new StoreUnavailableError("a session save after the response"));
  });
  app.get("/other", (_req, _res, next) => next(new Error("boom")));
  app.use(unavailableHandler());
  app.use((err: Error, _req: Request, res: Response, _next: express.NextFunction) => {
    after.push(err.message);
    res.status(500).json({ error: "other" });
  });
  const down = await request(app).get("/down");
  expect(down.status).toBe(503);
  expect(down.headers["retry-after"]).toBe("3");
  expect(down.body).toEqual({ error: "Service Unavailable", code: "ERK_STORE_UNAVAILABLE" });
  expect((await request(app).get("/late")).body).toEqual({ ok: true });
  expect((await request(app).get("/other")).status).toBe(500);
  expect(after).toEqual(["boom"]); // only the other error reached the next handler
});
