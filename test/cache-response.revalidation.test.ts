/**
 * cacheResponse() revalidation with the origin (RFC 9111 §4.3), on memory, a standalone Redis
 * and a Redis Cluster: stale and `no-cache` entries are revalidated by running the handler as
 * a conditional request (res.json and express.static answer 304 themselves; a handler that
 * ignores conditions answers 200 and replaces the entry), a 304 updates the stored fields and
 * freshness, must-revalidate is never served stale, request directives with
 * `requestCacheControl`, and invalidation by any method not known to be safe.
 */
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import { MemoryCacheStore } from "../stores/cache/memory.js";
import { RedisCacheStore } from "../stores/cache/redis.js";
import type { CacheStore, StoredResponse } from "../stores/cache/types.js";
import { driverOf } from "../stores/core/drivers.js";
import { keyPart } from "../stores/core/keys.js";
import { type CacheBackend, clientFor, closeServers, serve } from "./cache-helpers.js";
import { closeClients, inspectorFor, testPrefix } from "./helpers.js";

afterAll(async () => {
  await closeServers();
  await closeClients();
});

type Headers = Record<string, string>;

/** A handler answering `body` through res.json (Express's ETag and 304), with `headers(n)` on its n-th run. */
const jsonWith = (
  headers: (run: number) => Headers,
  body: unknown = { stable: true },
): express.RequestHandler =>
  (() => {
    let run = 0;
    return (_req: express.Request, res: express.Response) => {
      run++;
      res.set(headers(run)).json(body);
    };
  })();

