"use strict";
// express-redis-kit scenarios for the shared peer bench (../shared/peer-bench, issue 12).
// Same shape as its scenarios/peers.js: each entry is { label, check?, setup(ctx) } and setup
// returns { mw, routes?, prime?, close? }. `ctx.projectDir` is this checkout: run `npm run build`
// first (it loads dist/cjs through package.json's "main").
//
//   npm run build
//   ROUNDS=3 SKIP_REDIS_CEILING=1 \
//   SCENARIOS=a_bare,c_erl_redis,d_rlf_redis,f_phys,g_phys_autopipe,p_rateLimit,p_rateLimit_two \
//     bash ../shared/peer-bench/run.sh .
//
// Scenario -> its peers and floor (run them in the same SCENARIOS= list):
//   p_rateLimit, p_rateLimit_two, p_rateLimit_autopipe
//                     -> c_erl_redis, d_rlf_redis, f_phys (one EVALSHA), g_phys_autopipe
//   p_flood           -> x_erl_memory_flood, x_erl_redis_flood, x_rlf_flood_block, a_bare
//   p_cache_redis     -> e2_apicache_redis_shim
//   p_cache_memory    -> e_apicache_memory, a_bare
//   p_lock            -> f2_phys_two (two EVALSHA, defined in peers.js; run it by name)
//   p_session         -> h_session_redis (connect-redis 8.1)
//   p_cache_revalidate -> p_cache_miss, p_cache_fresh (issue 13: req/s of a 20 ms origin)
// `check: true` scenarios run only when named in SCENARIOS= (like the peers' x_* and f2).
//
// All load comes from 127.0.0.1: every limiter counts one hot key, every cache hit is one key.
const HUGE = 1e9; // nothing is ever rejected (the errors column must stay 0)

const lib = (ctx) => require(ctx.projectDir);

// The client options the README recommends (no resend of a command whose reply a disconnect
// lost); they change nothing on the hot path, and keep the kit's ERK_AUTO_RESEND warning quiet.
const newClient = (ctx, options = {}) =>
  ctx.newRedis({ autoResendUnfulfilledCommands: false, ...options });

