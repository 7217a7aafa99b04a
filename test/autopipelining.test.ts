/**
 * Every feature on an ioredis client with `enableAutoPipelining: true`, standalone and Cluster,
 * from a server that has never seen the scripts: a cache miss then hits, a rate limit, a lock,
 * a session, all answered from Redis, with no uncaught exception or unhandled rejection.
 * (ioredis builds an auto-pipeline with the script commands defined when it starts; a script
 * defined later in the same tick was missing from it, and the pipeline's answer threw,
 * uncaught, on the cache's first hit. A new script's calls now wait for those pipelines.)
 */
import { Cluster, Redis } from "ioredis";
import {
  createLockManager,
  createRateLimiter,
  type RedisClient,
  UserSessionStore,
} from "../index.js";
import { ioredisDriver } from "../stores/core/driver-ioredis.js";
import { defineScript } from "../stores/core/scripts.js";
import { closeServers, serve } from "./cache-helpers.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { clusterNodes, collectUnhandledRejections, quiet, testPrefix } from "./helpers.js";

const prefix = testPrefix(__filename);
const rejections = collectUnhandledRejections();
const uncaught: unknown[] = [];
const recordUncaught = (err: unknown) => uncaught.push(err);
let server: RedisServer;
const clients: (Redis | Cluster)[] = [];

beforeAll(async () => {
  process.on("uncaughtException", recordUncaught);
  server = await startRedisServer();
});
afterAll(async () => {
  process.off("uncaughtException", recordUncaught);
  await closeServers();
  for (const client of clients) client.disconnect();
  await server.stop();
});
afterEach(() => {
  expect(uncaught).toEqual([]);
  expect(rejections).toEqual([]);
});

const make: Record<string, () => Redis | Cluster> = {
  standalone: () =>
    new Redis(server.url, {
      enableAutoPipelining: true,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 1,
    }),
  cluster: () =>
    new Cluster(clusterNodes(), {
      enableAutoPipelining: true,
      redisOptions: { autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 1 },
    }),
};

describe.each(Object.keys(make))("enableAutoPipelining on %s", (topology) => {
  let redis: Redis | Cluster;
  let n = 0;
  const p = () => `${prefix}${topology}:${n++}:`;

  beforeEach(async () => {
    redis = make[topology]!();
    clients.push(redis);
    // Scripts unknown to the server: the first calls go through EVAL.
    if (redis instanceof Redis) await redis.script("FLUSH");
  });

  it("cacheResponse(): a miss, then hits from Redis", async () => {
    const app = await serve(
      { redis, prefix: p(), timeoutMs: 2000 },
      {
        "/r": (_req, res) => void res.json({ ok: true }),
      },
    );
    const miss = await app.get("/r");
    expect([miss.headers["x-cache"], miss.headers["cache-status"]]).toEqual([
      "MISS",
      expect.stringMatching(/stored$/),
    ]);
    for (let i = 0; i < 3; i++) {
      const hit = await app.get("/r");
      expect([hit.status, hit.headers["x-cache"]]).toEqual([200, "HIT"]);
    }
    expect(app.calls.get("/r")).toBe(1);
    expect(app.cache.stats()).toMatchObject({ errors: 0, state: "redis" });
  });

  it("rate limiter, locks and sessions answer from Redis", async () => {
    const limiter = createRateLimiter({
      redis,
      prefix: p(),
      limit: 5,
      windowMs: 60_000,
      logger: quiet,
      timeoutMs: 2000,
    });
    const results = await Promise.all(Array.from({ length: 8 }, () => limiter.consume("k")));
    expect(results.filter((r) => r.allowed)).toHaveLength(5);
    expect(new Set(results.map((r) => r.backend))).toEqual(new Set(["redis"]));
    limiter.close();

    const locks = createLockManager({ redis, prefix: p(), logger: quiet, timeoutMs: 2000 });
    const lock = await locks.acquire("job", { ttlMs: 5000 });
    expect(lock.fence).toBeGreaterThan(0);
    await lock.release();
    // Released in Redis: taken again at once, with the next fence.
    const again = await locks.acquire("job", { ttlMs: 5000, waitMs: 0 });
    expect(again.fence).toBe(lock.fence + 1);
    await again.release();
    await locks.close();

    const store = new UserSessionStore({ client: redis as RedisClient, prefix: p() });
    const sid = `s${n}`;
    const data = { cookie: { originalMaxAge: 60_000 }, userId: "u1" };
    await new Promise<void>((resolve, reject) =>
      store.set(sid, data as never, (err) => (err ? reject(err) : resolve())),
    );
    const read = await new Promise((resolve, reject) =>
      store.get(sid, (err, value) => (err ? reject(err) : resolve(value))),
    );
    expect(read).toMatchObject({ userId: "u1" });
  });
});

it("a script first used while auto-pipelines are open: every call of it waits for them, even one queued behind a running pipeline", async () => {
  const redis = make.standalone!();
  clients.push(redis);
  const driver = ioredisDriver(redis)!;
  await redis.ping();
  const late = defineScript(`late_${process.pid}_${Date.now()}`, "return ARGV[1]");
  // Pipeline 1 is sent (running until its reply); pipeline 2 opens behind it and waits.
  const first = redis.ping();
  await new Promise((resolve) => process.nextTick(resolve));
  const second = redis.echo("behind");
  // Two calls of the new script in this same tick, while pipeline 2 is still open.
  const calls = [late.run(driver, ["k"], ["a"]), late.run(driver, ["k"], ["b"])];
  const third = redis.echo("after");
  expect(await Promise.all([first, second, ...calls, third])).toEqual([
    "PONG",
    "behind",
    "a",
    "b",
    "after",
  ]);
});
