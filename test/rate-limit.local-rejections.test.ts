/**
 * Local rejections (floods that cost no round trip), on a redis-server of this file's own so
 * commands can be counted: exact counts across 4 "processes" (limiters on their own clients),
 * 0 EVALSHA per locally rejected request, a refund or reset in another process lifts the local
 * rejections, the table stays bounded, and a local rejection's response equals Redis's.
 */
import type { Redis } from "ioredis";
import request from "supertest";
import { createRateLimiter, type RateLimiter, rateLimit } from "../index.js";
import { driverOf } from "../stores/core/drivers.js";
import { LocalRejections } from "../stores/rate-limit/local.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  commandCalls,
  createApp,
  eventually,
  newRedis,
  quiet,
  testPrefix,
} from "./helpers.js";

const prefix = testPrefix(__filename);
const unhandled = collectUnhandledRejections();
let server: RedisServer;
let admin: Redis;
const made: RateLimiter[] = [];

beforeAll(async () => {
  server = await startRedisServer();
  admin = newRedis(server.url);
});
afterAll(async () => {
  for (const limiter of made) await limiter.close();
  await closeClients();
  await server.stop();
});
afterEach(() => expect(unhandled).toEqual([]));

/** `count` limiters, each on its own client (its own subscriber): separate "processes". */
async function processes(count: number, p: string, extra: object = {}) {
  const limiters = Array.from({ length: count }, () =>
    createRateLimiter({
      redis: newRedis(server.url),
      prefix: p,
      limit: 100,
      windowMs: 60_000,
      logger: quiet,
      // Exact counts, not deadlines, are tested here: 1000 calls at once on a loaded 2-core
      // machine may take longer than the default 100 ms, and a memory answer is not Redis's.
      timeoutMs: 5_000,
      ...extra,
    }),
  );
  made.push(...limiters);
  // Local answers start once each subscription is live.
  if ((extra as { localRejections?: unknown }).localRejections === false) return limiters;
  await eventually("subscribed", async () => {
    const subs = (await admin.pubsub("NUMSUB", `${p}lifted`)) as [string, number];
    expect(subs[1]).toBe(count);
  });
  return limiters;
}

it("1000 concurrent consumes at limit 100 across 4 processes: exactly 100; then a flood costs no EVALSHA", async () => {
  const p = `${prefix}exact:`;
  const limiters = await processes(4, p);
  const results = await Promise.all(
    Array.from({ length: 1000 }, (_, i) => limiters[i % 4]!.consume("hot")),
  );
  expect(results.filter((r) => r.allowed)).toHaveLength(100);
  expect(await admin.get(`${p}{hot}:w0`)).toMatch(/ 100 /); // Redis counted exactly 100
  const before = await commandCalls(admin, "evalsha", "eval");
  const flood = await Promise.all(
    Array.from({ length: 400 }, (_, i) => limiters[i % 4]!.consume("hot")),
  );
  expect(flood.every((r) => !r.allowed && r.retryAfterMs > 0)).toBe(true);
  expect(await commandCalls(admin, "evalsha", "eval")).toBe(before); // 0 round trips
  const local = limiters.reduce((n, l) => n + l.stats().localRejections, 0);
  expect(local).toBe(400);
  // Negative control: with the table off, every rejection is a script call.
  const [off] = await processes(1, `${prefix}off:`, { localRejections: false });
  await Promise.all(Array.from({ length: 101 }, () => off!.consume("hot")));
  const beforeOff = await commandCalls(admin, "evalsha", "eval");
  await Promise.all(Array.from({ length: 50 }, () => off!.consume("hot")));
  expect((await commandCalls(admin, "evalsha", "eval")) - beforeOff).toBe(50);
});

