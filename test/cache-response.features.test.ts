/**
 * cacheResponse() features beyond single-response HTTP rules, on memory, a standalone Redis
 * and a Redis Cluster: coalescing within a process, stale-while-revalidate, stale-if-error,
 * tags and purges, body limits and aborts, query normalisation, compression, and the keys
 * it writes to Redis.
 */
import { once } from "node:events";
import net from "node:net";
import compression from "compression";
import type express from "express";
import session from "express-session";
import type { Redis } from "ioredis";
import { cacheResponse, InvalidOptionError } from "../index.js";
import {
  binary,
  type CacheBackend,
  clientFor,
  closeServers,
  quiet,
  serve,
} from "./cache-helpers.js";
import { ALL_BACKENDS, closeClients, testPrefix, wait } from "./helpers.js";

afterAll(async () => {
  await closeServers();
  await closeClients();
});

const slowJson =
  (ms: number, headers: Record<string, string> = {}): express.RequestHandler =>
  (_req, res) => {
    setTimeout(() => res.set(headers).json({ at: Date.now(), r: Math.random() }), ms);
  };

describe.each(ALL_BACKENDS)("cacheResponse() on %s", (backend) => {
  const redis = clientFor(backend);
  const prefix = testPrefix(`${__filename}-${backend}`);
  let n = 0;
  const options = () => ({ redis, prefix: `${prefix}${n++}:`, timeoutMs: 2000 });

  it("100 concurrent misses in one process run the handler once; all get the same body", async () => {
    const app = await serve(options(), { "/slow": slowJson(200) });
    const results = await Promise.all(Array.from({ length: 100 }, () => app.get("/slow")));
    expect(app.calls.get("/slow")).toBe(1);
    const bodies = new Set(results.map((r) => JSON.stringify(r.body)));
    expect(bodies.size).toBe(1);
    expect(results.filter((r) => r.headers["x-cache"] === "MISS")).toHaveLength(1);
    expect(results.filter((r) => r.headers["x-cache"] === "HIT")).toHaveLength(99);
    // Requests that arrived before the fill landed waited for it; later ones simply hit.
    const stats = app.cache.stats();
    expect(stats).toMatchObject({ hits: 99, stored: 1 });
    expect(stats.misses).toBe(1 + stats.coalesced);
    expect(stats.coalesced).toBeGreaterThan(0);
  });

  it("negative control: coalesce: false runs the handler for every concurrent miss", async () => {
    const app = await serve({ ...options(), coalesce: false }, { "/slow": slowJson(100) });
    await Promise.all(Array.from({ length: 10 }, () => app.get("/slow")));
    expect(app.calls.get("/slow")).toBe(10);
  });

  it("stale-while-revalidate: serves stale while one request refreshes", async () => {
    let version = 0;
    const app = await serve(
      { ...options(), staleWhileRevalidateMs: 30_000 },
      {
        "/r": (_req, res) => {
          version++;
          const v = version;
          setTimeout(() => res.set("Cache-Control", "max-age=1").json({ v }), v === 1 ? 0 : 200);
        },
      },
    );
    expect((await app.get("/r")).body).toEqual({ v: 1 });
    await wait(1100); // let the entry's one second of freshness pass
    const [refresher, ...others] = await Promise.all(
      Array.from({ length: 5 }, () => app.get("/r")),
    );
    const all = [refresher!, ...others];
    const stale = all.filter((r) => r.headers["x-cache"] === "STALE");
    const refreshed = all.filter((r) => r.headers["x-cache"] === "MISS");
    expect(refreshed).toHaveLength(1);
    expect(refreshed[0]!.body).toEqual({ v: 2 });
    expect(refreshed[0]!.headers["cache-status"]).toBe("express-redis-kit; fwd=stale; stored");
    expect(stale).toHaveLength(4);
    for (const r of stale) {
      expect(r.body).toEqual({ v: 1 });
      expect(r.headers["cache-status"]).toMatch(
        /^express-redis-kit; hit; ttl=-\d+; detail=stale-while-revalidate$/,
      );
    }
    const after = await app.get("/r");
    expect([after.headers["x-cache"], after.body]).toEqual(["HIT", { v: 2 }]);
    expect(app.calls.get("/r")).toBe(2);
  });

  it("stale-if-error: a 5xx or next(err) after freshness is replaced by the stale entry", async () => {
    let fail: false | "status" | "throw" = false;
    const app = await serve(
      { ...options(), staleIfErrorMs: 30_000 },
      {
        "/r": (_req, res, next) => {
          if (fail === "throw") return next(new Error("db down"));
          if (fail === "status") return void res.status(503).json({ error: "busy" });
          res.set("Cache-Control", "max-age=1").json({ ok: 1 });
        },
      },
    );
    await app.get("/r");
    await wait(1100);
    for (const mode of ["status", "throw"] as const) {
      fail = mode;
      const res = await app.get("/r");
      expect([mode, res.status, res.headers["x-cache"], res.body]).toEqual([
        mode,
        200,
        "STALE",
        { ok: 1 },
      ]);
      expect(res.headers["cache-status"]).toMatch(/fwd-status=(503|500); detail=stale-if-error$/);
    }
    fail = false;
    // The origin is back: the stale entry is revalidated (same body: res.json answers 304).
    const fresh = await app.get("/r");
    expect([fresh.headers["x-cache"], fresh.body]).toEqual(["REVALIDATED", { ok: 1 }]);
  });

  it("without stale-if-error, the error passes through", async () => {
    let fail = false;
    const app = await serve(options(), {
      "/r": (_req, res) => {
        if (fail) return void res.status(500).json({ error: "x" });
        res.set("Cache-Control", "max-age=1").json({ ok: 1 });
      },
    });
    await app.get("/r");
    await wait(1100);
    fail = true;
    expect((await app.get("/r")).status).toBe(500);
  });

  it("purgeTags() deletes entries tagged by res.cacheTags() or the tags option; purge() deletes every variant of a URL", async () => {
    const app = await serve(
      { ...options(), tags: (req) => (req.path.startsWith("/items") ? ["items"] : []) },
      {
        "/items/:id": (req, res) => {
          res.cacheTags?.([`item:${req.params.id}`]);
          res.set("Vary", "Accept-Language").json({ id: req.params.id });
        },
        "/other": (_req, res) => {
          res.json({});
        },
      },
    );
    const hit = async (path: string, lang = "en") =>
      (await app.get(path).set("Accept-Language", lang)).headers["x-cache"];
    for (const path of ["/items/1", "/items/2", "/other"]) await hit(path);
    await hit("/items/1", "fr");
    expect(await hit("/items/1")).toBe("HIT");
    expect(await app.cache.purgeTags(["item:1"])).toBeGreaterThanOrEqual(2); // en and fr variants
    expect(await hit("/items/1")).toBe("MISS");
    expect(await hit("/items/2")).toBe("HIT");
    await app.cache.purgeTags(["items"]);
    expect(await hit("/items/2")).toBe("MISS");
    expect(await hit("/other")).toBe("HIT");
    expect(await hit("/items/1", "fr")).toBe("MISS");
    expect(await hit("/items/1", "fr")).toBe("HIT");
    expect(await app.cache.purge("/items/1")).toBeGreaterThanOrEqual(1);
    expect(await hit("/items/1", "fr")).toBe("MISS");
    expect(await hit("/other")).toBe("HIT");
  });

  it("purge() matches the URL with its query normalised; purgeAll() retires everything", async () => {
    const app = await serve(
      { ...options(), query: { deny: ["utm_*"] } },
      { "/q": (req, res) => void res.json(req.query) },
    );
    await app.get("/q?b=2&a=1&utm_source=x");
    expect((await app.get("/q?a=1&b=2&utm_medium=y")).headers["x-cache"]).toBe("HIT");
    expect((await app.get("/q?a=1&b=3")).headers["x-cache"]).toBe("MISS");
    expect(await app.cache.purge({ path: "/q", query: { b: "2", a: "1" } })).toBe(1);
    expect((await app.get("/q?a=1&b=2")).headers["x-cache"]).toBe("MISS");
    expect((await app.get("/q?a=1&b=3")).headers["x-cache"]).toBe("HIT");
    await app.cache.purgeAll();
    expect((await app.get("/q?a=1&b=3")).headers["x-cache"]).toBe("MISS");
    expect((await app.get("/q?a=1&b=3")).headers["x-cache"]).toBe("HIT");
  });

  it("a query allow list keeps only the listed parameters in the key", async () => {
    const app = await serve(
      { ...options(), query: { allow: ["page"] } },
      { "/q": (req, res) => void res.json(req.query) },
    );
    await app.get("/q?page=1&session=abc");
    expect((await app.get("/q?page=1&other=1")).headers["x-cache"]).toBe("HIT");
    expect((await app.get("/q?page=2")).headers["x-cache"]).toBe("MISS");
  });

  it("a body over maxBodyBytes streams through whole and is not stored", async () => {
    const big = Buffer.alloc(5000, 7);
    const app = await serve(
      { ...options(), maxBodyBytes: 4096 },
      {
        "/big": (_req, res) => {
          res.type("application/octet-stream");
          res.write(big.subarray(0, 2500));
          res.end(big.subarray(2500));
        },
      },
    );
    for (let i = 0; i < 2; i++) {
      const res = await app.get("/big").buffer(true).parse(binary);
      expect(res.headers["x-cache"]).toBe("MISS");
      expect(Buffer.compare(res.body as Buffer, big)).toBe(0);
    }
    expect(app.calls.get("/big")).toBe(2);
  });

  it("a response aborted by the client is never stored", async () => {
    let release!: () => void;
    let closed!: Promise<unknown>;
    const app = await serve(options(), {
      "/abort": (_req, res) => {
        res.type("text/plain");
        res.write("partial ");
        if (closed !== undefined) return void res.end("rest"); // later calls end at once
        closed = once(res, "close");
        release = () => res.end("rest");
      },
    });
    const socket = net.connect(await portOf(app), "127.0.0.1");
    socket.write("GET /abort HTTP/1.1\r\nHost: abort.test\r\n\r\n");
    await once(socket, "data"); // headers and "partial " arrived
    socket.destroy();
    await closed; // the server saw the abort; the handler ends its response afterwards
    release();
    const next = await app.get("/abort");
    expect(next.headers["x-cache"]).toBe("MISS");
    expect(app.calls.get("/abort")).toBe(2);
    // Control: the second, complete response is stored (Redis stores after the response ends).
    let third = await app.get("/abort");
    for (let i = 0; i < 20 && third.headers["x-cache"] !== "HIT"; i++)
      third = await app.get("/abort");
    expect(third.headers["x-cache"]).toBe("HIT");
  });

  it("works behind compression() mounted after it: stored bytes match the stored Content-Encoding", async () => {
    const text = "hello compression ".repeat(200);
    const app = await serve(
      options(),
      { "/z": (_req, res) => void res.type("text/plain").send(text) },
      [],
    );
    // serve() mounts the cache first; mount compression behind it, before the routes.
    app.app.use(compression({ threshold: 0 }));
    // Express 5 exposes app.router; Express 4 keeps it in app._router (and throws on app.router).
    type Router = { stack: { name: string }[] };
    const express4 = (app.app as unknown as { _router?: Router })._router;
    const router = express4 ?? (app.app as unknown as { router: Router }).router;
    const stack = router.stack;
    stack.splice(stack.findIndex((l) => l.name === "cacheResponseMiddleware") + 1, 0, stack.pop()!);
    for (let i = 0; i < 2; i++) {
      const gz = await app.get("/z").set("Accept-Encoding", "gzip").buffer(true).parse(binary);
      expect(gz.headers["content-encoding"]).toBe("gzip");
      expect(gz.headers["x-cache"]).toBe(i === 0 ? "MISS" : "HIT");
      // superagent gunzips; the compressed length shows the bytes on the wire were gzip.
      expect((gz.body as Buffer).toString()).toBe(text);
      expect(Number(gz.headers["content-length"] ?? 0)).toBeLessThan(text.length / 4);
      const plain = await app.get("/z").set("Accept-Encoding", "identity");
      expect(plain.headers["content-encoding"]).toBeUndefined();
      expect(plain.headers["x-cache"]).toBe(i === 0 ? "MISS" : "HIT");
      expect(plain.text).toBe(text);
    }
    expect(app.calls.get("/z")).toBe(2);
  });

  it("headers set by middleware before the cache are not stored (a hit keeps the current request's)", async () => {
    let counter = 0;
    const app = await serve(options(), { "/r": (_req, res) => void res.json({}) }, [
      (_req, res, next) => {
        res.setHeader("X-Before", String(++counter));
        next();
      },
    ]);
    await app.get("/r");
    expect((await app.get("/r")).headers["x-before"]).toBe("2");
  });

  if (backend === "standalone") {
    it("keys are hashes in one hash tag, whatever the URL; tag indexes stay small", async () => {
      const o = options();
      const app = await serve(o, { "/*path": (_req, res) => void res.json({}) });
      const nasty = ["/a{b}c", "/x*?y=*", "/%0D%0Aset%20x", `/long?q=${"z".repeat(10_000)}`];
      for (const path of nasty) await app.get(path);
      const scan = async () => {
        const found: string[] = [];
        const stream = (redis as Redis).scanStream({ match: `${o.prefix}*`, count: 1000 });
        for await (const batch of stream) found.push(...(batch as string[]));
        return found;
      };
      // Entries are stored after their responses end: wait until the fill locks are gone.
      let keys = await scan();
      for (let i = 0; i < 40 && keys.some((k) => k.endsWith(":lock")); i++) keys = await scan();
      expect(keys.filter((k) => k.endsWith(":lock"))).toEqual([]);
      const entries = keys.filter((k) => !k.startsWith(`${o.prefix}t:`));
      expect(entries).toHaveLength(4);
      for (const key of entries)
        expect(key).toMatch(
          new RegExp(`^${o.prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\{[A-Za-z0-9_-]{27}\\}$`),
        );
      for (const key of keys) expect(key.length).toBeLessThan(200);
      expect(await (redis as Redis).exists(`${o.prefix}gen`)).toBe(0);
    });
  }
});

