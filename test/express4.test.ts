/**
 * Express 4 beside Express 5 (runs in the express5 project, loading both): every middleware on
 * Express 4 prints no deprecation, and the cache files a request under the same key on both
 * (Express 4's `req.host` has no port and is deprecated, so the cache reads the Host header).
 */
import { once } from "node:events";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express5 from "express";
import session from "express-session";
import express4Module from "express4";
import request from "supertest";
import {
  type CacheResponseMiddleware,
  cacheResponse,
  createSessionStore,
  rateLimit,
  redisHealth,
  requireLock,
  trackSessions,
} from "../index.js";
import { requestHost } from "../middleware/cache-request.js";
import { closeClients, newRedis, quiet, testPrefix } from "./helpers.js";

// Typed as Express 5 here: the two type packages in one program do not mix (consumers on
// @types/express 4 are type-checked by the packed-tarball test).
const express4 = express4Module as unknown as typeof express5;
type App = ReturnType<typeof express5>;

const servers: Server[] = [];
const caches: CacheResponseMiddleware[] = [];
const warnings: string[] = [];
const onDeprecation = (err: Error) => warnings.push(`deprecation: ${err.message}`);
const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);

beforeAll(() => {
  // depd (Express 4, express-session) emits 'deprecation' instead of printing while a listener
  // is attached; Node's own deprecations arrive as 'warning'.
  process.on("deprecation", onDeprecation);
  process.on("warning", onWarning);
});
beforeEach(() => {
  warnings.length = 0;
});

afterAll(async () => {
  process.off("deprecation", onDeprecation);
  process.off("warning", onWarning);
  for (const cache of caches) await cache.close();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await closeClients();
});

const redis = newRedis();
const prefix = testPrefix(__filename);

async function listen(app: App): Promise<string> {
  const server = app.listen(0, "127.0.0.1");
  servers.push(server);
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** `cacheResponse` on the test Redis under `cachePrefix`, no memory tier: every hit is Redis's. */
function cache(cachePrefix: string): CacheResponseMiddleware {
  const mw = cacheResponse({ redis, prefix: cachePrefix, ttlMs: 60_000, logger: quiet });
  caches.push(mw);
  return mw;
}

/** An app on Express `version` serving `GET /page` behind a cache on `cachePrefix`. */
async function cachedApp(version: 4 | 5, cachePrefix: string) {
  const app: App = version === 4 ? express4() : express5();
  app.set("trust proxy", "loopback");
  const mw = cache(cachePrefix);
  app.use(mw);
  let runs = 0;
  app.get("/page", (_req, res) => {
    runs++;
    res.json({ version });
  });
  return { url: await listen(app), mw, runs: () => runs };
}

async function cacheEntries(cachePrefix: string): Promise<string[]> {
  const keys = await redis.keys(`${cachePrefix}*`);
  return keys.filter((k) => !k.startsWith(`${cachePrefix}t:`) && !k.endsWith(":lock")).sort();
}

describe("on Express 4", () => {
  it("every middleware runs without a deprecation warning", async () => {
    const store = createSessionStore({ redis, prefix: `${prefix}s:`, indexPrefix: `${prefix}u:` });
    const app = express4();
    app.set("trust proxy", "loopback");
    app.get("/health", redisHealth({ redis }));
    app.use(
      rateLimit({ redis, prefix: `${prefix}rl:`, limit: 2, windowMs: 60_000, logger: quiet }),
    );
    app.use(session({ store, secret: "s", resave: false, saveUninitialized: false, name: "sid" }));
    app.use(trackSessions(store, { logger: quiet }));
    app.use("/cached", cache(`${prefix}c:`));
    app.get("/cached/:id", (req, res) => void res.json({ id: req.params.id }));
    app.post(
      "/login",
      requireLock({ redis, prefix: `${prefix}l:`, key: () => "login", logger: quiet }),
      (req, res) => {
        (req.session as { userId?: string }).userId = "u1";
        res.status(201).json({ sid: req.sessionID });
      },
    );
    const url = await listen(app);
    const agent = request.agent(url);

    // Anonymous, so the cache files it (a signed-in request would bypass it).
    const cached = await request(url)
      .get("/cached/7")
      .set("X-Forwarded-Host", "front.example:8443");
    expect(cached.status).toBe(200);
    expect(cached.headers["cache-status"]).toMatch(/fwd=uri-miss; stored$/);
    expect(cached.body).toEqual({ id: "7" });
    const login = await agent.post("/login");
    expect(login.status).toBe(201);
    expect(login.headers.ratelimit).toMatch(/^"2-per-60000ms";r=0;/); // the second of 2
    expect((await agent.get("/cached/7")).status).toBe(429); // the third request of limit 2
    expect((await request(url).get("/health")).status).toBe(200);
    expect(await store.listUserSessions("u1")).toHaveLength(1);
    await store.close();
    expect(warnings).toEqual([]);
  });

  it("negative control: reading req.host on Express 4 is caught as a deprecation", async () => {
    const app = express4();
    app.get("/host", (req, res) => void res.send(req.host));
    const res = await request(await listen(app))
      .get("/host")
      .set("Host", "control.example:8080");
    expect(res.text).toBe("control.example"); // Express 4's req.host: no port
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^deprecation: req\.host: Use req\.hostname instead/);
  });
});

