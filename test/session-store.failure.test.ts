/**
 * The session store when its Redis stops: every request is answered (by the app's error
 * handler) within the client's timeouts, no unhandled rejection, and it works again after.
 */

import type express from "express";
import type { Redis } from "ioredis";
import request from "supertest";
import { createRedisClient, metrics, UserSessionStore } from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { collectUnhandledRejections, eventually, quiet, ready, testPrefix } from "./helpers.js";
import { sessionApp } from "./session-helpers.js";

const unhandled = collectUnhandledRejections();
let server: RedisServer;

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  await server.stop();
});

test("Redis stopped mid-traffic: errors answered within the timeouts; back after a restart", async () => {
  const redis = createRedisClient<Redis>({ url: server.url, logger: quiet });
  const store = new UserSessionStore({
    client: redis,
    prefix: testPrefix(__filename),
    logger: quiet,
  });
  const app = sessionApp(store);
  app.use(
    (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(503).json({ error: "sessions unavailable", name: err.name });
    },
  );
  const jar = request.agent(app);
  await jar.post("/login/alice").expect(200);
  expect((await jar.get("/me").expect(200)).body.user).toBe("alice");

  await server.stop();
  const started = Date.now();
  const results = await Promise.all(Array.from({ length: 20 }, () => jar.get("/me")));
  expect(results.map((r) => r.status)).toEqual(Array(20).fill(503));
  expect(Date.now() - started).toBeLessThan(5_000); // 500 ms timeouts, on a loaded machine
  await expect(store.revokeUserSessions("alice")).rejects.toThrow();
  await expect(store.listUserSessions("alice")).rejects.toThrow();
  // The metrics scrape still answers, with the connection down.
  const scrape = await metrics({ sessionCountIntervalMs: 1 }).text();
  expect(scrape).toMatch(/erk_redis_connected\{client="127\.0\.0\.1:\d+"\} 0/);

  await server.start();
  await ready(redis); // reconnected (the server kept nothing: the session is gone)
  // The store's switch PINGs Redis once per recheckMs while degraded: wait until it is back.
  await eventually("the store is back on Redis", async () => {
    await store.get("0123456789abcdef0123456789abcdef");
  });
  expect((await jar.get("/me").expect(200)).body.user).toBeNull();
  await jar.post("/login/alice").expect(200);
  expect((await store.listUserSessions("alice")).length).toBe(1);
  expect(unhandled).toEqual([]);
  await store.close();
  redis.disconnect();
});
