/**
 * rateLimit() over HTTP with supertest, on the memory backend and on a standalone Redis:
 * exact counts under 1000 concurrent requests, headers, keys, refunds, blocks, options.
 */

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import type { Redis } from "ioredis";
import request from "supertest";
import {
  createRateLimiter,
  createRedisClient,
  InvalidOptionError,
  ipKeyGenerator,
  normalizeIp,
  type RateLimitOptions,
  type RateLimitResult,
  rateLimit,
} from "../index.js";
import { clientIpKey } from "../middleware/client-key.js";
import type { RateLimitKey } from "../middleware/rate-limit.js";
import { Warnings } from "../stores/core/logger.js";
import { closeClients, createApp, newRedis, quiet, testPrefix } from "./helpers.js";

const prefix = testPrefix(__filename);
let n = 0;
afterAll(closeClients);

/** Adds an error handler answering 500, and returns the errors it saw. */
function collectErrors(app: express.Express): Error[] {
  const errors: Error[] = [];
  app.use(
    (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      res.status(500).end();
    },
  );
  return errors;
}

describe.each(["memory", "standalone"] as const)("rateLimit() on %s", (backend) => {
  const redis = backend === "memory" ? undefined : newRedis();
  const limiter = (options: RateLimitOptions = {}) =>
    // Generous timeout and "closed": these tests check counting, never the fallback.
    rateLimit({
      redis,
      prefix: `${prefix}${n++}:`,
      logger: quiet,
      timeoutMs: 5000,
      onRedisError: "closed",
      ...options,
    });

  it("1000 concurrent requests at limit 100: exactly 100 pass, 900 get 429 with Retry-After", async () => {
    // An hour-long sliding window frees no unit within the run, even across a window boundary.
    const mw = limiter({ limit: 100, windowMs: 3_600_000 });
    const app = createApp(mw);
    const server: Server = await new Promise((resolve) => {
      const s = app.listen({ port: 0, host: "127.0.0.1", backlog: 2048 }, () => resolve(s));
    });
    try {
      const { port } = server.address() as AddressInfo;
      const responses = await Promise.all(
        Array.from({ length: 1000 }, () => fetch(`http://127.0.0.1:${port}/`)),
      );
      const statuses = responses.map((r) => r.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(100);
      expect(statuses.filter((s) => s === 429)).toHaveLength(900);
      for (const r of responses.filter((r) => r.status === 429)) {
        expect(r.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
      }
      await Promise.all(responses.map((r) => r.arrayBuffer()));
      const state = await mw.peek("127.0.0.1");
      expect(state.remaining).toBe(0);
    } finally {
      server.close();
    }
  });

  it("draft-8 headers by default, with a hashed partition key", async () => {
    const app = createApp(limiter({ limit: 3, windowMs: 60_000 }));
    const res = await request(app).get("/");
    expect(res.status).toBe(200);
    expect(res.headers["ratelimit-policy"]).toMatch(
      /^"3-per-60000ms";q=3;w=60;pk=:[A-Za-z0-9+/=]+:$/,
    );
    expect(res.headers.ratelimit).toMatch(/^"3-per-60000ms";r=2;t=\d+;pk=:[A-Za-z0-9+/=]+:$/);
    expect(res.headers.ratelimit).not.toContain("127.0.0.1");
    expect(res.headers["retry-after"]).toBeUndefined();
  });

  it("the partition key is an HMAC: equal across instances sharing a secret, else different", async () => {
    const pk = async (secret?: string) => {
      const res = await request(
        createApp(limiter({ limit: 3, windowMs: 60_000, partitionKeySecret: secret })),
      ).get("/");
      return /pk=(:[^:]+:)/.exec(String(res.headers.ratelimit))?.[1];
    };
    const shared = "s3cret-shared-by-all-instances";
    expect(await pk(shared)).toBe(await pk(shared));
    expect(await pk(shared)).not.toBe(await pk("another-secret-0123456789"));
    expect(await pk()).not.toBe(await pk(shared));
  });

  it.each([
    ["draft-7", { ratelimit: /^limit=2, remaining=1, reset=\d+$/, "ratelimit-policy": /^2;w=60$/ }],
    [
      "draft-6",
      { "ratelimit-limit": /^2$/, "ratelimit-remaining": /^1$/, "ratelimit-reset": /^\d+$/ },
    ],
    [
      "legacy",
      {
        "x-ratelimit-limit": /^2$/,
        "x-ratelimit-remaining": /^1$/,
        "x-ratelimit-reset": /^\d{10}$/,
      },
    ],
  ] as const)("headers: %s", async (headers, expected) => {
    const res = await request(createApp(limiter({ limit: 2, windowMs: 60_000, headers }))).get("/");
    for (const [name, pattern] of Object.entries(expected))
      expect(res.headers[name]).toMatch(pattern);
  });

  it("headers: false sends none, but a 429 still carries Retry-After and the JSON body", async () => {
    const app = createApp(limiter({ limit: 1, windowMs: 60_000, headers: false }));
    const ok = await request(app).get("/");
    expect(Object.keys(ok.headers).filter((h) => h.includes("ratelimit"))).toEqual([]);
    const limited = await request(app).get("/");
    expect(limited.status).toBe(429);
    expect(limited.headers["retry-after"]).toMatch(/^\d+$/);
    expect(limited.body).toEqual({
      error: "Too Many Requests",
      retryAfter: Number(limited.headers["retry-after"]),
    });
  });

  it("limit and windowMs may depend on the request (plans)", async () => {
    const mw = limiter({
      limit: (req) => (req.get("x-plan") === "pro" ? 5 : 2),
      windowMs: 60_000,
      key: (req) => req.get("x-user") ?? "anon",
    });
    const app = createApp(mw);
    const hit = (user: string, plan: string) =>
      request(app).get("/").set("x-user", user).set("x-plan", plan);
    const free = [];
    for (let i = 0; i < 3; i++) free.push((await hit("u1", "free")).status);
    expect(free).toEqual([200, 200, 429]);
    const pro = [];
    for (let i = 0; i < 6; i++) pro.push((await hit("u2", "pro")).status);
    expect(pro).toEqual([200, 200, 200, 200, 200, 429]);
  });

  it("a key of undefined (a missing header) is an error, never an unlimited request", async () => {
    const errors: string[] = [];
    const mw = limiter({
      limit: 1,
      windowMs: 60_000,
      key: ((req: express.Request) => req.get("x-user")) as never,
    });
    const app = createApp(mw);
    app.use(
      (err: Error, _req: express.Request, res: express.Response, _n: express.NextFunction) => {
        errors.push(err.message);
        res.status(500).end();
      },
    );
    expect((await request(app).get("/")).status).toBe(500);
    expect(errors[0]).toMatch(
      /key\(req, res\) must return a non-empty string, or null .*got undefined/,
    );
    expect((await request(app).get("/").set("x-user", "a")).status).toBe(200); // control
    expect((await request(app).get("/").set("x-user", "a")).status).toBe(429);
  });

  it.each<[string, () => RateLimitKey | Promise<RateLimitKey>]>([
    ["null", () => null],
    ["an async null", async () => null],
  ])("a key of %s leaves the request alone: not counted, no headers", async (_n, none) => {
    const mw = limiter({
      limit: 1,
      windowMs: 60_000,
      key: (req) => (req.get("x-user") ? `u:${req.get("x-user")}` : none()),
      cost: (_req, res) => {
        res.setHeader("x-costed", "1"); // cost is only evaluated for counted requests
        return 1;
      },
    });
    const app = createApp(mw);
    for (let i = 0; i < 3; i++) {
      const res = await request(app).get("/");
      expect(res.status).toBe(200);
      expect(
        Object.keys(res.headers).filter((h) => /ratelimit|retry-after|costed/.test(h)),
      ).toEqual([]);
    }
    // Negative control: a keyed request is counted and gets headers.
    const keyed = await request(app).get("/").set("x-user", "a");
    expect(keyed.headers.ratelimit).toMatch(/r=0/);
    expect(keyed.headers["x-costed"]).toBe("1");
    expect((await request(app).get("/").set("x-user", "a")).status).toBe(429);
    expect(await mw.keyOf({ get: () => undefined } as unknown as express.Request)).toBeUndefined();
  });

  it("handler gets the result plus statusCode, as express-rate-limit handlers expect", async () => {
    const details: Record<string, unknown>[] = [];
    const app = createApp(
      limiter({
        limit: 1,
        windowMs: 60_000,
        statusCode: 403,
        // Written for express-rate-limit, whose 4th argument is the options used.
        handler: (_req, res, _next, options) => {
          details.push({ ...options });
          res.status(options.statusCode).send("slow down");
        },
      }),
    );
    await request(app).get("/");
    const limited = await request(app).get("/");
    expect(limited.status).toBe(403);
    expect(limited.text).toBe("slow down");
    expect(details).toHaveLength(1);
    expect(details[0]).toMatchObject({
      statusCode: 403,
      allowed: false,
      limit: 1,
      remaining: 0,
      policy: "1-per-60000ms",
      blockedMs: 0,
      backend: backend === "memory" ? "memory" : "redis",
    });
    expect(details[0]!.retryAfterMs).toBeGreaterThan(0);
    expect(details[0]!.resetMs).toBeGreaterThan(0);
    expect(details[0]!.policies).toHaveLength(1);
  });

  it("limit, windowMs and cost functions get (req, res), like express-rate-limit's limit", async () => {
    const seen: string[] = [];
    const app = express();
    app.use((req, res, next) => {
      res.locals.plan = req.get("x-plan"); // set by an earlier middleware, e.g. auth
      next();
    });
    app.use(
      limiter({
        key: (req) => req.get("x-user") ?? null,
        limit: (_req, res) => (res.locals.plan === "pro" ? 3 : 1),
        windowMs: (req, res) => {
          seen.push(`${req.get("x-user")}:${res.locals.plan}`);
          return 60_000;
        },
        cost: (_req, res) => (res.locals.plan === undefined ? 2 : 1),
      }),
    );
    app.get("/", (req, res) => {
      res.json({ limit: req.rateLimit?.limit });
    });
    const hit = (user: string, plan: string) =>
      request(app).get("/").set("x-user", user).set("x-plan", plan);
    const pro = [];
    for (let i = 0; i < 4; i++) pro.push((await hit("p", "pro")).status);
    expect(pro).toEqual([200, 200, 200, 429]);
    expect((await hit("f", "free")).body).toEqual({ limit: 1 });
    expect((await hit("f", "free")).status).toBe(429);
    expect(seen.slice(0, 2)).toEqual(["p:pro", "p:pro"]);
    expect(seen.at(-1)).toBe("f:free");
  });

  it("cost, skip and req.rateLimit", async () => {
    const seen: number[] = [];
    const app = express();
    app.use(
      limiter({
        limit: 10,
        windowMs: 60_000,
        cost: (req) => Number(req.get("x-cost") ?? 1),
        skip: (req) => req.get("x-internal") === "yes",
      }),
    );
    app.get("/", (req, res) => {
      if (req.rateLimit) seen.push(req.rateLimit.remaining);
      res.json({ ok: true });
    });
    await request(app).get("/").set("x-cost", "4");
    await request(app).get("/").set("x-internal", "yes");
    await request(app).get("/").set("x-cost", "5");
    const over = await request(app).get("/").set("x-cost", "2");
    expect(seen).toEqual([6, 1]);
    expect(over.status).toBe(429);
  });

  it("skipSuccessfulRequests counts only failures (e.g. failed logins)", async () => {
    const mw = limiter({ limit: 2, windowMs: 60_000, skipSuccessfulRequests: true });
    const app = createApp(mw);
    for (let i = 0; i < 5; i++) expect((await request(app).get("/")).status).toBe(200);
    await request(app).get("/fail");
    await request(app).get("/fail");
    expect((await request(app).get("/")).status).toBe(429);
  });

  it("skipFailedRequests refunds failures but never below zero", async () => {
    const mw = limiter({ limit: 2, windowMs: 60_000, skipFailedRequests: true });
    const app = createApp(mw);
    for (let i = 0; i < 4; i++) expect((await request(app).get("/fail")).status).toBe(500);
    expect((await mw.peek("127.0.0.1")).remaining).toBe(2);
    expect((await request(app).get("/")).status).toBe(200);
    expect((await request(app).get("/")).status).toBe(200);
    expect((await request(app).get("/")).status).toBe(429);
  });

  it("blockDurationMs, custom handler, reset()", async () => {
    const mw = limiter({
      limit: 1,
      windowMs: 1000,
      blockDurationMs: 60_000,
      handler: (_req, res, _next, result) => {
        res.status(503).json({ blockedMs: result.blockedMs > 0 });
      },
    });
    const app = createApp(mw);
    expect((await request(app).get("/")).status).toBe(200);
    const blocked = await request(app).get("/");
    expect(blocked.status).toBe(503);
    expect(blocked.body).toEqual({ blockedMs: true });
    expect(Number(blocked.headers["retry-after"])).toBeGreaterThan(50); // the block, not the 1 s window
    await mw.reset("127.0.0.1");
    expect((await request(app).get("/")).status).toBe(200);
  });

  it("keys by client IP honouring trust proxy; warns once when X-Forwarded-For is ignored", async () => {
    const lines: string[] = [];
    const logger = { info() {}, warn: (m: string) => lines.push(m), error() {} };
    const untrusted = createApp(limiter({ limit: 1, windowMs: 60_000, logger }));
    await request(untrusted).get("/").set("X-Forwarded-For", "198.51.100.1");
    const second = await request(untrusted).get("/").set("X-Forwarded-For", "198.51.100.2");
    expect(second.status).toBe(429); // both are 127.0.0.1 to Express
    expect(lines.filter((l) => l.includes("ERK_XFF_IGNORED"))).toHaveLength(1);

    const trusted = createApp(limiter({ limit: 1, windowMs: 60_000 }));
    trusted.set("trust proxy", 1);
    expect((await request(trusted).get("/").set("X-Forwarded-For", "198.51.100.1")).status).toBe(
      200,
    );
    expect((await request(trusted).get("/").set("X-Forwarded-For", "198.51.100.2")).status).toBe(
      200,
    );
    expect((await request(trusted).get("/").set("X-Forwarded-For", "198.51.100.1")).status).toBe(
      429,
    );
    // IPv6 clients of one /56 share a key.
    expect(
      (await request(trusted).get("/").set("X-Forwarded-For", "2001:db8:1:100::1")).status,
    ).toBe(200);
    expect(
      (await request(trusted).get("/").set("X-Forwarded-For", "2001:db8:1:1ff::2")).status,
    ).toBe(429);
  });

  it("Retry-After is retryAfterMs in whole seconds, rounded up", async () => {
    let seen: RateLimitResult | undefined;
    const app = createApp(
      limiter({
        limit: 1,
        windowMs: 2500,
        algorithm: "fixed-window",
        handler: (req, res) => {
          seen = req.rateLimit;
          res.status(429).end();
        },
      }),
    );
    await request(app).get("/");
    const limited = await request(app).get("/");
    expect(seen?.retryAfterMs).toBeGreaterThan(1000);
    expect(Number(limited.headers["retry-after"])).toBe(
      Math.ceil((seen?.retryAfterMs ?? 0) / 1000),
    );
    expect(limited.headers["retry-after"]).toBe("3");
  });

  it("a cost above the limit is refused for good: 429 without Retry-After, retryAfter null", async () => {
    const app = createApp(limiter({ limit: 5, windowMs: 60_000, cost: 6 }));
    const res = await request(app).get("/");
    expect(res.status).toBe(429);
    expect(res.headers["retry-after"]).toBeUndefined();
    expect(res.body).toEqual({ error: "Too Many Requests", retryAfter: null });
  });

  it("skipFailedRequests refunds a request whose client went away before the end", async () => {
    const mw = limiter({ limit: 3, windowMs: 60_000, skipFailedRequests: true });
    let release: () => void = () => {};
    const closed = new Promise<void>((resolve) => {
      release = resolve;
    });
    const app = express();
    app.get("/slow", mw, (req, res) => {
      req.once("close", () => release());
      // never answers: the client aborts
      void res;
    });
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const { port } = server.address() as AddressInfo;
      const controller = new AbortController();
      const pending = fetch(`http://127.0.0.1:${port}/slow`, { signal: controller.signal }).catch(
        () => {},
      );
      for (let i = 0; i < 100 && (await mw.peek("127.0.0.1")).remaining === 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5)); // until the request is counted
      }
      expect((await mw.peek("127.0.0.1")).remaining).toBe(2);
      controller.abort();
      await pending;
      await closed;
      for (let i = 0; i < 100 && (await mw.peek("127.0.0.1")).remaining === 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5)); // the refund is sent on close
      }
      expect((await mw.peek("127.0.0.1")).remaining).toBe(3);
    } finally {
      server.close();
    }
  });

  it("a handler that rejects reaches the error handler; a throwing requestWasSuccessful is logged", async () => {
    const lines: string[] = [];
    const logger = { info() {}, warn() {}, error: (m: string) => lines.push(m) };
    const app = createApp(
      limiter({
        limit: 1,
        windowMs: 60_000,
        logger,
        skipSuccessfulRequests: true,
        requestWasSuccessful: () => {
          throw new Error("boom");
        },
        handler: async () => {
          throw new Error("handler failed");
        },
      }),
    );
    const errors = collectErrors(app);
    expect((await request(app).get("/")).status).toBe(200);
    expect((await request(app).get("/")).status).toBe(500);
    expect(errors.map((e) => e.message)).toEqual(["handler failed"]);
    expect(lines.some((l) => l.includes("requestWasSuccessful threw: boom"))).toBe(true);
  });

  it.each([
    [
      "a sync key returning an empty string, with a per-request limit",
      { limit: () => 5, key: () => "" },
    ],
    ["an async key returning an empty string", { key: async () => "" }],
    [
      "an async skip, then a key that throws",
      {
        skip: async () => false,
        key: () => {
          throw new Error("no key");
        },
      },
    ],
    [
      "an async key that rejects while cost throws",
      {
        key: async () => {
          throw new Error("late");
        },
        cost: () => {
          throw new Error("no cost");
        },
      },
    ],
    ["a limit function returning 0", { limit: () => 0 }],
    ["an async windowMs function returning 1.5", { windowMs: async () => 1.5 }],
    [
      "a limit function that throws",
      {
        limit: () => {
          throw new Error("no plan");
        },
      },
    ],
  ] as [string, Partial<RateLimitOptions>][])(
    "%s: next(err), no unhandled rejection",
    async (_name, options) => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on("unhandledRejection", onUnhandled);
      try {
        const app = createApp(
          limiter({ limit: 5, windowMs: 60_000, ...options } as RateLimitOptions),
        );
        const errors = collectErrors(app);
        expect((await request(app).get("/")).status).toBe(500);
        expect(errors).toHaveLength(1);
        await new Promise((resolve) => setImmediate(resolve)); // unhandled rejections surface by now
        expect(unhandled).toEqual([]);
      } finally {
        process.off("unhandledRejection", onUnhandled);
      }
    },
  );

  it("logging a result never shows the raw key", async () => {
    const mw = limiter({ limit: 5, windowMs: 60_000, key: () => "api-key-s3cr3t" });
    let seen: RateLimitResult | undefined;
    const app = express();
    app.get("/", mw, (req, res) => {
      seen = req.rateLimit;
      res.end();
    });
    await request(app).get("/");
    const { inspect } = await import("node:util");
    expect(inspect(seen, { depth: 5 })).not.toContain("s3cr3t");
    expect(JSON.stringify(seen)).not.toContain("s3cr3t");
  });

  it("peek needs the request when the limit is a function, and then uses its policy", async () => {
    const mw = limiter({ limit: (req) => (req.get("x-plan") === "pro" ? 5 : 2), windowMs: 60_000 });
    const app = createApp(mw);
    await request(app).get("/").set("x-plan", "pro");
    await expect(mw.peek("127.0.0.1")).rejects.toThrow(/peek\(key, req\) needs the request/);
    const pro = {
      get: (name: string) => (name === "x-plan" ? "pro" : undefined),
    } as express.Request;
    expect(await mw.peek("127.0.0.1", pro)).toMatchObject({ limit: 5, remaining: 4 });
    expect(
      await mw.keyOf({ ip: "::ffff:10.1.2.3", headers: {}, app } as unknown as express.Request),
    ).toBe("10.1.2.3");
  });

  it("a key function returning a non-string fails the request with a clear error", async () => {
    const app = createApp(
      limiter({ limit: 1, windowMs: 60_000, key: () => 42 as unknown as string }),
    );
    const errors = collectErrors(app);
    expect((await request(app).get("/")).status).toBe(500);
    expect(errors[0]).toBeInstanceOf(InvalidOptionError);
    expect(errors[0]?.message).toMatch(
      /rateLimit: key\(req, res\) must return a non-empty string, or null to leave the request uncounted \(got 42;/,
    );
  });
});

