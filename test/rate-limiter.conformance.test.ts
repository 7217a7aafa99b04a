/**
 * The rate limiter's conformance suite: the same assertions against the memory backend, a
 * standalone Redis and a 3-master Redis Cluster, each through ioredis and node-redis.
 */
import {
  type Algorithm,
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
} from "../index.js";
import {
  ALL_BACKENDS,
  type Backend,
  clientFor,
  closeClients,
  quiet,
  testPrefix,
  wait,
} from "./helpers.js";

// iovalkey (the ioredis fork for Valkey) on the standalone server, too.
const BACKENDS: Backend[] = [...ALL_BACKENDS, "iovalkey"];
const ALGORITHMS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];
// These tests are about what Redis (or memory) computes, not about failing over: a slow call
// under load must fail the test, not be answered by a per-process fallback.
const strict = { logger: quiet, timeoutMs: 5000, onRedisError: "closed" } as const;

afterAll(closeClients);

describe.each(BACKENDS)("rate limiter on %s", (backend) => {
  const prefix = testPrefix(`${__filename}-${backend}`);
  let n = 0;
  /** A client of this backend (a new connection each call), or undefined for memory. */
  const client = () => clientFor(backend);
  const shared = backend === "memory" ? undefined : client();
  /** A limiter with its own key prefix, so tests never share state. */
  const limiter = (options: Omit<RateLimiterOptions, "redis" | "prefix">, redis = shared) =>
    createRateLimiter({ redis, prefix: `${prefix}${n++}:`, ...strict, ...options });

  describe("concurrency", () => {
    const connections = 4;
    const redisClients = Array.from({ length: connections }, () => client());

    it.each(ALGORITHMS)(
      "%s: 1000 concurrent consumes at limit 100 over 4 connections",
      async (algorithm) => {
        const exact = algorithm === "fixed-window" || algorithm === "sliding-window";
        // An hour-long window: a sliding window that happens to roll over mid-run frees no unit
        // before 36 s, so the count stays exact whenever the test runs.
        const windowMs = exact ? 3_600_000 : 60_000;
        const first = limiter({ limit: 100, windowMs, algorithm }, redisClients[0]);
        // Same prefix on the other connections: one key, four clients racing.
        const limiters: RateLimiter[] =
          backend === "memory"
            ? [first]
            : redisClients.map((redis) =>
                createRateLimiter({
                  redis,
                  prefix: `${prefix}${n - 1}:`,
                  limit: 100,
                  windowMs,
                  algorithm,
                  ...strict,
                }),
              );
        const started = Date.now();
        const results = await Promise.all(
          Array.from({ length: 1000 }, (_, i) =>
            limiters[i % limiters.length]!.consume("shared-key"),
          ),
        );
        const elapsed = Date.now() - started;
        expect(new Set(results.map((r) => r.backend))).toEqual(
          new Set([backend === "memory" ? "memory" : "redis"]),
        );
        const allowed = results.filter((r) => r.allowed).length;
        if (exact) {
          expect(allowed).toBe(100);
        } else {
          // 100 per 60 s refills one unit every 600 ms: at most what refilled during the run.
          expect(allowed).toBeGreaterThanOrEqual(100);
          expect(allowed).toBeLessThanOrEqual(100 + Math.ceil(elapsed / 600));
        }
        const after = await first.peek("shared-key");
        expect(after.remaining).toBeLessThanOrEqual(1);
        expect(results.filter((r) => !r.allowed).every((r) => r.retryAfterMs > 0)).toBe(true);
      },
    );
  });

  describe("boundaries with short windows", () => {
    it("fixed window: limit per window, then a full new window after retryAfterMs", async () => {
      const l = limiter({ limit: 3, windowMs: 400, algorithm: "fixed-window" });
      const first = await Promise.all([l.consume("k"), l.consume("k"), l.consume("k")]);
      expect(first.map((r) => r.allowed)).toEqual([true, true, true]);
      expect(first.map((r) => r.remaining).sort()).toEqual([0, 1, 2]);
      const rejected = await l.consume("k");
      expect(rejected.allowed).toBe(false);
      expect(rejected.retryAfterMs).toBeGreaterThan(0);
      expect(rejected.retryAfterMs).toBeLessThanOrEqual(400);
      await wait(rejected.retryAfterMs + 5);
      const next = await Promise.all([
        l.consume("k"),
        l.consume("k"),
        l.consume("k"),
        l.consume("k"),
      ]);
      expect(next.filter((r) => r.allowed)).toHaveLength(3);
    });

    it("sliding window: the previous window still weighs after the boundary", async () => {
      const w = 1000;
      const l = limiter({ limit: 4, windowMs: w, algorithm: "sliding-window" });
      await wait(w - (Date.now() % w) + 20); // start of a window, so all 4 land in it
      for (let i = 0; i < 4; i++) expect((await l.consume("k")).allowed).toBe(true);
      const rejected = await l.consume("k");
      expect(rejected.allowed).toBe(false);
      // Fully restored only once the 4 have slid out: the end of the next window.
      expect(rejected.resetMs).toBeGreaterThan(w);
      expect(rejected.resetMs).toBeLessThanOrEqual(2 * w);
      // The weighted previous window keeps blocking past the window end (unlike a fixed window):
      // the first unit comes back when 4 × (remaining part of the old window) drops below 3.
      expect(rejected.retryAfterMs).toBeGreaterThan(rejected.resetMs - w);
      await wait(w - (Date.now() % w) + 30); // just past the boundary: weight ~0.97
      expect((await l.consume("k")).allowed).toBe(false);
      const again = await l.peek("k");
      expect(again.retryAfterMs).toBeGreaterThan(100); // ~250 ms after the boundary
      await wait(again.retryAfterMs + 5);
      expect((await l.consume("k")).allowed).toBe(true);
      expect((await l.consume("k")).allowed).toBe(false);
    });

    it("sliding window: resetMs is when the quota is whole again", async () => {
      const w = 300;
      const l = limiter({ limit: 3, windowMs: w, algorithm: "sliding-window" });
      const charged = await l.consume("k", 3);
      await wait(charged.resetMs + 5);
      expect((await l.peek("k")).remaining).toBe(3);
      expect((await l.peek("k")).resetMs).toBe(0);
    });

    it.each(["token-bucket", "gcra"] as const)(
      "%s: burst of limit, then one unit per windowMs/limit",
      async (algorithm) => {
        const l = limiter({ limit: 4, windowMs: 4000, algorithm });
        const burst = await Promise.all(Array.from({ length: 4 }, () => l.consume("k")));
        expect(burst.every((r) => r.allowed)).toBe(true);
        const rejected = await l.consume("k");
        expect(rejected.allowed).toBe(false);
        // One unit refills every second; the burst took a few ms of it.
        expect(rejected.retryAfterMs).toBeGreaterThan(500);
        expect(rejected.retryAfterMs).toBeLessThanOrEqual(1000);
        await wait(rejected.retryAfterMs + 5);
        expect((await l.consume("k")).allowed).toBe(true);
        expect((await l.consume("k")).allowed).toBe(false); // only one unit came back
      },
    );

    it("peek does not consume", async () => {
      const l = limiter({ limit: 2, windowMs: 60_000 });
      for (let i = 0; i < 5; i++) expect((await l.peek("k")).remaining).toBe(2);
      expect((await l.consume("k")).remaining).toBe(1);
      expect((await l.peek("k")).remaining).toBe(1);
    });
  });

  describe("policies", () => {
    it("are all-or-nothing: a rejecting policy charges none", async () => {
      const l = createRateLimiter({
        redis: shared,
        prefix: `${prefix}${n++}:`,
        ...strict,
        policies: [
          { name: "minute", limit: 5, windowMs: 60_000, algorithm: "fixed-window" },
          { name: "burst", limit: 2, windowMs: 60_000, algorithm: "token-bucket" },
        ],
      });
      expect((await l.consume("k")).allowed).toBe(true);
      expect((await l.consume("k")).allowed).toBe(true);
      for (let i = 0; i < 3; i++) {
        const r = await l.consume("k");
        expect(r.allowed).toBe(false);
        expect(r.policy).toBe("burst");
      }
      const state = await l.peek("k");
      expect(state.policies.map((p) => [p.name, p.remaining])).toEqual([
        ["minute", 3], // not charged by the three rejected calls
        ["burst", 0],
      ]);
    });

    it("a cost above a limit is rejected with retryAfterMs -1 and charges nothing", async () => {
      const l = limiter({ limit: 5, windowMs: 60_000 });
      const r = await l.consume("k", 6);
      expect(r).toMatchObject({ allowed: false, retryAfterMs: -1 });
      expect((await l.peek("k")).remaining).toBe(5);
      expect((await l.consume("k", 5)).allowed).toBe(true);
    });
  });

  describe("refund", () => {
    it.each(["sliding-window", "token-bucket", "gcra"] as const)(
      "%s: gives back what was charged, never below zero",
      async (algorithm) => {
        const l = limiter({ limit: 10, windowMs: 86_400_000, algorithm });
        const big = await l.consume("k", 4);
        expect(big.remaining).toBe(6);
        await l.reset("k");
        const small = await l.consume("k", 1);
        expect(small.remaining).toBe(9);
        await l.refund(big); // 4 back into a key that holds 1: clamps at zero used
        await l.refund(big); // a second refund of the same result is a no-op
        expect((await l.peek("k")).remaining).toBe(10);
        await l.consume("k", 3);
        expect((await l.peek("k")).remaining).toBe(7); // and counting goes on from there
      },
    );

    it("fixed-window: refunds only the window that was charged", async () => {
      const l = limiter({ limit: 10, windowMs: 200, algorithm: "fixed-window" });
      const old = await l.consume("k", 4);
      await wait(old.resetMs + 5);
      const current = await l.consume("k", 1);
      await l.refund(old); // belongs to the previous window: ignored
      expect((await l.peek("k")).remaining).toBe(9);
      await l.refund(current);
      expect((await l.peek("k")).remaining).toBe(10);
    });

    it("does not refund a rejected result", async () => {
      const l = limiter({ limit: 1, windowMs: 60_000, algorithm: "fixed-window" });
      await l.consume("k");
      const rejected = await l.consume("k");
      await l.refund(rejected);
      expect((await l.peek("k")).remaining).toBe(0);
    });
  });

  describe("block", () => {
    it("block(key, ms) rejects until it expires", async () => {
      const l = limiter({ limit: 100, windowMs: 60_000 });
      await l.block("k", 300);
      const r = await l.consume("k");
      expect(r.allowed).toBe(false);
      expect(r.blockedMs).toBeGreaterThan(0);
      expect(r.retryAfterMs).toBeLessThanOrEqual(300);
      await wait(r.retryAfterMs + 5);
      expect((await l.consume("k")).allowed).toBe(true);
    });

    it("blockDurationMs keeps a key blocked after it goes over", async () => {
      // A 1 s fixed window: two calls a few ms apart on a loaded machine must not straddle a
      // window boundary (with 100 ms they did, now and then).
      const l = limiter({
        limit: 1,
        windowMs: 1_000,
        algorithm: "fixed-window",
        blockDurationMs: 2_500,
      });
      expect((await l.consume("k")).allowed).toBe(true);
      const over = await l.consume("k");
      expect(over.allowed).toBe(false);
      expect(over.retryAfterMs).toBeGreaterThan(2_000);
      await wait(1_100); // the 1 s window is over, the block is not
      expect((await l.consume("k")).allowed).toBe(false);
    });

    it("reset clears counters and the block", async () => {
      const l = limiter({ limit: 1, windowMs: 60_000, blockDurationMs: 60_000 });
      await l.consume("k");
      expect((await l.consume("k")).allowed).toBe(false);
      await l.reset("k");
      expect((await l.consume("k")).allowed).toBe(true);
    });
  });

  describe("state identity", () => {
    it("a policy whose algorithm or window changes starts afresh", async () => {
      const l = limiter({ limit: 3, windowMs: 60_000, algorithm: "fixed-window" });
      const as = (algorithm: Algorithm, windowMs: number) => ({
        policies: [{ limit: 3, windowMs, algorithm }],
      });
      await l.consume("k", 3);
      expect((await l.peek("k")).remaining).toBe(0);
      expect((await l.peek("k", 1, as("fixed-window", 30_000))).remaining).toBe(3);
      expect((await l.peek("k", 1, as("gcra", 60_000))).remaining).toBe(3);
      expect((await l.peek("k", 1, as("fixed-window", 60_000))).remaining).toBe(0); // same kind
    });
  });

  describe("hostile keys", () => {
    const hostile = ["{a}", "}{", "user*", "a\r\nFLUSHALL\r\n", "x".repeat(100_000), "", "\ud800"];

    it("keys with braces, globs, CR/LF and 100 KB are separate, bounded and work everywhere", async () => {
      const l = limiter({ limit: 1, windowMs: 60_000, algorithm: "fixed-window" });
      for (const key of hostile.filter(Boolean)) {
        expect((await l.consume(key)).allowed).toBe(true);
        expect((await l.consume(key)).allowed).toBe(false);
      }
      // "user" is not matched by "user*", "a" not by "{a}".
      expect((await l.consume("user")).allowed).toBe(true);
      expect((await l.consume("a")).allowed).toBe(true);
      await expect(l.consume("")).rejects.toThrow(/key must be a non-empty string/);
    });
  });
});

describe("memory backend bounds", () => {
  it("keeps at most memory.maxKeys keys, evicting the least recently used", async () => {
    const l = createRateLimiter({
      limit: 1,
      windowMs: 60_000,
      memory: { maxKeys: 10 },
      logger: quiet,
    });
    for (let i = 0; i < 20; i++) expect((await l.consume(`k${i}`)).allowed).toBe(true);
    expect((await l.consume("k19")).allowed).toBe(false); // recent: still counted
    expect((await l.consume("k0")).allowed).toBe(true); // evicted: forgotten
  });
});
