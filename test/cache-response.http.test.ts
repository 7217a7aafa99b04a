/**
 * cacheResponse() HTTP semantics, table-driven in the style of the public cache-tests suite,
 * on memory, a standalone Redis and a Redis Cluster: what is stored (status, Cache-Control,
 * targeted fields, Expires, Age, Set-Cookie, Vary), what a hit replays, HEAD, 304s,
 * Authorization and per-user isolation.
 */
import type express from "express";
import { binary, type CacheBackend, clientFor, closeServers, serve } from "./cache-helpers.js";
import { closeClients, testPrefix } from "./helpers.js";

afterAll(async () => {
  await closeServers();
  await closeClients();
});

type Headers = Record<string, string>;
const json =
  (status: number, headers: Headers = {}): express.RequestHandler =>
  (_req, res) => {
    res.status(status).set(headers);
    if (status === 204) res.end();
    else res.json({ n: Math.random() });
  };

/** [name, status, response headers, stored?] */
const STORABILITY: [string, number, Headers, boolean][] = [
  ["200", 200, {}, true],
  ["203", 203, {}, true],
  ["204", 204, {}, true],
  ["300", 300, {}, true],
  ["301", 301, { Location: "/x" }, true],
  ["308", 308, { Location: "/x" }, true],
  ["404", 404, {}, true],
  ["405", 405, {}, true],
  ["410", 410, {}, true],
  ["414", 414, {}, true],
  ["501", 501, {}, true],
  ["201 (not in statuses)", 201, {}, false],
  ["206 never", 206, { "Content-Range": "bytes 0-1/10" }, false],
  ["302 (not in statuses)", 302, { Location: "/x" }, false],
  ["400 (not in statuses)", 400, {}, false],
  ["500 never", 500, {}, false],
  ["502 never", 502, {}, false],
  ["503 never", 503, {}, false],
  ["Set-Cookie never", 200, { "Set-Cookie": "sid=1" }, false],
  ["Cache-Control: no-store", 200, { "Cache-Control": "no-store" }, false],
  ["Cache-Control: NO-STORE (case-insensitive)", 200, { "Cache-Control": "NO-STORE" }, false],
  ["Cache-Control: no-cache", 200, { "Cache-Control": "no-cache" }, false],
  [
    'Cache-Control: no-cache="Set-Cookie"',
    200,
    { "Cache-Control": 'no-cache="Set-Cookie"' },
    false,
  ],
  ["Cache-Control: private", 200, { "Cache-Control": "private, max-age=60" }, false],
  ["Cache-Control: Private (case-insensitive)", 200, { "Cache-Control": "Private" }, false],
  ["Cache-Control: public", 200, { "Cache-Control": "public" }, true],
  ["Cache-Control: max-age=60", 200, { "Cache-Control": "max-age=60" }, true],
  ['Cache-Control: max-age="60" (quoted)', 200, { "Cache-Control": 'max-age="60"' }, true],
  ["Cache-Control: max-age=0", 200, { "Cache-Control": "max-age=0" }, false],
  ["Cache-Control: max-age=abc (invalid: stale)", 200, { "Cache-Control": "max-age=abc" }, false],
  ["Cache-Control: max-age=-1 (invalid: stale)", 200, { "Cache-Control": "max-age=-1" }, false],
  ["conflicting max-age (stale)", 200, { "Cache-Control": "max-age=60, max-age=120" }, false],
  ["s-maxage=0 wins over max-age=60", 200, { "Cache-Control": "max-age=60, s-maxage=0" }, false],
  ["s-maxage=60 wins over max-age=0", 200, { "Cache-Control": "max-age=0, s-maxage=60" }, true],
  ["Expires in the future", 200, { Expires: new Date(Date.now() + 60_000).toUTCString() }, true],
  ["Expires in the past", 200, { Expires: "Thu, 01 Jan 1970 00:00:00 GMT" }, false],
  ["Expires: 0 (invalid: already stale)", 200, { Expires: "0" }, false],
  ["Expires: garbage (invalid: already stale)", 200, { Expires: "soon" }, false],
  [
    "max-age wins over an invalid Expires",
    200,
    { "Cache-Control": "max-age=60", Expires: "0" },
    true,
  ],
  [
    "Age 90 > max-age 60 (stale on arrival)",
    200,
    { "Cache-Control": "max-age=60", Age: "90" },
    false,
  ],
  ["Age 30 < max-age 60", 200, { "Cache-Control": "max-age=60", Age: "30" }, true],
  ["Age: abc is ignored", 200, { "Cache-Control": "max-age=60", Age: "abc" }, true],
  ["Vary: * never", 200, { Vary: "*" }, false],
  [
    "CDN-Cache-Control: no-store overrides Cache-Control",
    200,
    { "Cache-Control": "max-age=60", "CDN-Cache-Control": "no-store" },
    false,
  ],
  [
    "CDN-Cache-Control: max-age overrides Cache-Control: no-store",
    200,
    { "Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60" },
    true,
  ],
  // A targeted field that is not a valid Structured Field Dictionary, or types a directive
  // wrongly, is ignored as a whole: Cache-Control (no-store here) applies.
  ...(
    [
      ["max-age=10000, &&&&&", false],
      ['max-age="60"', false],
      ["max-age=60.5", false],
      ["max-age=-1", false],
      ["Max-Age=60", false],
      ["max-age=60,", false],
      ["max-age=60;note=1", true],
      ["max-age=60, public", true],
    ] as const
  ).map(([value, stored]): [string, number, Headers, boolean] => [
    `CDN-Cache-Control: ${value} over Cache-Control: no-store`,
    200,
    { "Cache-Control": "no-store", "CDN-Cache-Control": value },
    stored,
  ]),
  [
    "CDN-Cache-Control: no-store=?0 (a wrongly typed flag) is ignored: Cache-Control max-age applies",
    200,
    { "Cache-Control": "max-age=60", "CDN-Cache-Control": "no-store=?0" },
    true,
  ],
  // Expires is an HTTP-date in one of three forms, nothing else (RFC 9110 §5.6.7).
  ["Expires, IMF-fixdate in 2050", 200, { Expires: "Thu, 18 Aug 2050 02:01:18 GMT" }, true],
  ["Expires, rfc850-date in 2050", 200, { Expires: "Thursday, 18-Aug-50 02:01:18 GMT" }, true],
  ["Expires, asctime-date in 2050", 200, { Expires: "Thu Aug 18 02:01:18 2050" }, true],
  ["Expires in UTC (invalid)", 200, { Expires: "Thu, 18 Aug 2050 02:01:18 UTC" }, false],
  ["Expires in AEST (invalid)", 200, { Expires: "Thu, 18 Aug 2050 02:01:18 AEST" }, false],
  ["Expires without the comma (invalid)", 200, { Expires: "Thu 18 Aug 2050 02:01:18 GMT" }, false],
  ["Expires with two spaces (invalid)", 200, { Expires: "Thu,  18 Aug 2050 02:01:18 GMT" }, false],
  ["Expires with dashes (invalid)", 200, { Expires: "Thu, 18-Aug-2050 02:01:18 GMT" }, false],
  [
    "Expires with a one-digit hour (invalid)",
    200,
    { Expires: "Thu, 18 Aug 2050 2:01:18 GMT" },
    false,
  ],
];

