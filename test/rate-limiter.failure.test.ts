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
import { taggedKey } from "../stores/core/keys.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  createApp,
  newRedis,
  ready,
  recordingLogger,
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
    expect(logger.lines.filter((l) => /^warn (createRateLimiter|rateLimit):/.test(l))).toHaveLength(
      1,
    ); // logged once
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

  it("with no traffic at all, a degraded limiter PINGs its way back to Redis by itself", async () => {
    const { limiter, logger } = limiterWith("closed");
    await server.stop();
    await expect(limiter.consume("idle")).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(limiter.stats().state).toBe("degraded");
    await server.start();
    await ready(redis);
    const back = new Promise<void>((resolve) => {
      const info = logger.info;
      logger.info = (m: string) => {
        if (m.includes("answers again")) resolve();
        return info(m);
      };
    });
    await back; // no consume in between: the switch's own PING every recheckMs
    expect(limiter.stats().state).toBe("redis");
    expect(logger.lines.filter((l) => l.includes("back on Redis"))).toHaveLength(1);
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
});

describe("the middleware per onRedisError: Redis stopped mid-traffic, then restarted", () => {
  const LIMIT = 5;
  const RECHECK_MS = 2500; // Retry-After of "closed" is when the next probe is due: 2 or 3 s

  /** Units Redis holds for `user` (b of the state's entry), undefined when there is no state. */
  async function countInRedis(keyPrefix: string, user: string): Promise<number | undefined> {
    const raw = await redis.get(`${taggedKey(keyPrefix, user)}:w0`);
    return raw === null ? undefined : Number(raw.split(" ")[2]);
  }

  it.each(["memory", "open", "closed"] as const)("%s", async (onRedisError) => {
    const keyPrefix = `${prefix}mode-${onRedisError}:`;
    const logger = recordingLogger();
    const mw = rateLimit({
      redis,
      prefix: keyPrefix,
      key: (req) => req.get("x-user") ?? null,
      limit: LIMIT,
      windowMs: 3_600_000,
      timeoutMs: TIMEOUT_MS,
      recheckMs: RECHECK_MS,
      onRedisError,
      logger,
    });
    const app = createApp(mw);
    const hit = () => request(app).get("/").set("x-user", "u");
    const statuses = async (count: number) => {
      const out: number[] = [];
      for (let i = 0; i < count; i++) out.push((await hit()).status);
      return out;
    };

    // Other traffic keeps flowing (another key) while Redis goes away and comes back.
    const background: number[] = [];
    let answered: (() => void) | undefined;
    let running = true;
    const traffic = (async () => {
      while (running) {
        background.push((await request(app).get("/").set("x-user", "bg")).status);
        answered?.();
        await wait(10);
      }
    })();

    expect(await statuses(2)).toEqual([200, 200]);
    expect(await countInRedis(keyPrefix, "u")).toBe(2);
    const atStop = background.length;
    await server.stop();

    if (onRedisError === "memory") {
      // Counted in this process from zero (memory never saw Redis's 2): exactly LIMIT pass.
      expect(await statuses(LIMIT + 2)).toEqual([200, 200, 200, 200, 200, 429, 429]);
    } else if (onRedisError === "open") {
      expect(await statuses(LIMIT + 2)).toEqual(Array(LIMIT + 2).fill(200)); // uncounted
    } else {
      for (let i = 0; i < 3; i++) {
        const res = await hit();
        expect(res.status).toBe(503);
        expect(res.body).toEqual({ error: "Service Unavailable", code: "ERK_STORE_UNAVAILABLE" });
        expect(["2", "3"]).toContain(res.headers["retry-after"]);
        expect(res.headers.ratelimit).toBeUndefined();
      }
    }
    expect(mw.limiter.stats().state).toBe("degraded");
    // The other key is answered while Redis is down: 3 more answers arrive before the restart
    // (a blocked loop would time the test out here).
    await new Promise<void>((resolve) => {
      answered = () => background.length - atStop >= 3 && resolve();
      answered();
    });
    answered = undefined;

    await server.start(); // empty: persistence is off
    await ready(redis);
    // Traffic finds Redis again (the client's ready, a PING or the next probe), without
    // recreating the middleware.
    const duringRecovery: number[] = [];
    for (let i = 0; i < 80 && (await countInRedis(keyPrefix, "u")) === undefined; i++) {
      duringRecovery.push((await hit()).status);
      await wait(50);
    }
    expect(await countInRedis(keyPrefix, "u")).toBe(1); // the probe, counted on Redis
    expect(duringRecovery.at(-1)).toBe(200);
    const fallbackStatus = { memory: 429, open: 200, closed: 503 }[onRedisError];
    expect(duringRecovery.slice(0, -1).every((s) => s === fallbackStatus)).toBe(true);
    expect(mw.limiter.stats().state).toBe("redis");
    expect(await statuses(LIMIT)).toEqual([200, 200, 200, 200, 429]);
    expect(await countInRedis(keyPrefix, "u")).toBe(LIMIT);
    running = false;
    await traffic;
    const allowed = { memory: [200, 429], open: [200, 429], closed: [200, 429, 503] };
    expect(background.filter((s) => !allowed[onRedisError].includes(s))).toEqual([]);
    expect(logger.lines.filter((l) => /^warn (createRateLimiter|rateLimit):/.test(l))).toHaveLength(
      1,
    );
    expect(logger.lines.filter((l) => l.includes("back on Redis"))).toHaveLength(1);
  });
});
