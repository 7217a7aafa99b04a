/**
 * One event-loop turn's commands leave in one write: on a redis-server of this file's own,
 * INFO stats counts the reads the server made. 100 consumes started in one turn arrive in a
 * few reads, through ioredis (whose writes the driver holds until the turn ends),
 * iovalkey (same driver) and node-redis (which batches its own writes); the same consumes
 * awaited one by one take a read each (the negative control: the count does see every write).
 */
import type { Redis } from "ioredis";
import { createRateLimiter, type RedisClient } from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { closeClients, newIovalkey, newNodeRedis, newRedis, quiet, testPrefix } from "./helpers.js";

const prefix = testPrefix(__filename);
let server: RedisServer;
let admin: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  admin = newRedis(server.url);
});
afterAll(async () => {
  await closeClients();
  await server.stop();
});

/** The server's reads and EVALSHA calls since the last CONFIG RESETSTAT (the admin's INFO included). */
async function stats(): Promise<{ reads: number; evalsha: number }> {
  const info = await admin.info("all");
  const reads = Number(/^total_reads_processed:(\d+)/m.exec(info)?.[1]);
  const evalsha = Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(info)?.[1] ?? 0);
  return { reads, evalsha };
}

const clients: [string, () => RedisClient][] = [
  ["ioredis", () => newRedis(server.url)],
  ["iovalkey", () => newIovalkey(server.url)],
  ["node-redis", () => newNodeRedis(server.url)],
];

describe.each(clients)("%s", (_name, make) => {
  let limiter: ReturnType<typeof createRateLimiter>;
  let n = 0;

  beforeAll(async () => {
    limiter = createRateLimiter({
      redis: make(),
      prefix: `${prefix}${_name}:`,
      limit: 1_000_000,
      windowMs: 60_000,
      logger: quiet,
      onRedisError: "closed",
      timeoutMs: 5000,
    });
    await limiter.consume("warm"); // the script is loaded: EVALSHA from here on
  });
  afterAll(() => limiter.close());

  it("100 consumes started in one turn reach Redis in a few reads, not one each", async () => {
    await admin.config("RESETSTAT");
    const results = await Promise.all(
      Array.from({ length: 100 }, () => limiter.consume(`k${n++}`)),
    );
    expect(results.every((r) => r.allowed && r.backend === "redis")).toBe(true);
    const { reads, evalsha } = await stats();
    expect(evalsha).toBe(100);
    // The consumes' ~18 KB take a read or two of Redis's 16 KB buffer, plus the admin's INFO
    // (measured 3 through ioredis and iovalkey, 4 through node-redis; 79 and 99 when ioredis
    // wrote each command at once).
    expect(reads).toBeLessThanOrEqual(5);
  });

  it("negative control: 20 consumes awaited one by one take a read each", async () => {
    await admin.config("RESETSTAT");
    for (let i = 0; i < 20; i++) await limiter.consume(`k${n++}`);
    const { reads, evalsha } = await stats();
    expect(evalsha).toBe(20);
    expect(reads).toBeGreaterThanOrEqual(21);
  });
});
