/**
 * The example app: the library wired into a small trading API. Run it with `npm start` (see
 * server.ts); tests build it with `createExampleApp()`. Accounts: `alice` and `bob`, password
 * `demo`.
 */
import { randomBytes } from "node:crypto";
import express, { type NextFunction, type Request, type Response } from "express";
import session from "express-session";
import {
  cacheResponse,
  createPubSub,
  createRateLimiter,
  createSessionStore,
  metrics,
  type RedisClient,
  rateLimit,
  redisHealth,
  requireLock,
  sessionHandle,
  trackSessions,
  unavailableHandler,
} from "../index.js";
import { page } from "./page.js";
import { mountSessionRoutes, route, userOf } from "./session-routes.js";

const ACCOUNTS = new Set(["alice", "bob"]);
const quiet = { info() {}, warn() {}, error() {} };

/** The example app, with `close()` for its subscribers. */
export type ExampleApp = express.Express & { close(): Promise<void> };

/**
 * Builds the example app on `redis`, or on the memory backend when it is undefined. `prefix`
 * starts every Redis key and channel the app uses (tests give each run its own).
 */
export function createExampleApp(redis?: RedisClient, prefix = "example:"): ExampleApp {
  const app = express() as ExampleApp;
  app.set("trust proxy", "loopback"); // behind a local proxy, X-Forwarded-For is the client
  app.use(express.json({ limit: "10kb" }));

  // Sessions indexed per user: list them, revoke one, log out everywhere else.
  const sessions = createSessionStore({
    redis,
    prefix: `${prefix}sess:`,
    indexPrefix: `${prefix}sess-user:`,
    logger: quiet,
  });
  app.use(
    session({
      store: sessions,
      // Every instance needs the same secret; a random one logs everyone out on restart.
      secret: process.env.SESSION_SECRET ?? randomBytes(32).toString("hex"),
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 7 * 24 * 3_600_000, httpOnly: true, sameSite: "lax" },
    }),
  );
  app.use(trackSessions(sessions));
  const signedIn: express.RequestHandler = (req, res, next) => {
    if (userOf(req) === undefined) res.status(401).json({ error: "log in first" });
    else next();
  };

  // Events per user over pub/sub: trades, import progress (and revocations, below).
  const pubsub = createPubSub({ redis, logger: quiet });
  const userChannel = (user: string) => `${prefix}events:${user}`;

  // A burst limit and an hourly quota on the API, charged together or not at all.
  const apiLimit = rateLimit({
    redis,
    prefix: `${prefix}api:`,
    policies: [
      { name: "burst", limit: 5, windowMs: 10_000 },
      { name: "hourly", limit: 100, windowMs: 3_600_000, algorithm: "fixed-window" },
    ],
  });
  // Logins: 20 attempts per IP and 5 failed attempts per account, per 15 minutes.
  const loginByIp = rateLimit({
    redis,
    prefix: `${prefix}login-ip:`,
    limit: 20,
    windowMs: 900_000,
  });
  const loginByAccount = createRateLimiter({
    redis,
    prefix: `${prefix}login-account:`,
    limit: 5,
    windowMs: 900_000,
    algorithm: "fixed-window",
  });

  // Portfolio statistics: slow to compute, cached per user for 5 minutes.
  const statsCache = cacheResponse({
    redis,
    prefix: `${prefix}cache:`,
    ttlMs: 300_000,
    userAware: true,
  });
  let statsRuns = 0;

  // One import per user at a time.
  const importLock = requireLock({
    redis,
    prefix: `${prefix}lock:`,
    key: (req) => (userOf(req) === undefined ? null : `import:${userOf(req)}`),
    ttlMs: 10_000,
  });

  app.get("/", (_req, res) => {
    res.type("html").send(page(redis === undefined ? "memory" : "redis"));
  });

  app.post(
    "/login",
    loginByIp,
    route(async (req, res, next) => {
      const account = typeof req.body?.account === "string" ? req.body.account : "";
      if (account === "" || account.length > 64) {
        res.status(400).json({ error: "account is required" });
        return;
      }
      const attempt = await loginByAccount.consume(account);
      if (!attempt.allowed) {
        res.setHeader("Retry-After", Math.ceil(attempt.retryAfterMs / 1000));
        res.status(429).json({ error: "too many login attempts for this account" });
        return;
      }
      // A real app checks a password hash; here every demo account's password is "demo".
      if (!ACCOUNTS.has(account) || req.body?.password !== "demo") {
        res
          .status(401)
          .json({ error: "wrong account or password", attemptsLeft: attempt.remaining });
        return;
      }
      await loginByAccount.refund(attempt); // only failed attempts count
      req.session.regenerate((err) => {
        if (err) return next(err); // a new session id at login: no session fixation
        (req.session as { userId?: string }).userId = account;
        res.json({ user: account, session: sessionHandle(req.sessionID) });
      });
    }),
  );

  app.post("/logout", (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ user: null })));
  });

  app.get("/api/me", (req, res) => {
    const user = userOf(req) ?? null;
    res.json({ user, session: user === null ? null : sessionHandle(req.sessionID) });
  });

  app.get("/api/hello", apiLimit, (req, res) => {
    res.json({ hello: "world", rateLimit: req.rateLimit });
  });

  // A demo control (it would defeat the limit in production).
  app.post(
    "/api/limits/reset",
    route(async (req, res) => {
      if (process.env.NODE_ENV === "production") {
        res.status(404).end();
        return;
      }
      const key = await apiLimit.keyOf(req); // the key the limiter counts, not raw req.ip
      if (key !== undefined) await apiLimit.reset(key); // undefined: this request is not counted
      res.json({ reset: true });
    }),
  );

  app.get("/api/portfolio/stats", signedIn, apiLimit, statsCache, (req, res) => {
    statsRuns++;
    res.cacheTags?.([`portfolio:${userOf(req)}`]);
    // A deliberately slow computation, so a hit is visible.
    setTimeout(() => {
      res.json({
        user: userOf(req),
        value: 10_000 + statsRuns,
        computedAt: new Date().toISOString(),
        runs: statsRuns,
      });
    }, 800);
  });

  app.post(
    "/api/portfolio/stats/purge",
    signedIn,
    route(async (req, res) => {
      res.json({ purged: await statsCache.purgeTags([`portfolio:${userOf(req)}`]) });
    }),
  );

  app.post(
    "/api/trades",
    signedIn,
    route(async (req, res) => {
      const { symbol, quantity } = req.body ?? {};
      if (
        typeof symbol !== "string" ||
        !/^[A-Z]{1,5}$/.test(symbol) ||
        !Number.isInteger(quantity)
      ) {
        res
          .status(400)
          .json({ error: "symbol (1-5 capital letters) and an integer quantity are required" });
        return;
      }
      const trade = { symbol, quantity, at: new Date().toISOString() };
      const receivers = await pubsub.publish(userChannel(userOf(req)!), trade, "trade");
      res.status(201).json({ trade, receivers });
    }),
  );

  app.post("/api/imports", signedIn, importLock, (req, res) => {
    const lock = req.lock!;
    const channel = userChannel(userOf(req)!);
    // A deliberately slow import in 5 steps; it stops if the client leaves or the lock is lost.
    let step = 0;
    const timer = setInterval(() => {
      step++;
      pubsub
        .publish(channel, { step, of: 5, fence: lock.fence }, "import.progress")
        .catch(() => {});
      if (step === 5) {
        clearInterval(timer);
        res.json({ imported: true, fence: lock.fence });
      }
    }, 300);
    lock.signal.addEventListener("abort", () => {
      clearInterval(timer);
      // Lost lock: say so (a client that left gets nothing; the lock is released on close).
      if (!res.headersSent && !res.destroyed) res.status(503).json({ error: "import interrupted" });
    });
  });

  mountSessionRoutes(app, { sessions, pubsub, channelOf: userChannel, signedIn });

  // What the page's live panel shows.
  app.get(
    "/api/dashboard",
    signedIn,
    route(async (req, res) => {
      const cache = statsCache.stats();
      const served = cache.hits + cache.stale;
      res.json({
        cache: {
          ...cache,
          hitRatio: served + cache.misses === 0 ? null : served / (served + cache.misses),
        },
        rateLimit: { api: apiLimit.limiter.stats(), login: loginByAccount.stats() },
        sessions: {
          mine: (await sessions.listUserSessions(userOf(req)!)).length,
          ...sessions.stats(),
        },
      });
    }),
  );

  app.get("/health/redis", redisHealth({ redis }));
  app.get("/metrics", metrics());

  // Sessions (and anything else) failing on Redis: 503 with Retry-After, like the middlewares.
  app.use(unavailableHandler());
  app.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    // No stack or internal message to the client; a client error (a bad JSON body) stays one.
    if (res.headersSent) return; // the client has its answer already
    if (err.status !== undefined && err.status >= 400 && err.status < 500) {
      res.status(err.status).json({ error: "bad request" });
      return;
    }
    res.status(503).json({ error: "temporarily unavailable" });
  });

  app.close = async () => {
    await pubsub.close();
    await sessions.close();
    await statsCache.close();
  };
  return app;
}