it.each(["refund", "reset"] as const)(
  "a %s in another process lifts the local rejections everywhere",
  async (how) => {
    const p = `${prefix}${how}:`;
    const [a, b] = await processes(2, p, { limit: 2 });
    const charged = await b!.consume("k");
    await b!.consume("k");
    expect((await a!.consume("k")).allowed).toBe(false); // Redis rejects: a remembers
    expect((await a!.consume("k")).allowed).toBe(false);
    expect(a!.stats().localRejections).toBe(1);
    if (how === "refund") await b!.refund(charged);
    else await b!.reset("k");
    // Within pub/sub delivery time, a asks Redis again and is admitted.
    await eventually("a is admitted again", async () => {
      expect((await a!.consume("k")).allowed).toBe(true);
    });
  },
);

it("an ordinary refund (no rejection outstanding) publishes nothing", async () => {
  const p = `${prefix}quiet:`;
  const [a] = await processes(1, p, { limit: 5 });
  const before = await commandCalls(admin, "publish");
  const charged = await a!.consume("k");
  await a!.refund(charged);
  expect(await commandCalls(admin, "publish")).toBe(before);
});

it("the table stays bounded under a million distinct keys", async () => {
  const client = newRedis(server.url);
  const table = new LocalRejections(
    driverOf(client, "test", "redis"),
    `${prefix}lru:`,
    1000,
    quiet,
  );
  try {
    await eventually("subscribed", async () => {
      const subs = (await admin.pubsub("NUMSUB", `${prefix}lru:lifted`)) as [string, number];
      expect(subs[1]).toBe(1);
    });
    const answer = { blockedMs: 0, markers: [0], policies: [] };
    const now = Date.now();
    for (let i = 0; i < 1_000_000; i++) table.remember(`k${i}`, 1, now, 60_000, answer);
    expect(table.size).toBe(1000);
    expect(table.check("k999999", 1)).toBeDefined(); // the most recent are kept
    expect(table.check("k0", 1)).toBeUndefined();
  } finally {
    await table.close();
  }
});

it("a local rejection answers exactly as Redis does: status, headers, body", async () => {
  const options = {
    limit: 1,
    windowMs: 60_000,
    logger: quiet,
    partitionKeySecret: "a secret of 16+ chars",
  };
  const local = rateLimit({ ...options, redis: newRedis(server.url), prefix: `${prefix}h1:` });
  const remote = rateLimit({
    ...options,
    redis: newRedis(server.url),
    prefix: `${prefix}h2:`,
    localRejections: false,
  });
  made.push(local.limiter, remote.limiter);
  await eventually("subscribed", async () => {
    const subs = (await admin.pubsub("NUMSUB", `${prefix}h1:lifted`)) as [string, number];
    expect(subs[1]).toBe(1);
  });
  const a = createApp(local);
  const b = createApp(remote);
  for (const app of [a, b]) expect((await request(app).get("/")).status).toBe(200);
  for (const app of [a, b]) expect((await request(app).get("/")).status).toBe(429); // both on Redis
  const fromTable = await request(a).get("/");
  const fromRedis = await request(b).get("/");
  expect(local.limiter.stats().localRejections).toBe(1);
  expect(remote.limiter.stats().localRejections).toBe(0);
  expect(fromTable.status).toBe(fromRedis.status);
  expect(fromTable.body).toEqual(fromRedis.body);
  const pick = (res: request.Response) => ({
    policy: res.headers["ratelimit-policy"],
    limit: String(res.headers.ratelimit).replace(/;t=\d+/, ""),
    t: Number(/;t=(\d+)/.exec(String(res.headers.ratelimit))?.[1]),
    retryAfter: Number(res.headers["retry-after"]),
  });
  const x = pick(fromTable);
  const y = pick(fromRedis);
  expect(x.policy).toBe(y.policy);
  expect(x.limit).toBe(y.limit);
  // Whole seconds, rounded up: two windows opened a few ms apart may straddle a second.
  expect(Math.abs(x.t - y.t)).toBeLessThanOrEqual(1);
  expect(Math.abs(x.retryAfter - y.retryAfter)).toBeLessThanOrEqual(1);
});
