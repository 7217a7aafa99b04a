/**
 * `metrics()`: the counters of live instances in Prometheus text, summed per prefix, with the
 * Redis script latency histogram and connection state; served over HTTP with its content type.
 */

import express from "express";
import request from "supertest";
import {
  createLockManager,
  createPubSub,
  createRateLimiter,
  createSessionStore,
  metrics,
} from "../index.js";
import { closeClients, newRedis, testPrefix } from "./helpers.js";

const quiet = { info() {}, warn() {}, error() {} };
afterAll(closeClients);

/** The value of the sample `name{labels}` in `text`, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const inside = line.slice(line.indexOf("{") + 1, line.lastIndexOf("}"));
    const have = inside.split(",");
    if (wanted.every((w) => have.includes(w)) && have.length === wanted.length) {
      return Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return undefined;
}

test("counters of every feature, per prefix, with script latency and connection state", async () => {
  const redis = newRedis();
  const base = testPrefix(__filename);
  const limiter = createRateLimiter({
    redis,
    prefix: `${base}rl:`,
    limit: 2,
    windowMs: 60_000,
    logger: quiet,
  });
  for (let i = 0; i < 3; i++) await limiter.consume("k");
  const locks = createLockManager({ redis, prefix: `${base}lock:`, logger: quiet });
  const lock = await locks.acquire("r");
  await expect(locks.acquire("r")).rejects.toThrow();
  await lock.release();
  const sessions = createSessionStore({ redis, prefix: `${base}s:`, indexPrefix: `${base}u:` });
  const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() };
  await sessions.set("a1", { cookie, userId: "alice" } as never);
  await sessions.set("a2", { cookie, userId: "alice" } as never);
  await sessions.revokeUserSessions("alice", { except: "a1" });
  const pubsub = createPubSub({ redis, logger: quiet });
  await pubsub.publish(`${base}ch`, 1);

  const handler = metrics();
  const text = await handler.text();
  expect(
    sample(text, "erk_rate_limit_requests_total", { prefix: `${base}rl:`, result: "allowed" }),
  ).toBe(2);
  expect(
    sample(text, "erk_rate_limit_requests_total", { prefix: `${base}rl:`, result: "blocked" }),
  ).toBe(1);
  expect(sample(text, "erk_lock_acquisitions_total", { prefix: `${base}lock:` })).toBe(1);
  expect(sample(text, "erk_lock_contended_total", { prefix: `${base}lock:` })).toBe(1);
  expect(sample(text, "erk_sessions_created_total", { prefix: `${base}s:` })).toBe(2);
  expect(sample(text, "erk_sessions_revoked_total", { prefix: `${base}s:` })).toBe(1);
  expect(sample(text, "erk_sessions_active", { prefix: `${base}s:` })).toBe(1);
  expect(
    sample(text, "erk_pubsub_messages_total", { prefix: "", direction: "published" }),
  ).toBeGreaterThanOrEqual(1);
  const { port } = redis.options;
  expect(sample(text, "erk_redis_connected", { client: `127.0.0.1:${port}` })).toBe(1);
  const count = sample(text, "erk_redis_script_duration_seconds_count", {
    script: "erk_session_write",
  });
  expect(count).toBeGreaterThanOrEqual(2);
  expect(
    sample(text, "erk_redis_script_duration_seconds_bucket", {
      script: "erk_session_write",
      le: "+Inf",
    }),
  ).toBe(count);
  expect(text).toContain("# TYPE erk_redis_script_duration_seconds histogram");
  expect(text).toContain("# TYPE erk_rate_limit_requests_total counter");

  const app = express();
  app.get("/metrics", handler);
  const res = await request(app).get("/metrics").expect(200);
  expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0.0.4/);
  expect(res.text).toContain("erk_cache_hit_ratio");
  await locks.close();
  await sessions.close();
  await pubsub.close();
});

test("bad options are named", () => {
  expect(() => metrics({ prefix: "bad prefix" })).toThrow(/metrics: prefix must be/);
  expect(() => metrics({ registry: {} as never })).toThrow(/metrics: registry must be/);
  expect(() => metrics({ interval: 5 } as never)).toThrow(/unknown option "interval"/);
});