/** Sends `method` to `path` (any method token, TRACE included); resolves with the status. */
function send(port: number, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

describe.each(["memory", "standalone", "cluster"] as CacheBackend[])(
  "cacheResponse() revalidation on %s",
  (backend) => {
    const redis = clientFor(backend);
    const prefix = testPrefix(`${__filename}-${backend}`);
    let n = 0;
    const options = () => ({ redis, prefix: `${prefix}${n++}:`, timeoutMs: 2000 });

    it("the fill lock tells a purged entry apart: revalidation never stores it back", async () => {
      const store: CacheStore =
        redis === undefined
          ? new MemoryCacheStore({ maxEntries: 10, maxBytes: 1 << 20 })
          : new RedisCacheStore(driverOf(redis), `${prefix}store:`);
      const key = `${prefix}store:{${keyPart(`k${n++}`)}}`;
      const entry: StoredResponse = {
        status: 200,
        headers: [],
        body: Buffer.from("x"),
        tags: [],
        initialAgeMs: 0,
        freshMs: 0,
        staleWhileRevalidateMs: 0,
        staleIfErrorMs: 0,
      };
      const storedAt = await store.set(key, entry, 60_000);
      expect(await store.lock(key, "t1", 5000, storedAt)).toBe("taken"); // the entry it saw
      await store.unlock(key, "t1");
      await store.remove(key); // a purge
      expect(await store.lock(key, "t2", 5000, storedAt)).toBe("vanished");
      await store.unlock(key, "t2");
      // Negative control: a caller that saw no entry takes the lock as on any miss.
      expect(await store.lock(key, "t3", 5000)).toBe("taken");
      await store.unlock(key, "t3");
    });

    it("a client gone before its fill began leaves no flight behind: the next request is not held", async () => {
      // The first request's connection dies before the cache looks up and takes the lock; a
      // fill begun for it must not leave a flight that later requests of the key wait on for
      // coalesceWaitMs (20 s here: a lost flight would hold the next request that long).
      let first = true;
      const app = await serve(
        { ...options(), coalesceWaitMs: 20_000 },
        { "/r": jsonWith(() => ({ "Cache-Control": "max-age=60" })) },
        [
          (req, _res, next) => {
            if (first) {
              first = false;
              req.socket.destroy();
            }
            next();
          },
        ],
      );
      await app.get("/r").catch(() => undefined); // the socket is gone: no answer
      const started = Date.now();
      const next = await app.get("/r");
      expect([next.status, next.headers["x-cache"]]).toEqual([200, "MISS"]);
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it("a no-cache response with an ETag is stored and revalidated on every use; res.json answers 304 inside", async () => {
      const app = await serve(options(), {
        "/r": jsonWith((run) => ({ "Cache-Control": "no-cache", "X-Run": String(run) })),
      });
      const first = await app.get("/r");
      expect([first.status, first.headers["x-cache"]]).toEqual([200, "MISS"]);
      expect(first.headers["cache-status"]).toMatch(/fwd=uri-miss; stored/);

      const second = await app.get("/r");
      expect(app.calls.get("/r")).toBe(2); // never used without asking the origin
      expect([second.status, second.headers["x-cache"]]).toEqual([200, "REVALIDATED"]);
      expect(second.headers["cache-status"]).toMatch(/fwd=stale; fwd-status=304; stored$/);
      expect(second.body).toEqual(first.body);
      expect(second.headers["content-type"]).toMatch(/^application\/json/);
      expect(second.headers["x-run"]).toBe("2"); // the 304's fields replace the stored ones
      expect(second.headers.etag).toBe(first.headers.etag);

      // The client's own condition is answered from the validated entry.
      const conditional = await app.get("/r").set("If-None-Match", first.headers.etag as string);
      expect([conditional.status, conditional.headers["x-cache"]]).toEqual([304, "REVALIDATED"]);
      expect(conditional.text).toBe("");
      expect(app.calls.get("/r")).toBe(3);
      expect(app.cache.stats()).toMatchObject({ validations: 2, notModified: 2, stored: 3 });
    });

    it("negative control: keepMs: 0 does not store a no-cache response (each request is a plain miss)", async () => {
      const app = await serve(
        { ...options(), keepMs: 0 },
        { "/r": jsonWith(() => ({ "Cache-Control": "no-cache" })) },
      );
      await app.get("/r");
      const second = await app.get("/r");
      expect(second.headers["x-cache"]).toBe("MISS");
      expect(second.headers["cache-status"]).toMatch(/fwd=uri-miss; detail=no-cache/);
      expect(app.cache.stats()).toMatchObject({ validations: 0, notModified: 0, stored: 0 });
    });

    it("a 304 carrying new freshness refreshes the stale entry: later requests are hits", async () => {
      const opts = options();
      const app = await serve(opts, {
        "/r": jsonWith((run) => ({ "Cache-Control": run === 1 ? "max-age=0" : "max-age=60" })),
      });
      const first = await app.get("/r");
      expect(first.headers["cache-control"]).toBe("max-age=0");
      const second = await app.get("/r");
      expect([second.headers["x-cache"], second.headers["cache-control"]]).toEqual([
        "REVALIDATED",
        "max-age=60",
      ]);
      const third = await app.get("/r");
      expect([third.headers["x-cache"], third.headers["cache-control"]]).toEqual([
        "HIT",
        "max-age=60",
      ]);
      expect(third.body).toEqual(first.body);
      expect(app.calls.get("/r")).toBe(2);

      // In Redis: one entry, its stored fields the updated ones.
      const inspector = inspectorFor(backend);
      if (inspector !== undefined) {
        const index = `${opts.prefix}t:{${keyPart("url:/r")}}`;
        const keys = await inspector.zrange(index, "0", "-1");
        expect(keys).toHaveLength(1);
        const meta = JSON.parse((await inspector.hget(keys[0]!, "m")) ?? "{}");
        expect(meta.headers).toContainEqual(["cache-control", "max-age=60"]);
        expect(meta.headers.filter(([name]: [string]) => name === "cache-control")).toHaveLength(1);
      }
    });

    it("express.static: its ETag and Last-Modified revalidate through send's own 304; a client's If-Modified-Since gets 304", async () => {
      const dir = mkdtempSync(join(tmpdir(), "erk-static-"));
      writeFileSync(join(dir, "f.txt"), "static body");
      const app = await serve(options(), { "/f.txt": express.static(dir) });
      const first = await app.get("/f.txt");
      expect([first.text, first.headers["cache-control"]]).toEqual([
        "static body",
        "public, max-age=0",
      ]);
      expect(first.headers["cache-status"]).toMatch(/stored/);
      const second = await app.get("/f.txt");
      expect([second.status, second.headers["x-cache"], second.text]).toEqual([
        200,
        "REVALIDATED",
        "static body",
      ]);
      expect(second.headers["content-length"]).toBe("11");
      const lastModified = new Date(statSync(join(dir, "f.txt")).mtimeMs).toUTCString();
      const conditional = await app.get("/f.txt").set("If-Modified-Since", lastModified);
      expect(conditional.status).toBe(304);
      expect(app.calls.get("/f.txt")).toBe(3);
      expect(app.cache.stats()).toMatchObject({ validations: 2, notModified: 2 });
    });

    it("a handler that ignores conditions answers 200: the entry is replaced, nothing breaks", async () => {
      let version = 0;
      const app = await serve(options(), {
        "/r": (_req, res) => {
          version++;
          res.set({
            "Cache-Control": "no-cache",
            ETag: `"v${version}"`,
            "Content-Type": "text/plain",
          });
          res.end(`version ${version}`); // no res.send: no freshness check, never a 304
        },
      });
      expect((await app.get("/r")).text).toBe("version 1");
      const second = await app.get("/r");
      expect([second.status, second.headers["x-cache"], second.text]).toEqual([
        200,
        "MISS",
        "version 2",
      ]);
      expect(second.headers["cache-status"]).toMatch(/fwd=stale; stored/);
      // What is stored now is version 2: a client holding it gets 304 once the origin agrees.
      const third = await app.get("/r").set("If-None-Match", '"v2"');
      expect([third.status, third.text]).toEqual([200, "version 3"]);
      expect(app.cache.stats()).toMatchObject({ validations: 2, notModified: 0 });
    });

    it("a 304 whose strong ETag names another representation updates nothing", async () => {
      let run = 0;
      const app = await serve(options(), {
        "/r": (_req, res) => {
          run++;
          res.set({ "Cache-Control": "no-cache", "X-Run": String(run) });
          if (run === 1) res.set("ETag", '"v1"').type("text/plain").end("one");
          else res.status(304).set("ETag", '"other"').end();
        },
      });
      await app.get("/r");
      const second = await app.get("/r");
      expect([second.status, second.text, second.headers["x-cache"]]).toEqual([
        200,
        "one",
        "REVALIDATED",
      ]);
      expect(second.headers["cache-status"]).toMatch(/detail=validator-mismatch/);
      const third = await app.get("/r");
      expect(app.calls.get("/r")).toBe(3);
      // The stored entry is still the first run's: its fields, not the 304's.
      expect([third.text, third.headers.etag, third.headers["x-run"]]).toEqual([
        "one",
        '"v1"',
        "1",
      ]);
    });

    it("a 304 carrying Set-Cookie, or now forbidding storage, answers the client and deletes the entry", async () => {
      const turning = (second: (res: express.Response) => void): express.RequestHandler =>
        (() => {
          let run = 0;
          return (_req: express.Request, res: express.Response) => {
            run++;
            res.set("Cache-Control", "no-cache");
            if (run === 2) second(res);
            res.json({ stable: true });
          };
        })();
      const app = await serve(options(), {
        "/cookie": turning((res) => res.cookie("sid", "s1")),
        "/nostore": turning((res) => res.set("Cache-Control", "no-store")),
      });
      for (const [path, detail] of [
        ["/cookie", "set-cookie"],
        ["/nostore", "no-store"],
      ] as const) {
        const first = await app.get(path);
        const second = await app.get(path);
        expect([second.status, second.headers["x-cache"], second.body]).toEqual([
          200,
          "REVALIDATED",
          first.body,
        ]);
        expect(second.headers["cache-status"]).toMatch(new RegExp(`detail=${detail}$`));
        // Deleted: the next request finds nothing to revalidate.
        const third = await app.get(path);
        expect([path, third.headers["x-cache"], third.headers["cache-status"]]).toEqual([
          path,
          "MISS",
          expect.stringMatching(/fwd=uri-miss; stored/),
        ]);
      }
      const cookie = await app.get("/cookie"); // a refresh without the cookie is stored again
      expect(cookie.headers["x-cache"]).toBe("REVALIDATED");
      expect(cookie.headers["set-cookie"]).toBeUndefined();
    });

    it("an origin with Last-Modified only revalidates: the ETag the cache made up is not sent to it", async () => {
      const lastModified = "Tue, 01 Dec 2026 10:00:00 GMT";
      const app = await serve(options(), {
        "/r": (req, res) => {
          res.set({ "Cache-Control": "no-cache", "Last-Modified": lastModified });
          if (req.fresh) return void res.status(304).end(); // fresh: If-None-Match first, if any
          res.type("text/plain").end("by date"); // res.end: Express adds no ETag
        },
      });
      const first = await app.get("/r");
      const second = await app.get("/r");
      expect([second.headers["x-cache"], second.text]).toEqual(["REVALIDATED", "by date"]);
      expect(second.headers.etag).toMatch(/^"/); // the generated one, still given to clients
      expect(first.headers.etag).toBeUndefined();
      expect(app.cache.stats()).toMatchObject({ validations: 1, notModified: 1 });
    });

    it("Vary: each variant is revalidated on its own and keeps its own body", async () => {
      const app = await serve(options(), {
        "/r": (req, res) => {
          res.set({ "Cache-Control": "no-cache", Vary: "Accept-Language" });
          res.json({ lang: req.headers["accept-language"] ?? "none" });
        },
      });
      for (const lang of ["fr", "en", "fr", "en"]) {
        const res = await app.get("/r").set("Accept-Language", lang);
        expect(res.body).toEqual({ lang });
      }
      const again = await app.get("/r").set("Accept-Language", "fr");
      expect([again.headers["x-cache"], again.body]).toEqual(["REVALIDATED", { lang: "fr" }]);
      expect(app.cache.stats()).toMatchObject({ validations: 3, notModified: 3 });
    });

    it("with the memory tier, a no-cache entry is never answered from process memory unvalidated", async () => {
      const app = await serve(
        { ...options(), memory: { maxEntries: 100 } },
        { "/r": jsonWith(() => ({ "Cache-Control": "no-cache" })) },
      );
      await app.get("/r");
      for (let i = 0; i < 3; i++) {
        expect((await app.get("/r")).headers["x-cache"]).toBe("REVALIDATED");
      }
      expect(app.calls.get("/r")).toBe(4);
    });

    it("must-revalidate: never served stale, not even for stale-if-error; without it stale-if-error serves the entry", async () => {
      const failing = (cacheControl: string): express.RequestHandler =>
        (() => {
          let run = 0;
          return (_req: express.Request, res: express.Response) => {
            run++;
            if (run === 1) res.set("Cache-Control", cacheControl).json({ ok: true });
            else res.status(500).json({ error: "origin down" });
          };
        })();
      const app = await serve(options(), {
        "/strict": failing("max-age=0, must-revalidate, stale-if-error=600"),
        "/lenient": failing("max-age=0, stale-if-error=600"),
        "/proxy": failing("max-age=0, proxy-revalidate, stale-if-error=600"),
      });
      for (const path of ["/strict", "/lenient", "/proxy"]) await app.get(path);
      const strict = await app.get("/strict");
      expect([strict.status, strict.body]).toEqual([500, { error: "origin down" }]);
      const proxy = await app.get("/proxy");
      expect(proxy.status).toBe(500);
      const lenient = await app.get("/lenient");
      expect([lenient.status, lenient.body, lenient.headers["x-cache"]]).toEqual([
        200,
        { ok: true },
        "STALE",
      ]);
      expect(lenient.headers["cache-status"]).toMatch(/fwd-status=500; detail=stale-if-error/);
    });

    it("If-None-Match with Cache-Control: no-cache (what fetch() sends) gets 304 from the entry it is served", async () => {
      const app = await serve(options(), {
        "/r": jsonWith(() => ({ "Cache-Control": "max-age=60" })),
      });
      const { etag } = (await app.get("/r")).headers as Headers;
      const ignored = await app
        .get("/r")
        .set("If-None-Match", etag!)
        .set("Cache-Control", "no-cache");
      expect([ignored.status, ignored.headers["x-cache"]]).toEqual([304, "HIT"]);
      expect(app.calls.get("/r")).toBe(1);

      const honor = await serve(
        { ...options(), requestCacheControl: "honor" },
        { "/r": jsonWith(() => ({ "Cache-Control": "max-age=60" })) },
      );
      await honor.get("/r");
      const honored = await honor
        .get("/r")
        .set("If-None-Match", etag!)
        .set("Cache-Control", "no-cache");
      // Honoured: revalidated with the origin, whose 304 the client's condition matches too.
      expect([honored.status, honored.headers["x-cache"]]).toEqual([304, "REVALIDATED"]);
      expect(honored.headers["cache-status"]).toMatch(/fwd=request; fwd-status=304/);
      expect(honor.calls.get("/r")).toBe(2);
    });

    it('requestCacheControl: "honor" applies request directives; "ignore" (the default) does not', async () => {
      const routes = () => ({
        "/fresh": jsonWith(() => ({ "Cache-Control": "max-age=60" })),
        "/stale": jsonWith(() => ({ "Cache-Control": "max-age=0" })),
        "/strict": jsonWith(() => ({ "Cache-Control": "max-age=0, must-revalidate" })),
      });
      const honor = await serve({ ...options(), requestCacheControl: "honor" }, routes());
      const ignore = await serve(options(), routes());
      for (const app of [honor, ignore])
        for (const p of ["/fresh", "/stale", "/strict"]) await app.get(p);

      /** [path, request headers, X-Cache with honor, X-Cache with ignore] */
      const cases: [string, Headers, string, string][] = [
        ["/fresh", {}, "HIT", "HIT"],
        ["/fresh", { "Cache-Control": "no-cache" }, "REVALIDATED", "HIT"],
        ["/fresh", { "Cache-Control": "max-age=0" }, "REVALIDATED", "HIT"],
        ["/fresh", { Pragma: "no-cache" }, "REVALIDATED", "HIT"],
        ["/fresh", { Pragma: "no-cache", "Cache-Control": "max-age=3600" }, "HIT", "HIT"],
        ["/fresh", { "Cache-Control": "max-age=3600" }, "HIT", "HIT"],
        ["/fresh", { "Cache-Control": "min-fresh=30" }, "HIT", "HIT"],
        ["/fresh", { "Cache-Control": "min-fresh=120" }, "REVALIDATED", "HIT"],
        ["/fresh", { "Cache-Control": "no-store" }, "BYPASS", "HIT"],
        ["/stale", {}, "REVALIDATED", "REVALIDATED"],
        ["/stale", { "Cache-Control": "max-stale" }, "STALE", "REVALIDATED"],
        ["/stale", { "Cache-Control": "max-stale=600" }, "STALE", "REVALIDATED"],
        ["/strict", { "Cache-Control": "max-stale" }, "REVALIDATED", "REVALIDATED"],
      ];
      for (const [path, headers, withHonor, withIgnore] of cases) {
        const a = await honor.get(path).set(headers);
        const b = await ignore.get(path).set(headers);
        expect([path, headers, a.headers["x-cache"], b.headers["x-cache"]]).toEqual([
          path,
          headers,
          withHonor,
          withIgnore,
        ]);
        expect([a.status, b.status]).toEqual([200, 200]);
      }
      const stale = await honor.get("/stale").set("Cache-Control", "max-stale");
      expect(stale.headers["cache-status"]).toMatch(/detail=max-stale/);
      const bypass = await honor.get("/fresh").set("Cache-Control", "no-store");
      expect(bypass.headers["cache-status"]).toMatch(/fwd=bypass; detail=request-no-store/);
    });

    it("any method not known to be safe invalidates its URI on a non-error answer; safe ones and errors do not", async () => {
      const app = await serve(options(), {
        "/r": (req, res) => {
          if (req.method === "GET" || req.method === "HEAD") res.json({ at: Math.random() });
          else if (req.method === "DELETE")
            res.status(404).end(); // an error: nothing invalidated
          else res.status(204).end();
        },
      });
      const { port } = app;
      const invalidatedBy = async (method: string) => {
        await app.get("/r");
        expect((await app.get("/r")).headers["x-cache"]).toBe("HIT");
        await send(port, method, "/r");
        // The invalidation runs after the answer: wait for its effect, bounded.
        for (let i = 0; i < 20; i++) {
          if ((await app.get("/r")).headers["x-cache"] !== "HIT") return true;
        }
        return false;
      };
      for (const method of ["POST", "PUT", "PATCH", "M-SEARCH", "PROPFIND", "PURGE", "LINK"]) {
        expect([method, await invalidatedBy(method)]).toEqual([method, true]);
      }
      for (const method of ["OPTIONS", "TRACE", "DELETE"]) {
        expect([method, await invalidatedBy(method)]).toEqual([method, false]);
      }
    });

    it("an unsafe request also invalidates the same-origin URIs in Location and Content-Location, never another origin's", async () => {
      const app = await serve(options(), {
        "/items/:id": (_req, res) => res.json({ at: Math.random() }),
        "/create": (_req, res) => {
          res.status(201);
          res.set("Location", "/items/1");
          res.set("Content-Location", "http://elsewhere.example/items/2");
          res.end();
        },
        "/update": (req, res) => {
          res.set("Content-Location", `http://${req.headers.host}/items/3?x=1`).status(200).end();
        },
      });
      for (const id of ["1", "2", "3?x=1"]) {
        await app.get(`/items/${id}`);
        expect((await app.get(`/items/${id}`)).headers["x-cache"]).toBe("HIT");
      }
      await app.agent().post("/create");
      await app.agent().put("/update");
      const state = async (path: string) => {
        for (let i = 0; i < 20; i++) {
          const x = (await app.get(path)).headers["x-cache"];
          if (x !== "HIT") return x;
        }
        return "HIT";
      };
      expect(await state("/items/1")).toBe("MISS");
      expect(await state("/items/3?x=1")).toBe("MISS");
      expect((await app.get("/items/2")).headers["x-cache"]).toBe("HIT");
    });
  },
);
