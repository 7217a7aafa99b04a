/**
 * `metrics()`: the counters of live instances in Prometheus text, summed per prefix, with the
 * Redis script latency histogram and connection state; served over HTTP with its content type.
 */

import { once } from "node:events";
import express from "express";
import request from "supertest";
import {
  cacheResponse,
  createLockManager,
  createPubSub,
  createRateLimiter,
  createSessionStore,
  metrics,
} from "../index.js";
import {
  type Backend,
  clientFor,
  closeClients,
  clusterNodes,
  newRedis,
  quiet,
  redisUrl,
  testPrefix,
} from "./helpers.js";

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

/** The `client` label of a client of `backend`. */
function label(backend: Backend): string {
  if (!backend.includes("cluster")) return new URL(redisUrl()).host;
  const names = clusterNodes().map((n) => `${n.host}:${n.port}`);
  return `cluster ${names.sort()[0]}`;
}

test.each(["standalone", "cluster", "node-redis", "node-redis-cluster"] as const)(
  "on %s: counters of every feature, per prefix, with script latency and connection state",
  async (backend) => {
    const redis = clientFor(backend)!;
    const base = testPrefix(`${__filename}-${backend}`);
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
    expect(sample(text, "erk_redis_connected", { client: label(backend) })).toBe(1);
    // The library, the topology, and the server flavour once a background INFO has told it.
    const info = {
      client: label(backend),
      family: backend.startsWith("node-redis") ? "node-redis" : "ioredis",
      topology: backend.includes("cluster") ? "cluster" : "standalone",
    };
    let later = text;
    for (
      let i = 0;
      i < 200 && sample(later, "erk_redis_client_info", { ...info, server: "redis" }) === undefined;
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      later = await handler.text();
    }
    expect(sample(later, "erk_redis_client_info", { ...info, server: "redis" })).toBe(1);
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
  },
);

test("counters never go down when an instance closes; ratios come from the sums", async () => {
  const base = testPrefix(__filename);
  const handler = metrics();
  const a = createPubSub({ logger: quiet });
  const b = createPubSub({ logger: quiet });
  const channel = `${base}x`;
  for (let i = 0; i < 3; i++) await a.publish(channel, i);
  await b.publish(channel, 0);
  const read = async () =>
    sample(await handler.text(), "erk_pubsub_messages_total", {
      prefix: "",
      direction: "published",
    });
  const before = await read();
  await a.close(); // its 3 stay in the total
  expect(await read()).toBe(before);
  await b.close();
  expect(await read()).toBe(before);

  // Two caches on one prefix: one hit and one miss each → 0.5, not the sum of ratios.
  const redis = newRedis();
  const app = express();
  const one = cacheResponse({ redis, prefix: `${base}c:`, ttlMs: 60_000 });
  const two = cacheResponse({ redis, prefix: `${base}c:`, ttlMs: 60_000 });
  app.get("/one", one, (_req, res) => void res.json({ n: 1 }));
  app.get("/two", two, (_req, res) => void res.json({ n: 2 }));
  // A no-cache response: each later use is a revalidation, which res.json answers 304.
  const three = cacheResponse({ redis, prefix: `${base}v:`, ttlMs: 60_000 });
  app.get("/three", three, (_req, res) => void res.set("Cache-Control", "no-cache").json({ n: 3 }));
  const server = app.listen(0); // one Host for every request (it is part of the cache key)
  await once(server, "listening");
  for (const path of ["/one", "/one", "/two", "/two", "/three", "/three", "/three"]) {
    await request(server).get(path).expect(200);
    for (const cache of [one, two, three]) await cache.idle();
  }
  server.close();
  const text = await handler.text();
  expect(sample(text, "erk_cache_requests_total", { prefix: `${base}c:`, result: "hit" })).toBe(2);
  expect(sample(text, "erk_cache_hit_ratio", { prefix: `${base}c:` })).toBe(0.5);
  const validations = (result: string) =>
    sample(text, "erk_cache_validations_total", { prefix: `${base}v:`, result });
  expect([validations("not_modified"), validations("other")]).toEqual([2, 0]);
  // The caches without a no-cache response never revalidated.
  expect(
    sample(text, "erk_cache_validations_total", { prefix: `${base}c:`, result: "not_modified" }),
  ).toBe(0);
  await one.close();
  await two.close();
  await three.close();
});

test("two metrics() on one prom-client registry share its metrics; scrapes keep working", async () => {
  const client = await import("prom-client");
  const registry = new client.Registry();
  const first = metrics({ registry });
  const second = metrics({ registry });
  const [a, b] = await Promise.all([first.text(), second.text()]);
  expect(a).toContain("erk_rate_limit_requests_total");
  expect(b).toContain("erk_rate_limit_requests_total");
  expect(await second.text()).toContain("# TYPE erk_redis_script_duration_seconds histogram");
});

test("bad options are named", () => {
  expect(() => metrics({ prefix: "bad prefix" })).toThrow(/metrics: prefix must be/);
  expect(() => metrics({ registry: {} as never })).toThrow(/metrics: registry must be/);
  expect(() => metrics({ interval: 5 } as never)).toThrow(/unknown option "interval"/);
});