module.exports = {
  // rateLimit(), one policy, defaults (sliding window, draft-8 headers with the HMAC pk,
  // default key = normalizeIp(req.ip)). Compare with c_erl_redis, d_rlf_redis, f_phys.
  p_rateLimit: {
    label: "(p1) project rateLimit(), one policy, defaults",
    setup: async (ctx) => {
      const client = newClient(ctx);
      return { mw: [lib(ctx).rateLimit({ redis: client, limit: HUGE, windowMs: 60_000 })] };
    },
  },

  // rateLimit(), two policies (burst + day, as the README's example and `erk-2p`), one script.
  p_rateLimit_two: {
    label: "(p1b) project rateLimit(), two policies (1 s burst + 1 day fixed)",
    setup: async (ctx) => {
      const client = newClient(ctx);
      return {
        mw: [
          lib(ctx).rateLimit({
            redis: client,
            policies: [
              { name: "burst", limit: HUGE, windowMs: 1_000 },
              { name: "daily", limit: HUGE, windowMs: 86_400_000, algorithm: "fixed-window" },
            ],
          }),
        ],
      };
    },
  },

  // p_rateLimit on an ioredis client with enableAutoPipelining (compare with g_phys_autopipe).
  p_rateLimit_autopipe: {
    label: "(p1c) project rateLimit(), enableAutoPipelining",
    check: true,
    setup: async (ctx) => {
      const client = newClient(ctx, { enableAutoPipelining: true });
      return { mw: [lib(ctx).rateLimit({ redis: client, limit: HUGE, windowMs: 60_000 })] };
    },
  },

  // p_rateLimit with `headers: false` (a 429 would still get Retry-After): separates the cost
  // of the draft-8 headers (HMAC pk, two header strings, Node's header validation and output)
  // from the rest of the limiter. Like f_phys, it answers with no rate-limit headers.
  p_rateLimit_noheaders: {
    label: "(p1d) project rateLimit(), headers: false",
    check: true,
    setup: async (ctx) => {
      const client = newClient(ctx);
      return {
        mw: [lib(ctx).rateLimit({ redis: client, limit: HUGE, windowMs: 60_000, headers: false })],
      };
    },
  },

  // Flood: one client over its limit (1 per minute): every measured request is rejected (429,
  // draft-8 headers, Retry-After, JSON body). The errors / non-2xx column is ~100 % by design.
  // Compare with x_erl_memory_flood (x1), x_erl_redis_flood (x2), x_rlf_flood_block (x3).
  p_flood: {
    label: "(p1f) project rateLimit(), flood (all 429; compare x1-x3)",
    check: true,
    setup: async (ctx) => {
      const client = newClient(ctx);
      return { mw: [lib(ctx).rateLimit({ redis: client, limit: 1, windowMs: 60_000 })] };
    },
  },

  // cacheResponse() Redis hits (the warm-up takes the one miss). Compare with e2_apicache_redis_shim.
  p_cache_redis: {
    label: "(p3) project cacheResponse(), Redis hits",
    setup: async (ctx) => {
      const client = newClient(ctx);
      const cache = lib(ctx).cacheResponse({ redis: client, ttlMs: 600_000 });
      return { mw: [cache], close: () => cache.close() };
    },
  },

  // cacheResponse() with the in-process memory tier in front of Redis, hits served from memory.
  // Compare with e_apicache_memory.
  p_cache_memory: {
    label: "(p3b) project cacheResponse() + memory tier, hits",
    setup: async (ctx) => {
      const client = newClient(ctx);
      const cache = lib(ctx).cacheResponse({
        redis: client,
        ttlMs: 600_000,
        memory: { maxEntries: 1000 },
      });
      return { mw: [cache], close: () => cache.close() };
    },
  },

  // requireLock(), uncontended: a new resource per request, acquire before the handler and
  // release on 'finish' (autoExtend on, the default). Compare with f2_phys_two (two EVALSHA).
  p_lock: {
    label: "(p4) project requireLock(), uncontended acquire + release",
    setup: async (ctx) => {
      const client = newClient(ctx);
      let n = 0;
      const mw = lib(ctx).requireLock({ redis: client, key: () => "k" + n++, ttlMs: 5_000 });
      return { mw: [mw] };
    },
  },

  // UserSessionStore read path: express-session, the cookie from /login reused on every request
  // (same shape as h_session_redis: resave false, saveUninitialized false, a requireUser check).
  p_session: {
    label: "(p5) project UserSessionStore read path (express-session)",
    setup: async (ctx) => {
      const session = require("module").createRequire(ctx.projectDir + "/package.json")(
        "express-session",
      );
      const client = newClient(ctx);
      const sessionMw = session({
        store: new (lib(ctx).UserSessionStore)({ client }),
        secret: "bench-secret",
        resave: false,
        saveUninitialized: false,
      });
      const requireUser = (req, res, next) => (req.session?.user ? next() : res.status(401).end());
      return {
        mw: [sessionMw, requireUser],
        routes: (app) =>
          app.get("/login", sessionMw, (req, res) => {
            req.session.user = { id: 1, name: "bench" };
            res.json({ ok: true });
          }),
        prime: async (base) => {
          const r = await fetch(base + "/login");
          const sc = r.headers.get("set-cookie");
          if (!sc) throw new Error("no session cookie from /login");
          return ["Cookie: " + sc.split(";")[0]];
        },
      };
    },
  },

  // Revalidation (issue 13): the same 20 ms handler behind cacheResponse() on Redis, in three
  // ways. Every request of p_cache_revalidate finds a `no-cache` entry and revalidates it (the
  // handler answers 304 through res.json, concurrent revalidations coalesce); p_cache_miss never
  // stores (`no-store`: the handler builds every response); p_cache_fresh hits. Run by name.
  p_cache_revalidate: {
    label: "(p6r) cacheResponse(), every request revalidates a no-cache entry (20 ms handler)",
    check: true,
    setup: (ctx) => slowOrigin(ctx, "no-cache"),
  },
  p_cache_miss: {
    label: "(p6m) cacheResponse(), every request a miss (no-store, 20 ms handler)",
    check: true,
    setup: (ctx) => slowOrigin(ctx, "no-store"),
  },
  p_cache_fresh: {
    label: "(p6h) cacheResponse(), fresh hits (max-age=600, 20 ms handler)",
    check: true,
    setup: (ctx) => slowOrigin(ctx, "max-age=600"),
  },
};

/** cacheResponse() on Redis in front of a 20 ms origin answering with `cacheControl`. */
function slowOrigin(ctx, cacheControl) {
  const cache = lib(ctx).cacheResponse({ redis: newClient(ctx), ttlMs: 600_000 });
  const origin = (_req, res, next) => {
    res.set("Cache-Control", cacheControl);
    setTimeout(next, 20); // then the harness's handler: res.json(BODY), Express's ETag and 304
  };
  return { mw: [cache, origin], close: () => cache.close() };
}

// The same scenario on ioredis clients with enableAutoPipelining (commands sent in one tick go
// in one write): the measurement behind the README's auto-pipelining advice, per feature.
for (const name of ["p_cache_redis", "p_lock", "p_session"]) {
  const base = module.exports[name];
  module.exports[`${name}_autopipe`] = {
    label: `${base.label.replace(/^\((p[0-9a-z]+)\)/, "($1-ap)")}, enableAutoPipelining`,
    check: true,
    setup: (ctx) =>
      base.setup({
        ...ctx,
        newRedis: (options = {}) => ctx.newRedis({ ...options, enableAutoPipelining: true }),
      }),
  };
}
