/**
 * The example app: what the library looks like wired into a real Express API. Run it with
 * `npm start` (see server.ts); tests build it with `createExampleApp()`.
 */
import { randomBytes } from "node:crypto";
import express from "express";
import session from "express-session";
import {
  cacheResponse,
  createRateLimiter,
  createSessionStore,
  type RedisClient,
  rateLimit,
  redisHealth,
  requireLock,
  trackSessions,
} from "../index.js";
import { page } from "./page.js";

/**
 * Builds the example app on `redis`, or on the memory backend when it is undefined. `prefix`
 * starts every Redis key the app writes (tests give each run its own).
 */
export function createExampleApp(redis?: RedisClient, prefix = "example:"): express.Express {
  const app = express();
  app.set("trust proxy", "loopback"); // behind a local proxy, X-Forwarded-For is the client
  app.use(express.json());

  // Sessions indexed per user: list them, revoke one, log out everywhere else.
  const sessions = createSessionStore({
    redis,
    prefix: `${prefix}sess:`,
    indexPrefix: `${prefix}sess-user:`,
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
  const userOf = (req: express.Request) => (req.session as { userId?: string }).userId;
  const signedIn: express.RequestHandler = (req, res, next) => {
    if (userOf(req) === undefined) res.status(401).json({ error: "log in first" });
    else next();
  };

  // Every /api route: a burst limit and an hourly quota, charged together or not at all.
  const apiLimit = rateLimit({
    redis,
    prefix: `${prefix}api:`,
    policies: [
      { name: "burst", limit: 5, windowMs: 10_000 },
      { name: "hourly", limit: 100, windowMs: 3_600_000, algorithm: "fixed-window" },
    ],
  });

  // Login attempts per account, called from the handler (the key is in the body).
  const loginLimiter = createRateLimiter({
    redis,
    prefix: `${prefix}login:`,
    limit: 5,
    windowMs: 15 * 60_000,
    algorithm: "fixed-window",
  });

  // A slow report, cached for 30 s and served stale for 30 s more while one request refreshes.
  const reportCache = cacheResponse({
    redis,
    prefix: `${prefix}cache:`,
    ttlMs: 30_000,
    staleWhileRevalidateMs: 30_000,
  });
  let reportRuns = 0;

  app.get("/", (_req, res) => {
    res.type("html").send(page(redis === undefined ? "memory" : "redis"));
  });

  app.get("/api/hello", apiLimit, (req, res) => {
    res.json({ hello: "world", rateLimit: req.rateLimit });
  });

  app.post("/api/login", apiLimit, async (req, res, next) => {
    try {
      const account = typeof req.body?.account === "string" ? req.body.account : "";
      if (account === "") {
        res.status(400).json({ error: "account is required" });
        return;
      }
      const attempt = await loginLimiter.consume(account);
      if (!attempt.allowed) {
        res.setHeader("Retry-After", Math.ceil(attempt.retryAfterMs / 1000));
        res.status(429).json({
          error: "Too many login attempts for this account",
          retryAfterMs: attempt.retryAfterMs,
        });
        return;
      }
      // A real app checks a password hash; here the password is "demo".
      if (req.body?.password !== "demo") {
        res.status(401).json({ error: "wrong password", attemptsLeft: attempt.remaining });
        return;
      }
      req.session.regenerate((err) => {
        if (err) return next(err); // a new id at login: no session fixation
        (req.session as { userId?: string }).userId = account;
        res.json({ user: account });
      });
    } catch (err) {
      next(err);
    }
  });

  app.post("/api/logout", (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ user: null })));
  });

  app.get("/api/me", (req, res) => {
    res.json({ user: userOf(req) ?? null });
  });

  app.get("/api/sessions", signedIn, async (req, res, next) => {
    try {
      res.json(await sessions.listUserSessions(userOf(req)!, { currentSessionId: req.sessionID }));
    } catch (err) {
      next(err);
    }
  });

  app.delete("/api/sessions/:id", signedIn, async (req, res, next) => {
    try {
      res.json({ revoked: await sessions.revokeSession(userOf(req)!, String(req.params.id)) });
    } catch (err) {
      next(err);
    }
  });

  app.post("/api/sessions/revoke-others", signedIn, async (req, res, next) => {
    try {
      const count = await sessions.revokeUserSessions(userOf(req)!, { except: req.sessionID });
      res.json({ revoked: count });
    } catch (err) {
      next(err);
    }
  });

  app.post("/api/limits/reset", async (req, res, next) => {
    try {
      await apiLimit.reset(await apiLimit.keyOf(req)); // the key the limiter counts, not raw req.ip
      res.json({ reset: true });
    } catch (err) {
      next(err);
    }
  });

  app.get("/api/report", apiLimit, reportCache, (_req, res) => {
    reportRuns++;
    res.cacheTags?.(["report"]);
    // A deliberately slow computation, so a hit is visible.
    setTimeout(() => res.json({ computedAt: new Date().toISOString(), runs: reportRuns }), 500);
  });

  app.post("/api/report/purge", async (_req, res, next) => {
    try {
      res.json({ purged: await reportCache.purgeTags(["report"]) });
    } catch (err) {
      next(err);
    }
  });

  // One import per client at a time: a second one while the first runs gets 409.
  const importLock = requireLock({
    redis,
    prefix: `${prefix}lock:`,
    key: (req) => `import:${req.ip ?? "unknown"}`,
    ttlMs: 10_000,
  });
  app.post("/api/imports", importLock, (req, res) => {
    const lock = req.lock!;
    // A deliberately slow import that stops if the client leaves or the lock is lost.
    const timer = setTimeout(() => res.json({ imported: true, fence: lock.fence }), 1500);
    lock.signal.addEventListener("abort", () => clearTimeout(timer));
  });

  app.get("/health/redis", redisHealth({ redis }));
  return app;
}
