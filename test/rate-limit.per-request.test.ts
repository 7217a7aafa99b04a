/**
 * Per-request limits (`limit`/`windowMs` functions) as a concept of the limiter, on every
 * backend: no placeholder policies, a consume without per-request limits refused, each plan
 * counted exactly, and calls with different windows for one key counted apart (checked in the
 * Redis state after the fact).
 */
import type express from "express";
import request from "supertest";
import {
  createRateLimiter,
  InvalidOptionError,
  type RateLimitOptions,
  rateLimit,
} from "../index.js";
import { taggedKey } from "../stores/core/keys.js";
import { MAX_ENTRIES } from "../stores/rate-limit/types.js";
import {
  ALL_BACKENDS,
  type Backend,
  clientFor,
  closeClients,
  createApp,
  inspectorFor,
  quiet,
  testPrefix,
} from "./helpers.js";

// These tests count; a slow call under load must fail them, not fall back to memory.
const strict = { logger: quiet, timeoutMs: 5000, onRedisError: "closed" } as const;
const HOUR = 3_600_000;

afterAll(closeClients);

describe.each(ALL_BACKENDS)("per-request limits on %s", (backend: Backend) => {
  const prefix = testPrefix(`${__filename}-${backend}`);
  const redis = clientFor(backend);
  const inspector = inspectorFor(backend);
  let n = 0;
  const fresh = () => `${prefix}${n++}:`;

  /** The entries of `key`'s state at policy position 0 ("<kind> <a> <b> <c> <until>" each). */
  async function entries(keyPrefix: string, key: string): Promise<string[][]> {
    const raw = await inspector!.get(`${taggedKey(keyPrefix, key)}:w0`);
    return raw === null ? [] : raw.split(";").map((entry) => entry.split(" "));
  }

  const planned = (p: string, options: Partial<RateLimitOptions> = {}) =>
    rateLimit({
      redis,
      prefix: p,
      ...strict,
      key: (req) => req.get("x-user") ?? null,
      limit: (req) => (req.get("x-plan") === "pro" ? 5 : 3),
      windowMs: HOUR,
      ...options,
    });

  it("the limiter shows no placeholder policies and refuses a consume without limits", async () => {
    const p = fresh();
    const mw = planned(p);
    expect(mw.limiter.policies).toEqual([]);
    expect(mw.limiter.perRequest).toBe(true);
    for (const call of [
      () => mw.limiter.consume("u1"),
      () => mw.limiter.consume("u1", 1, {}),
      () => mw.limiter.peek("u1"),
    ]) {
      const error = await call().catch((err: unknown) => err);
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as Error).message).toMatch(
        /limit and windowMs are per request .* pass them with each call: (consume|peek)\(key, cost, \{ limit, windowMs \}\) or .*\{ policies \}/,
      );
    }
    await expect(mw.limiter.consume("u1", 1, { limit: 3 })).rejects.toThrow(
      /windowMs must be a positive integer \(got undefined\)/,
    );
    if (inspector) expect(await entries(p, "u1")).toEqual([]); // nothing was counted anywhere
    // Negative control: a static limiter has its policy and needs nothing per call.
    const fixed = rateLimit({ redis, prefix: fresh(), ...strict, limit: 3, windowMs: HOUR });
    expect(fixed.limiter.perRequest).toBe(false);
    expect(fixed.limiter.policies).toEqual([
      { name: `3-per-${HOUR}ms`, limit: 3, windowMs: HOUR, algorithm: "sliding-window" },
    ]);
    expect((await fixed.limiter.consume("u1")).allowed).toBe(true);
  });

  it("two plans at limits 3 and 5 under 20 concurrent requests each: exactly 3 and 5 pass", async () => {
    const p = fresh();
    const app = createApp(planned(p));
    const burst = (user: string, plan: string) =>
      Promise.all(
        Array.from({ length: 20 }, () =>
          request(app).get("/").set("x-user", user).set("x-plan", plan),
        ),
      );
    const [free, pro] = await Promise.all([burst("f", "free"), burst("p", "pro")]);
    expect(free.filter((r) => r.status === 200)).toHaveLength(3);
    expect(free.filter((r) => r.status === 429)).toHaveLength(17);
    expect(pro.filter((r) => r.status === 200)).toHaveLength(5);
    expect(pro.filter((r) => r.status === 429)).toHaveLength(15);
    expect(pro[0]!.headers["ratelimit-policy"]).toMatch(/^"5-per-3600000ms";q=5;w=3600;/);
    if (inspector) {
      // Redis holds exactly the admitted units: b of the one entry ("<kind> <a> <b> ...").
      expect((await entries(p, "f")).map((e) => [e[0], e[2]])).toEqual([["2:3600000", "3"]]);
      expect((await entries(p, "p")).map((e) => [e[0], e[2]])).toEqual([["2:3600000", "5"]]);
    }
  });

  it("one key with different windows counts apart, and reset() clears every window", async () => {
    const p = fresh();
    const mw = planned(p, {
      limit: (req) => (req.path === "/" ? 2 : 3),
      windowMs: (req) => (req.path === "/" ? HOUR : 2 * HOUR),
    });
    const app = createApp(mw);
    app.post("/other", (_req, res) => {
      res.json({ ok: true });
    });
    // Interleaved: were the windows one state, each switch would start it afresh.
    const seq: string[] = [];
    for (const path of ["/", "/other", "/", "/other", "/", "/other", "/other"]) {
      const res = await (path === "/" ? request(app).get(path) : request(app).post(path)).set(
        "x-user",
        "same",
      );
      seq.push(`${path}:${res.status}`);
    }
    expect(seq).toEqual([
      "/:200",
      "/other:200",
      "/:200",
      "/other:200",
      "/:429",
      "/other:200",
      "/other:429",
    ]);
    if (inspector) {
      const stored = await entries(p, "same");
      expect(stored.map((e) => [e[0], e[2]]).sort()).toEqual([
        ["2:3600000", "2"],
        ["2:7200000", "3"],
      ]);
    }
    // The limiter counts with the middleware when given the same limits.
    expect(await mw.limiter.peek("same", 1, { limit: 2, windowMs: HOUR })).toMatchObject({
      allowed: false,
      remaining: 0,
    });
    await mw.reset("same");
    if (inspector) expect(await entries(p, "same")).toEqual([]);
    expect((await request(app).get("/").set("x-user", "same")).status).toBe(200);
    expect((await request(app).post("/other").set("x-user", "same")).status).toBe(200);
  });

  it(`keeps ${MAX_ENTRIES} windows per key, dropping the least recently written`, async () => {
    const limiter = createRateLimiter({
      redis,
      prefix: fresh(),
      ...strict,
      limit: 1,
      windowMs: HOUR,
    });
    const at = (i: number) => ({ limit: 1, windowMs: HOUR + i });
    for (let i = 0; i <= MAX_ENTRIES; i++) {
      expect((await limiter.consume("k", 1, at(i))).allowed).toBe(true);
    }
    // Windows 1..MAX_ENTRIES are still counted; window 0 was dropped.
    for (let i = 1; i <= MAX_ENTRIES; i++) {
      expect((await limiter.peek("k", 1, at(i))).allowed).toBe(false);
    }
    expect((await limiter.peek("k", 1, at(0))).allowed).toBe(true);
  });

  it("a refund gives back to its own window only", async () => {
    const mw = planned(fresh());
    const a = await mw.limiter.consume("k", 1, { limit: 2, windowMs: HOUR });
    await mw.limiter.consume("k", 1, { limit: 2, windowMs: 2 * HOUR, algorithm: "fixed-window" });
    await mw.limiter.refund(a);
    expect((await mw.limiter.peek("k", 1, { limit: 2, windowMs: HOUR })).remaining).toBe(2);
    const other = { limit: 2, windowMs: 2 * HOUR, algorithm: "fixed-window" } as const;
    expect((await mw.limiter.peek("k", 1, other)).remaining).toBe(1);
  });

  it("peek(key, req) resolves the request's limits", async () => {
    const mw = planned(fresh());
    const app = createApp(mw);
    await request(app).get("/").set("x-user", "u").set("x-plan", "pro");
    const pro = { get: (h: string) => (h === "x-plan" ? "pro" : "u") } as express.Request;
    expect(await mw.peek("u", pro)).toMatchObject({ limit: 5, remaining: 4 });
  });
});