async function portOf(app: { get: (path: string) => { url: string } }): Promise<number> {
  return Number(new URL(app.get("/").url).port);
}

describe("cacheResponse() options", () => {
  it.each([
    [{ ttlMs: -1 }, "ttlMs"],
    [{ ttlMs: 10, maxTtlMs: 5 }, "ttlMs"],
    [{ statuses: [200, 500] }, "statuses"],
    [{ statuses: [206] }, "statuses"],
    [{ maxBodyBytes: 0 }, "maxBodyBytes"],
    [{ prefix: "a{b}" }, "prefix"],
    [{ memory: { maxEntries: 0 } }, "memory.maxEntries"],
    [{ query: { allow: ["a"], deny: ["b"] } }, "query"],
    [{ targetedField: "bad field" }, "targetedField"],
    [{ coalesce: "yes" }, "coalesce"],
    [{ ttl: 5 }, "ttl"],
    [{ redis: {} }, "redis"],
  ])("%j is rejected naming %s", (options, option) => {
    expect(() => cacheResponse({ logger: quiet, ...(options as object) })).toThrow(
      InvalidOptionError,
    );
    try {
      cacheResponse({ logger: quiet, ...(options as object) });
    } catch (err) {
      expect((err as InvalidOptionError).option).toBe(option);
      expect((err as Error).message).toMatch(/^cacheResponse: /);
    }
  });

  it("an unknown option suggests the closest one", () => {
    expect(() => cacheResponse({ ttlMS: 5 } as object)).toThrow('did you mean "ttlMs"?');
  });

  it("a key(req) that returns an object is a clear error through next(err)", async () => {
    const app = await serve(
      { key: () => ({}) as unknown as string },
      { "/r": (_req, res) => void res.json({}) },
    );
    const res = await app.get("/r");
    expect(res.status).toBe(500);
    expect(res.body.error).toMatch(/^cacheResponse: key\(req\) must return/);
  });

  it("purge() and purgeTags() reject bad input", async () => {
    const cache = cacheResponse({ logger: quiet });
    await expect(cache.purge("no-slash")).rejects.toThrow(InvalidOptionError);
    await expect(cache.purgeTags([""])).rejects.toThrow(InvalidOptionError);
    await expect(cache.purgeTags("x" as unknown as string[])).rejects.toThrow(InvalidOptionError);
  });
});