describe("normalizeIp", () => {
  it.each([
    ["203.0.113.9", "203.0.113.9"],
    ["::ffff:203.0.113.9", "203.0.113.9"],
    ["2001:db8:abcd:12ff:1:2:3:4", "2001:db8:abcd:1200::/56"],
    ["2001:db8:abcd:1200::", "2001:db8:abcd:1200::/56"],
    ["not an ip", "not an ip"],
  ])("%s → %s", (ip, expected) => {
    expect(normalizeIp(ip, 56)).toBe(expected);
  });

  it("keeps whole IPv6 addresses with ipv6Subnet false", () => {
    expect(normalizeIp("2001:0db8:0:0::1", false)).toBe("2001:db8::1");
  });
});

describe("options are validated once, naming the option and the value", () => {
  it.each([
    [{ windowMs: -5, limit: 1 }, /rateLimit: windowMs must be a positive integer \(got -5\)/],
    [{ limit: 1.5, windowMs: 1000 }, /rateLimit: limit must be a positive integer \(got 1.5\)/],
    [
      { limit: 1, windowMS: 1000 },
      /rateLimit: unknown option "windowMS"; did you mean "windowMs"\?/,
    ],
    [
      { limit: 1, windowMs: 1000, algorithm: "slidingwindow" },
      /algorithm must be one of .*did you mean "sliding-window"\?/,
    ],
    [{ limit: 1, windowMs: 1000, headers: "draft-9" }, /headers must be one of/],
    [
      { limit: 1, windowMs: 1000, onRedisError: "fail" },
      /onRedisError must be one of "memory", "open", "closed"/,
    ],
    [{ limit: 1, windowMs: 1000, prefix: "a{b}" }, /prefix must be a string .* without braces/],
    [
      { limit: 1, windowMs: 1000, redis: {} },
      /redis must be an ioredis 5\/6 or iovalkey Redis or Cluster client, or a connected node-redis/,
    ],
    [{ limit: 1, windowMs: 1000, statusCode: 200 }, /statusCode must be an HTTP error status/],
    [{ policies: [] }, /policies must be an array of 1 to 16 policies/],
    [
      { limit: 1, windowMs: 1000, partitionKeySecret: "short" },
      /partitionKeySecret must be a string of at least 16 characters \(got "\(hidden\)"\)/,
    ],
    [{ policies: [{ limit: 1, windowMs: 1000 }], limit: 5 }, /policies must be given alone/],
    [
      { limit: (): number => 1 },
      /windowMs must be a positive integer or a function \(req, res\) => number \(got undefined\)/,
    ],
    [
      { limit: (): number => 1, policies: [{ limit: 1, windowMs: 1000 }] },
      /limit must be a number when policies is given/,
    ],
  ])("%j", (options, message) => {
    expect(() => rateLimit(options as RateLimitOptions)).toThrow(InvalidOptionError);
    expect(() => rateLimit(options as RateLimitOptions)).toThrow(message);
  });
});

