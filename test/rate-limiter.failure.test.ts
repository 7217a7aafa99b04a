/**
 * Redis failing in the middle of traffic: shut down, CLIENT PAUSE, DEBUG SLEEP, and back.
 * Each scenario runs on a redis-server of this file's own. Every call must be answered within
 * timeoutMs plus a margin, in the configured mode, with each transition logged once and no
 * unhandled rejection.
 */
import type { Redis } from "ioredis";
import request from "supertest";
import {
  createRateLimiter,
  createRedisClient,
  type OnRedisError,
  type RateLimitResult,
  rateLimit,
  StoreUnavailableError,
} from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  createApp,
  newRedis,
  ready,
  testPrefix,
  wait,
} from "./helpers.js";

const TIMEOUT_MS = 100;
const MARGIN_MS = 250; // scheduling noise on a shared 2-core machine
const prefix = testPrefix(__filename);
let server: RedisServer;
let redis: Redis;
const unhandled = collectUnhandledRejections();

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedisClient<Redis>({
    url: server.url,
    logger: { info() {}, warn() {}, error() {} },
    redisOptions: { disconnectTimeout: 100 },
  });
});
afterAll(async () => {
  await closeClients();
  redis.disconnect();
  await server.stop();
});
afterEach(async () => {
  await server.start(); // a no-op when running
  expect(unhandled).toEqual([]);
});
beforeEach(async () => {
  // After a restart, wait for the client to be back (its reconnect back-off) before the next test.
  await ready(redis);
});

function recordingLogger() {
  const lines: string[] = [];
  return {
    lines,
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
  };
}

function limiterWith(onRedisError: OnRedisError, logger = recordingLogger()) {
  const limiter = createRateLimiter({
    redis,
    prefix: `${prefix}${onRedisError}:`,
    limit: 1000,
    windowMs: 60_000,
    timeoutMs: TIMEOUT_MS,
    recheckMs: 100,
    onRedisError,
    logger,
  });
  return { limiter, logger };
}

/** Consumes once, returning the result (or error) and how long it took. */
async function timed(call: () => Promise<RateLimitResult>) {
  const started = performance.now();
  try {
    const result = await call();
    return { result, ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

const disruptions: [string, () => Promise<unknown>, () => Promise<unknown>][] = [
  ["shutdown", () => server.stop(), () => server.start()],
  ["CLIENT PAUSE", () => newRedis(server.url).client("PAUSE", 700, "ALL"), async () => {}],
  // DEBUG SLEEP blocks the server. Sent on the limiter's own connection, it is sure to run
  // before the consumes queued behind it; its reply comes when it wakes, so it is not awaited.
  ["DEBUG SLEEP", async () => void redis.debug("SLEEP", "0.7").catch(() => {}), async () => {}],
];

describe.each(disruptions)("Redis %s mid-traffic", (_name, disrupt, restore) => {
  it("memory mode: answers every call in time from memory, then goes back to Redis", async () => {
    const { limiter, logger } = limiterWith("memory");
    const calls: Awaited<ReturnType<typeof timed>>[] = [];
    let running = true;
    // 8 workers, each paced at one call per 5 ms, bounded to 2000 calls in all.
    const traffic = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (running && calls.length < 2000) {
          calls.push(await timed(() => limiter.consume("k")));
          await wait(5);
        }
      }),
    );
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 400 && !done(); i++) await wait(10);
      expect(done()).toBe(true);
    };
    try {
      await until(() => calls.length >= 40);
      expect(calls.every((c) => c.result?.backend === "redis")).toBe(true);
      await disrupt();
      await until(() => calls.some((c) => c.result?.backend === "memory"));
      expect(limiter.stats().state).toBe("degraded");
      await restore();
      const mark = calls.length;
      await until(() => calls.slice(mark).some((c) => c.result?.backend === "redis"));
    } finally {
      running = false;
      await traffic;
    }
    expect(calls.filter((c) => c.error !== undefined)).toEqual([]);
    const slowest = Math.max(...calls.map((c) => c.ms));
    expect(slowest).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    expect(limiter.stats().state).toBe("redis");
    expect(logger.lines.filter((l) => l.startsWith("warn"))).toHaveLength(1); // logged once
    expect(logger.lines.filter((l) => l.includes("back on Redis"))).toHaveLength(1);
  });
});

describe("failure modes", () => {
  it("open: lets requests through uncounted; closed: throws StoreUnavailableError", async () => {
    const open = limiterWith("open").limiter;
    const closed = limiterWith("closed").limiter;
    await server.stop();
    const a = await timed(() => open.consume("k"));
    expect(a.result).toMatchObject({ allowed: true, backend: "open" });
    expect(a.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    const b = await timed(() => closed.consume("k"));
    expect(b.error).toBeInstanceOf(StoreUnavailableError);
    expect(b.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    // While degraded, later calls do not wait on Redis at all.
    const c = await timed(() => closed.consume("k"));
    expect(c.error).toBeInstanceOf(StoreUnavailableError);
    expect(c.ms).toBeLessThan(TIMEOUT_MS / 2);
  });

  it("a refund of a Redis charge while Redis fails is dropped, never put into memory", async () => {
    const { limiter } = limiterWith("memory");
    const onRedis = await limiter.consume("refund-key", 1, {
      policies: [{ limit: 3, windowMs: 60_000 }],
    });
    expect(onRedis.backend).toBe("redis");
    await server.stop();
    const policies = { policies: [{ limit: 3, windowMs: 60_000 }] };
    const fromMemory = [];
    for (let i = 0; i < 4; i++)
      fromMemory.push((await limiter.consume("refund-key", 1, policies)).allowed);
    expect(fromMemory).toEqual([true, true, true, false]);
    await limiter.refund(onRedis); // resolves, without touching the memory counter
    expect((await limiter.consume("refund-key", 1, policies)).allowed).toBe(false);
    expect(limiter.stats().droppedRefunds).toBe(1);
  });

  it("reset while Redis is healthy also clears what memory counted during an outage", async () => {
    const { limiter } = limiterWith("memory");
    const policies = { policies: [{ limit: 1, windowMs: 60_000 }] };
    await server.stop();
    expect((await limiter.consume("reset-key", 1, policies)).backend).toBe("memory");
    expect((await limiter.consume("reset-key", 1, policies)).allowed).toBe(false);
    await server.start();
    await ready(redis);
    for (let i = 0; i < 50 && limiter.stats().state !== "redis"; i++) {
      await limiter.peek("other-key"); // recovery is noticed by traffic, one probe per recheckMs
      await wait(50);
    }
    expect(limiter.stats().state).toBe("redis");
    await limiter.reset("reset-key"); // answered by Redis; memory must be cleared as well
    await server.stop();
    const next = await limiter.consume("reset-key", 1, policies);
    expect(next).toMatchObject({ backend: "memory", allowed: true });
  });

  it("the middleware answers 503 (closed), 200 (open) and 200 from memory while Redis is down", async () => {
    const quiet = { info() {}, warn() {}, error() {} };
    const make = (onRedisError: OnRedisError) =>
      createApp(
        rateLimit({
          redis,
          prefix: `${prefix}mw-${onRedisError}:`,
          limit: 5,
          windowMs: 60_000,
          timeoutMs: TIMEOUT_MS,
          onRedisError,
          logger: quiet,
        }),
      );
    const apps = { closed: make("closed"), open: make("open"), memory: make("memory") };
    await server.stop();
    expect((await request(apps.closed).get("/")).status).toBe(503);
    expect((await request(apps.open).get("/")).status).toBe(200);
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await request(apps.memory).get("/")).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]); // still protected, per process
  });
});