describe("one cache key on Express 4 and 5", () => {
  it("a response stored by an Express 5 app is a hit on an Express 4 app for the same host:port", async () => {
    const shared = `${prefix}k1:`;
    const five = await cachedApp(5, shared);
    const four = await cachedApp(4, shared);
    const get = (url: string, host: string) => request(url).get("/page").set("Host", host);

    const miss = await get(five.url, "shop.example:8080");
    await five.mw.idle();
    expect(miss.headers["cache-status"]).toMatch(/fwd=uri-miss; stored$/);
    const hit = await get(four.url, "shop.example:8080");
    expect(hit.headers["cache-status"]).toMatch(/; hit; /);
    expect(hit.body).toEqual({ version: 5 });
    expect([five.runs(), four.runs()]).toEqual([1, 0]);
    expect(await cacheEntries(shared)).toHaveLength(1);

    // The port is part of the key on Express 4 too: another port is another entry.
    const other = await get(four.url, "shop.example:9090");
    await four.mw.idle();
    expect(other.headers["cache-status"]).toMatch(/fwd=uri-miss; stored$/);
    expect(four.runs()).toBe(1);
    expect(await cacheEntries(shared)).toHaveLength(2);
    expect(warnings).toEqual([]);
  });

  it("stores the same Redis key from either version, X-Forwarded-Host included when trusted", async () => {
    const keys: string[][] = [];
    for (const version of [4, 5] as const) {
      const own = `${prefix}k${version}:`;
      const app = await cachedApp(version, own);
      await request(app.url).get("/page").set("Host", "shop.example:8080");
      await request(app.url)
        .get("/page")
        .set("Host", "internal:3000")
        .set("X-Forwarded-Host", "Shop.Example:8443, proxy.internal");
      await app.mw.idle();
      keys.push((await cacheEntries(own)).map((k) => k.slice(own.length)));
    }
    expect(keys[0]).toHaveLength(2);
    expect(keys[1]).toEqual(keys[0]);
  });
});

describe("requestHost()", () => {
  it("is the Host header with its port, or the first X-Forwarded-Host only from a trusted peer", async () => {
    for (const make of [express4, express5]) {
      const app: App = make();
      // On Express 5 it is exactly req.host, lowercased: keys stored before this change still hit.
      app.get("/", (req, res) => {
        const five = make === express5 ? (req.host ?? "").toLowerCase() : requestHost(req);
        res.json(requestHost(req) === five ? requestHost(req) : { five, ours: requestHost(req) });
      });
      const url = await listen(app);
      const host = async (headers: Record<string, string>) =>
        (await request(url).get("/").set(headers)).body;
      expect(await host({ Host: "A.Example:8080" })).toBe("a.example:8080");
      // Not trusted (trust proxy off): X-Forwarded-Host is ignored.
      expect(await host({ Host: "a.example:8080", "X-Forwarded-Host": "evil.example" })).toBe(
        "a.example:8080",
      );
      app.set("trust proxy", "loopback");
      expect(await host({ Host: "a.example", "X-Forwarded-Host": "b.example:1, c.example" })).toBe(
        "b.example:1",
      );
      expect(await host({ Host: "[::1]:8080", "X-Forwarded-Host": "" })).toBe("[::1]:8080");
    }
  });
});