describe("coded warnings and redaction", () => {
  const capture = () => {
    const lines: string[] = [];
    return { lines, logger: { info() {}, warn: (m: string) => lines.push(m), error() {} } };
  };

  it("ERK_PREFIX_SHARED: two limiters counting into the same keys", () => {
    const { lines, logger } = capture();
    const redis = newRedis(undefined, { autoResendUnfulfilledCommands: false });
    rateLimit({ redis, limit: 1, windowMs: 1000, logger, prefix: `${prefix}same:` });
    expect(lines).toEqual([]);
    rateLimit({ redis, limit: 1, windowMs: 1000, logger, prefix: `${prefix}same:` });
    expect(lines.filter((l) => l.includes("ERK_PREFIX_SHARED"))).toHaveLength(1);
  });

  it("ERK_AUTO_RESEND: a client that would resend an unanswered script", () => {
    const { lines, logger } = capture();
    const safe = createRedisClient<Redis>({ url: process.env.ERK_TEST_REDIS_URL, logger });
    createRateLimiter({ redis: safe, limit: 1, windowMs: 1000, logger });
    expect(lines).toEqual([]); // createRedisClient turns resending off
    safe.disconnect();
    createRateLimiter({
      redis: newRedis(undefined, { autoResendUnfulfilledCommands: true }),
      limit: 1,
      windowMs: 1000,
      logger,
    });
    expect(lines.filter((l) => l.includes("ERK_AUTO_RESEND"))).toHaveLength(1);
  });

  it("warnings are once per instance: a quiet first instance does not silence the next", () => {
    const quiet = capture();
    const loud = capture();
    const noIp = { ip: undefined, headers: {}, socket: {} } as unknown as express.Request;
    const first = clientIpKey(56, new Warnings(quiet.logger));
    first(noIp);
    first(noIp);
    clientIpKey(56, new Warnings(loud.logger))(noIp);
    expect(quiet.lines.filter((l) => l.includes("ERK_NO_IP"))).toHaveLength(1);
    expect(loud.lines.filter((l) => l.includes("ERK_NO_IP"))).toHaveLength(1);
  });

  it("ipKeyGenerator has express-rate-limit's contract: (ip, ipv6Subnet = 56) => key", () => {
    expect(ipKeyGenerator("203.0.113.7")).toBe("203.0.113.7");
    expect(ipKeyGenerator("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(ipKeyGenerator("2001:db8:1:2:3::1")).toBe("2001:db8:1::/56");
    expect(ipKeyGenerator("2001:db8:1:2:3::1", 64)).toBe("2001:db8:1:2::/64");
    expect(ipKeyGenerator("2001:db8:1:2:3::1", false)).toBe("2001:db8:1:2:3::1");
  });

  it("ERK_NO_IP: a request without an address shares one key", () => {
    const { lines, logger } = capture();
    const key = clientIpKey(
      56,
      new Warnings(logger),
    )({ ip: undefined, headers: {}, socket: {} } as unknown as express.Request);
    expect(key).toBe("unknown-ip");
    expect(lines.filter((l) => l.includes("ERK_NO_IP"))).toHaveLength(1);
  });

  it("credentials in a rejected URL never reach the error message", () => {
    expect(() =>
      createRedisClient<Redis>({ url: "valkey://user:hunter2@cache.internal:6379" }),
    ).toThrow(/url must start with redis:\/\/ or rediss:\/\/ \(got "valkey:\/\/\*\*\*@cache/);
    expect(() =>
      createRedisClient<Redis>({ url: "valkey://user:hunter2@cache.internal:6379" }),
    ).not.toThrow(/hunter2/);
    expect(() =>
      rateLimit({ redis: "redis://:hunter2@cache.internal" as never, limit: 1, windowMs: 1 }),
    ).not.toThrow(/hunter2/);
  });
});

describe("express-rate-limit's req.rateLimit fields", () => {
  it("used and resetTime are there, on req.rateLimit and the handler's detail", async () => {
    const seen: { used: number; resetTime: Date; statusCode?: number; remaining: number }[] = [];
    const mw = rateLimit({
      limit: 2,
      windowMs: 60_000,
      statusCode: 429,
      handler: (_req, res, _next, detail) => {
        seen.push(detail);
        res.status(detail.statusCode).json({ used: detail.used });
      },
    });
    const app = express();
    app.use(mw);
    app.get("/", (req, res) => {
      seen.push(req.rateLimit!);
      res.json({ used: req.rateLimit!.used });
    });
    expect((await request(app).get("/")).body).toEqual({ used: 1 });
    expect((await request(app).get("/")).body).toEqual({ used: 2 });
    const third = await request(app).get("/");
    expect(third.status).toBe(429);
    expect(third.body).toEqual({ used: 2 });
    expect(seen.map((s) => s.used)).toEqual([1, 2, 2]);
    const first = seen[0]! as { resetTime: Date; resetMs?: number };
    const reset = first.resetTime.getTime() - Date.now();
    expect(reset).toBeGreaterThan(0);
    expect(Math.abs(reset - first.resetMs!)).toBeLessThan(1000); // the getter reads resetMs
    expect(seen[2]!.statusCode).toBe(429);
    expect(seen[2]!.remaining).toBe(0); // own fields survive beside the getters
  });
});