describe.each(["memory", "standalone"] as CacheBackend[])(
  "cacheResponse() safety on %s",
  (backend) => {
    const redis = clientFor(backend);
    const prefix = testPrefix(`${__filename}-safety-${backend}`);
    let n = 0;
    const options = () => ({ redis, prefix: `${prefix}${n++}:`, timeoutMs: 2000 });

    it("a Set-Cookie added inside writeHead (express-session) is seen: the response is not stored", async () => {
      const app = await serve(
        options(),
        {
          "/token": (req, res) => {
            const s = req.session as unknown as { token?: string };
            s.token ??= Math.random().toString(36).slice(2);
            res.json({ token: s.token });
          },
        },
        [session({ secret: "test", resave: false, saveUninitialized: false })],
      );
      const a = await app.get("/token");
      expect(a.headers["set-cookie"]).toBeDefined();
      const b = await app.get("/token"); // another anonymous client
      expect(b.headers["x-cache"]).not.toBe("HIT");
      expect(b.body.token).not.toBe(a.body.token);
    });

    it("a Cache-Control the handler overwrote is stored and replayed as the handler set it", async () => {
      const app = await serve(
        { ...options(), userAware: true },
        {
          "/me": (_req, res) => void res.set("Cache-Control", "private, max-age=60").json({}),
        },
        [
          (req, res, next) => {
            (req as unknown as { session: object }).session = { userId: "alice" };
            res.set("Cache-Control", "public, max-age=300");
            next();
          },
        ],
      );
      await app.get("/me");
      const hit = await app.get("/me");
      expect(hit.headers["x-cache"]).toBe("HIT");
      expect(hit.headers["cache-control"]).toBe("private, max-age=60");
    });

    it("any req.user or req.auth makes a request signed-in; userAware needs an id", async () => {
      const withUser =
        (user: unknown): express.RequestHandler =>
        (req, _res, next) => {
          (req as unknown as { user: unknown }).user = user;
          next();
        };
      const shared = await serve(options(), { "/r": (_req, res) => void res.json({}) }, [
        withUser({ sub: "alice" }),
      ]);
      expect((await shared.get("/r")).headers["cache-status"]).toMatch(/detail=signed-in$/);
      const aware = await serve(
        { ...options(), userAware: true },
        { "/r": (_req, res) => void res.json({}) },
        [withUser({ sub: "alice" })],
      );
      expect((await aware.get("/r")).headers["cache-status"]).toMatch(/detail=no-user$/);
      const big = await serve(
        { ...options(), userAware: true },
        { "/r": (_req, res) => void res.json({}) },
        [withUser({ id: 10n })],
      );
      await big.get("/r");
      expect((await big.get("/r")).headers["x-cache"]).toBe("HIT");
    });

    it("a tags() that throws is logged, the response is not stored, the process lives on", async () => {
      const errors: string[] = [];
      const app = await serve(
        {
          ...options(),
          logger: { ...quiet, error: (m: string) => void errors.push(m) },
          tags: () => {
            throw new Error("boom");
          },
        },
        { "/r": (_req, res) => void res.json({}) },
      );
      expect((await app.get("/r")).status).toBe(200);
      expect((await app.get("/r")).headers["x-cache"]).toBe("MISS");
      expect(errors[0]).toMatch(/tags\(req, res\) threw \(boom\)/);
    });

    it("a fill that began before a purge of its tag is not stored", async () => {
      const app = await serve(options(), {
        "/slow": (_req, res) => {
          res.cacheTags?.(["t"]);
          setTimeout(() => res.json({ r: Math.random() }), 300);
        },
      });
      const first = app.get("/slow").then((r) => r);
      await wait(100);
      await app.cache.purgeTags(["t"]); // the data changed while the old response was computed
      await first;
      expect((await app.get("/slow")).headers["x-cache"]).toBe("MISS");
      expect((await app.get("/slow")).headers["x-cache"]).toBe("HIT"); // control: stored normally
    });

    it("an unrelated POST does not spoil a fill in flight", async () => {
      const app = await serve(options(), {
        "/slow": slowJson(200),
        "/other": (_req, res) => void res.json({}),
      });
      const gets = Promise.all(Array.from({ length: 5 }, () => app.get("/slow")));
      await wait(50);
      await app.agent().post("/other");
      const results = await gets;
      expect(app.calls.get("/slow")).toBe(1);
      expect(new Set(results.map((r) => r.text)).size).toBe(1);
      expect((await app.get("/slow")).headers["x-cache"]).toBe("HIT");
    });

    it("paths are keyed as Express routes them: case and a trailing slash do not split entries", async () => {
      const app = await serve(options(), { "/api/items": (_req, res) => void res.json({}) });
      await app.get("/api/items");
      expect((await app.get("/API/Items/")).headers["x-cache"]).toBe("HIT");
      expect(await app.cache.purge("/api/ITEMS")).toBe(1);
      expect((await app.get("/api/items")).headers["x-cache"]).toBe("MISS");
    });

    it("stale-if-error keeps the headers earlier middleware set (CORS)", async () => {
      let fail = false;
      const app = await serve(
        { ...options(), staleIfErrorMs: 30_000 },
        {
          "/r": (_req, res) => {
            if (fail) return void res.status(500).set("X-Error", "1").json({});
            res.set("Cache-Control", "max-age=1").json({ ok: 1 });
          },
        },
        [
          (_req, res, next) => {
            res.set("Access-Control-Allow-Origin", "https://app.example");
            next();
          },
        ],
      );
      await app.get("/r");
      await wait(1100);
      fail = true;
      const res = await app.get("/r");
      expect(res.headers["x-cache"]).toBe("STALE");
      expect(res.headers["access-control-allow-origin"]).toBe("https://app.example");
      expect(res.headers["x-error"]).toBeUndefined();
    });

    if (backend === "standalone") {
      it("with the memory tier, a stale entry is still refreshed (stale-while-revalidate)", async () => {
        let version = 0;
        const app = await serve(
          { ...options(), memory: { maxEntries: 10 }, staleWhileRevalidateMs: 30_000 },
          {
            "/r": (_req, res) => void res.set("Cache-Control", "max-age=1").json({ v: ++version }),
          },
        );
        await app.get("/r");
        expect((await app.get("/r")).headers["x-cache"]).toBe("HIT");
        await wait(1100);
        const refresh = await app.get("/r");
        expect([refresh.headers["x-cache"], refresh.body]).toEqual(["MISS", { v: 2 }]);
        let after = await app.get("/r");
        for (let i = 0; i < 20 && after.headers["x-cache"] !== "HIT"; i++)
          after = await app.get("/r");
        expect([after.headers["x-cache"], after.body]).toEqual(["HIT", { v: 2 }]);
      });
    }
  },
);