describe.each(["memory", "standalone", "cluster"] as CacheBackend[])(
  "cacheResponse() HTTP on %s",
  (backend) => {
    const redis = clientFor(backend);
    const prefix = testPrefix(`${__filename}-${backend}`);
    let n = 0;
    const options = () => ({ redis, prefix: `${prefix}${n++}:`, timeoutMs: 2000 });

    it.each(STORABILITY)("%s", async (_name, status, headers, stored) => {
      const app = await serve(options(), { "/r": json(status, headers) });
      const first = await app.get("/r");
      expect(first.status).toBe(status);
      expect(first.headers["x-cache"]).toBe("MISS");
      const second = await app.get("/r");
      expect(second.status).toBe(status);
      expect(second.headers["x-cache"]).toBe(stored ? "HIT" : "MISS");
      expect(app.calls.get("/r")).toBe(stored ? 1 : 2);
      if (stored && status !== 204) expect(second.body).toEqual(first.body);
      if (stored) expect(second.headers["set-cookie"]).toBeUndefined();
    });

    it("a hit replays status, headers and the origin's Date, never rewrites Cache-Control, and adds Age and Cache-Status", async () => {
      const app = await serve(options(), {
        "/r": (_req, res) => {
          res.set({
            "Cache-Control": "public, max-age=60",
            "CDN-Cache-Control": "max-age=30",
            "X-Custom": "1",
            Connection: "close, X-Hop",
            "X-Hop": "h",
          });
          res.status(203).json({ ok: true });
        },
      });
      const miss = await app.get("/r");
      expect(miss.headers["cache-status"]).toBe("express-redis-kit; fwd=uri-miss; stored");
      const hit = await app.get("/r");
      expect(hit.status).toBe(203);
      expect(hit.headers["x-cache"]).toBe("HIT");
      expect(hit.headers["cache-control"]).toBe("public, max-age=60");
      expect(hit.headers["x-custom"]).toBe("1");
      expect(hit.headers["x-hop"]).toBeUndefined(); // named in Connection: hop-by-hop
      expect(hit.headers.date).toBe(miss.headers.date);
      expect(Number(hit.headers.age)).toBeGreaterThanOrEqual(0);
      expect(hit.headers["cache-status"]).toMatch(/^express-redis-kit; hit; ttl=(29|30)$/); // the targeted field's 30 s
      expect(hit.body).toEqual(miss.body);
    });

    it("an Age from upstream counts into the replayed Age", async () => {
      const app = await serve(options(), {
        "/r": json(200, { "Cache-Control": "max-age=60", Age: "30" }),
      });
      await app.get("/r");
      const hit = await app.get("/r");
      expect(hit.headers["x-cache"]).toBe("HIT");
      expect(Number(hit.headers.age)).toBeGreaterThanOrEqual(30);
      expect(hit.headers["cache-status"]).toMatch(/ttl=(29|30)$/);
    });

    it("targetedField: false ignores CDN-Cache-Control; a custom targeted field is honoured", async () => {
      const ignoring = await serve(
        { ...options(), targetedField: false },
        { "/r": json(200, { "Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60" }) },
      );
      await ignoring.get("/r");
      expect((await ignoring.get("/r")).headers["x-cache"]).toBe("MISS");
      const custom = await serve(
        { ...options(), targetedField: "Edge-Cache-Control" },
        { "/r": json(200, { "Cache-Control": "max-age=60", "Edge-Cache-Control": "no-store" }) },
      );
      await custom.get("/r");
      expect((await custom.get("/r")).headers["x-cache"]).toBe("MISS");
    });

    it("ttlMs: 0 stores only responses that state their freshness; maxTtlMs caps it", async () => {
      const app = await serve(
        { ...options(), ttlMs: 0, maxTtlMs: 10_000 },
        {
          "/none": json(200),
          "/stated": json(200, { "Cache-Control": "max-age=3600" }),
        },
      );
      await app.get("/none");
      expect((await app.get("/none")).headers["x-cache"]).toBe("MISS");
      await app.get("/stated");
      const hit = await app.get("/stated");
      expect(hit.headers["x-cache"]).toBe("HIT");
      expect(hit.headers["cache-status"]).toMatch(/ttl=(9|10)$/);
    });

    it("HEAD is answered from the GET entry without a body; a HEAD miss stores nothing", async () => {
      const app = await serve(options(), { "/r": json(200), "/h": json(200) });
      const { agent } = app;
      expect((await agent().head("/h")).headers["x-cache"]).toBe("MISS");
      expect((await agent().get("/h")).headers["x-cache"]).toBe("MISS"); // HEAD stored nothing
      expect(app.calls.get("/h")).toBe(2);
      const get = await agent().get("/r");
      const head = await agent().head("/r");
      expect(head.headers["x-cache"]).toBe("HIT");
      expect(head.headers["content-length"]).toBe(
        String(Buffer.byteLength(JSON.stringify(get.body))),
      );
      expect(head.text ?? "").toBe("");
    });

    it("other methods pass through, and a successful POST invalidates the URL", async () => {
      const app = await serve(options(), { "/r": json(200) });
      await app.get("/r");
      expect((await app.get("/r")).headers["x-cache"]).toBe("HIT");
      const post = await app.agent().post("/r");
      expect(post.headers["x-cache"]).toBeUndefined();
      expect(app.calls.get("/r")).toBe(2);
      // The invalidation runs after the POST's response: wait for its effect, bounded.
      let after = await app.get("/r");
      for (let i = 0; i < 20 && after.headers["x-cache"] === "HIT"; i++)
        after = await app.get("/r");
      expect(after.headers["x-cache"]).toBe("MISS");
    });

    it("If-None-Match (weak comparison, lists, *) and If-Modified-Since answer 304 from the entry", async () => {
      const lastModified = "Tue, 01 Dec 2026 10:00:00 GMT";
      const app = await serve(options(), {
        "/r": (_req, res) => {
          res.set("Last-Modified", lastModified).set("Cache-Control", "max-age=60");
          res.json({ ok: true });
        },
      });
      const miss = await app.get("/r").set("If-None-Match", "*");
      expect(miss.status).toBe(200); // the filler always gets (and stores) the full response
      const tag = miss.headers.etag as string;
      expect(tag).toMatch(/^W\/"/);
      const strong = tag.slice(2);
      for (const header of [tag, strong, `"other", ${tag}`, "*"]) {
        const res = await app.get("/r").set("If-None-Match", header);
        expect([header, res.status, res.headers["x-cache"]]).toEqual([header, 304, "HIT"]);
        expect(res.headers.etag).toBe(tag);
        expect(res.headers["cache-control"]).toBe("max-age=60");
      }
      expect((await app.get("/r").set("If-None-Match", '"other"')).status).toBe(200);
      expect((await app.get("/r").set("If-Modified-Since", lastModified)).status).toBe(304);
      expect(
        (await app.get("/r").set("If-Modified-Since", "Mon, 30 Nov 2026 10:00:00 GMT")).status,
      ).toBe(200);
      expect(app.calls.get("/r")).toBe(1);
    });

    it("generates an ETag when the handler sent none", async () => {
      const app = await serve(options(), {
        "/r": (_req, res) => {
          res.setHeader("Content-Type", "text/plain");
          res.write("hello ");
          res.end("world");
        },
      });
      const miss = await app.get("/r");
      expect(miss.headers.etag).toBeUndefined();
      const hit = await app.get("/r");
      expect(hit.headers.etag).toMatch(/^"b-/);
      expect(hit.text).toBe("hello world");
      expect((await app.get("/r").set("If-None-Match", hit.headers.etag as string)).status).toBe(
        304,
      );
    });

    it("Vary: variants are stored separately and each request gets its own", async () => {
      const app = await serve(options(), {
        "/r": (req, res) => {
          res.set("Vary", "Accept-Language").json({ lang: req.headers["accept-language"] ?? null });
        },
      });
      const agent = app.agent();
      for (let round = 0; round < 2; round++) {
        for (const lang of ["en", "fr", "de"]) {
          const res = await agent.get("/r").set("Accept-Language", lang);
          expect(res.body).toEqual({ lang });
          expect(res.headers["x-cache"]).toBe(round === 0 ? "MISS" : "HIT");
        }
        const none = await agent.get("/r");
        expect(none.body).toEqual({ lang: null });
      }
      expect(app.calls.get("/r")).toBe(4);
    });

    it("requests with Authorization bypass by default; varyBy caches per value", async () => {
      const plain = await serve(options(), { "/r": json(200) });
      const first = await plain.get("/r").set("Authorization", "Bearer a");
      expect(first.headers["x-cache"]).toBe("BYPASS");
      expect(first.headers["cache-status"]).toBe(
        "express-redis-kit; fwd=bypass; detail=authorization",
      );
      expect((await plain.get("/r").set("Authorization", "Bearer a")).headers["x-cache"]).toBe(
        "BYPASS",
      );
      const per = await serve(
        { ...options(), varyBy: (req) => req.headers.authorization?.slice(7) },
        {
          "/r": (req, res) => {
            res.set("Cache-Control", "private").json({ who: req.headers.authorization });
          },
        },
      );
      for (const who of ["a", "b", "a", "b"]) {
        const res = await per.get("/r").set("Authorization", `Bearer ${who}`);
        expect(res.body).toEqual({ who: `Bearer ${who}` });
      }
      expect(per.calls.get("/r")).toBe(2);
      expect((await per.get("/r")).headers["x-cache"]).toBe("BYPASS"); // varyBy gave nothing
    });

    it("userAware: user A never receives user B's body; no user bypasses; a signed-in user bypasses a cache that is not per user", async () => {
      const session: express.RequestHandler = (req, _res, next) => {
        const user = req.headers["x-user"];
        (req as unknown as { session: object }).session =
          user === undefined ? {} : { userId: user };
        next();
      };
      const body: express.RequestHandler = (req, res) => {
        res.json({
          user: (req as unknown as { session: { userId?: string } }).session.userId ?? null,
        });
      };
      const app = await serve({ ...options(), userAware: true }, { "/me": body }, [session]);
      const users = ["alice", "bob", "carol"];
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) => users[i % 3]!).map(async (user) => [
          user,
          (await app.get("/me").set("X-User", user)).body,
        ]),
      );
      for (const [user, got] of results) expect(got).toEqual({ user });
      expect(app.calls.get("/me")).toBe(3);
      expect((await app.get("/me")).headers["x-cache"]).toBe("BYPASS");
      const shared = await serve(options(), { "/me": body }, [session]);
      const signedIn = await shared.get("/me").set("X-User", "alice");
      expect(signedIn.headers["cache-status"]).toBe(
        "express-redis-kit; fwd=bypass; detail=signed-in",
      );
    });

    it("binary bodies round-trip byte for byte, whatever the write encoding", async () => {
      const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256));
      const app = await serve(options(), {
        "/buffer": (_req, res) => {
          res.type("application/octet-stream").send(bytes);
        },
        "/chunks": (_req, res) => {
          res.setHeader("Content-Type", "application/octet-stream");
          res.write(bytes.subarray(0, 1000).toString("hex"), "hex");
          res.write(bytes.subarray(1000, 2000).toString("base64"), "base64");
          res.write(bytes.subarray(2000, 3000).toString("latin1"), "latin1");
          res.end(new Uint8Array(bytes.subarray(3000)));
        },
      });
      for (const path of ["/buffer", "/chunks"]) {
        const miss = await app.get(path).buffer(true).parse(binary);
        const hit = await app.get(path).buffer(true).parse(binary);
        expect(hit.headers["x-cache"]).toBe("HIT");
        expect(Buffer.compare(miss.body as Buffer, bytes)).toBe(0);
        expect(Buffer.compare(hit.body as Buffer, bytes)).toBe(0);
        expect(hit.headers["content-length"]).toBe(String(bytes.length));
      }
    });
  },
);
