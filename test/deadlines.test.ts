/**
 * The deadline queue behind every feature's Redis calls (stores/core/in-flight.ts): one timer per
 * switch for every call in flight. Calls sent at different times while Redis is paused must each
 * get their own deadline (not the oldest call's), be answered exactly once, and a reply arriving
 * after the deadline must not be counted again.
 */
import type { Redis } from "ioredis";
import { createRateLimiter, createRedisClient, type RateLimitResult } from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { closeClients, collectUnhandledRejections, newRedis, testPrefix, wait } from "./helpers.js";

const TIMEOUT_MS = 300;
const MARGIN_MS = 400; // scheduling noise on a shared 2-core machine
const prefix = testPrefix(__filename);
const unhandled = collectUnhandledRejections();
let server: RedisServer;
let redis: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedisClient<Redis>({
    url: server.url,
    logger: { info() {}, warn() {}, error() {} },
  });
});
afterAll(async () => {
  await closeClients();
  redis.disconnect();
  await server.stop();
});

it("calls sent at different times each wait for their own deadline, and count once", async () => {
  const limiter = createRateLimiter({
    redis,
    prefix,
    limit: 10_000,
    windowMs: 60_000,
    timeoutMs: TIMEOUT_MS,
    recheckMs: 60_000, // no probe during the test: later calls go straight to memory
    onRedisError: "memory",
    logger: { info() {}, warn() {}, error() {} },
  });
  expect((await limiter.consume("warm")).backend).toBe("redis");
  await newRedis(server.url).client("PAUSE", 1000, "ALL");
  const calls: Promise<{
    result: RateLimitResult;
    ms: number;
    batch: number;
    sentOnRedis: boolean;
  }>[] = [];
  for (let batch = 0; batch < 3; batch++) {
    for (let i = 0; i < 50; i++) {
      const sent = performance.now();
      // Once the first deadline has passed the switch is degraded and later calls are answered
      // from memory at once; a call sent while it was still on Redis must wait its own deadline.
      const sentOnRedis = limiter.stats().state === "redis";
      calls.push(
        limiter
          .consume(`k${i}`)
          .then((result) => ({ result, ms: performance.now() - sent, batch, sentOnRedis })),
      );
    }
    await wait(TIMEOUT_MS / 10); // the next batch leaves well before the first one's deadline
  }
  const answers = await Promise.all(calls);
  for (const { result, ms, sentOnRedis } of answers) {
    expect(result.backend).toBe("memory");
    if (sentOnRedis) expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 2); // not an older call's deadline
    expect(ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
  }
  // Negative control of the measure: the later batches really left while the first was in flight.
  const onRedis = [0, 1, 2].map(
    (b) => answers.filter((a) => a.batch === b && a.sentOnRedis).length,
  );
  expect(onRedis[0]).toBe(50);
  expect(onRedis[1]! + onRedis[2]!).toBeGreaterThan(0);
  // Redis runs the paused scripts when the pause ends; their late replies are not counted.
  await wait(1100); // the pause (1 s) has ended
  expect(await redis.ping()).toBe("PONG");
  expect(limiter.stats()).toMatchObject({ allowed: 151, blocked: 0 });
  await limiter.close();
  expect(unhandled).toEqual([]);
});
