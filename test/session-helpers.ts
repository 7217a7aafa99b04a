/**
 * Session-store test helpers: a store per backend and an express-session app with login,
 * logout and the index API behind routes, so tests drive it with supertest cookie jars.
 */
import express, { type NextFunction, type Request, type Response } from "express";
import session from "express-session";
import type { Cluster, Redis } from "ioredis";
import {
  createSessionStore,
  type MemorySessionStore,
  type RedisClient,
  type SessionStoreOptions,
  type TrackSessionsOptions,
  trackSessions,
  type UserSessionStore,
} from "../index.js";
import { ALL_BACKENDS, type Backend, clientFor, inspectorFor, testPrefix } from "./helpers.js";

export type { Backend } from "./helpers.js";
export const BACKENDS: Backend[] = ALL_BACKENDS;

/** The cookie lifetime `POST /remember-me` sets: 30 days. */
export const REMEMBER_MS = 30 * 24 * 3_600_000;

export interface StoreUnderTest {
  store: UserSessionStore | MemorySessionStore;
  /** The client the store uses (ioredis or node-redis), or undefined for memory. */
  client: RedisClient | undefined;
  /** An ioredis client on the same servers, for checking Redis state (undefined for memory). */
  redis: Redis | Cluster | undefined;
  prefix: string;
  indexPrefix: string;
}

/** A fresh store on `backend` with prefixes unique to this call. */
export function makeStore(
  backend: Backend,
  file: string,
  options: Omit<SessionStoreOptions, "redis" | "client" | "prefix" | "indexPrefix"> = {},
): StoreUnderTest {
  const base = testPrefix(file);
  const prefix = `${base}s:`;
  const indexPrefix = `${base}u:`;
  const client = clientFor(backend);
  const store = createSessionStore({ ...options, redis: client, prefix, indexPrefix });
  return { store, client, redis: inspectorFor(backend), prefix, indexPrefix };
}

/** A gate a route waits on: `reached` resolves when a request arrives, `open()` lets it go. */
export function gate() {
  let arrive!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => {
    arrive = r;
  });
  const opened = new Promise<void>((r) => {
    release = r;
  });
  return {
    reached,
    open: () => release(),
    wait: () => {
      arrive();
      return opened;
    },
  };
}

type Handler = (req: Request, res: Response, next: NextFunction) => unknown;

/** express-session + trackSessions over `store`, with the routes the tests use. */
export function sessionApp(
  store: UserSessionStore | MemorySessionStore,
  cookie: session.CookieOptions = { maxAge: 3_600_000 },
  slow?: ReturnType<typeof gate>,
  track?: TrackSessionsOptions,
) {
  const app = express();
  app.use(
    session({ store, secret: "test secret", resave: false, saveUninitialized: false, cookie }),
  );
  app.use(trackSessions(store, track));
  const user = (req: Request) => (req.session as { userId?: string }).userId;
  const route =
    (fn: Handler): Handler =>
    (req, res, next) =>
      Promise.resolve(fn(req, res, next)).catch(next);

  app.post(
    "/login/:user",
    route((req, res, next) =>
      req.session.regenerate((err) => {
        if (err) return next(err);
        (req.session as { userId?: string }).userId = String(req.params.user);
        res.json({ sid: req.sessionID });
      }),
    ),
  );
  // Login without regenerate: the same id changes owner (what apps that forget regenerate do).
  app.post(
    "/login-same-id/:user",
    route((req, res) => {
      (req.session as { userId?: string }).userId = String(req.params.user);
      res.json({ sid: req.sessionID });
    }),
  );
  app.post(
    "/logout",
    route((req, res, next) =>
      req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))),
    ),
  );
  // "Remember me": only the cookie's lifetime changes, so express-session calls touch, not set.
  app.post("/remember-me", (req, res) => {
    req.session.cookie.maxAge = REMEMBER_MS;
    res.json({ sid: req.sessionID });
  });
  // An unmodified request that takes `ms` (its touch comes that much after its read).
  app.get(
    "/idle/:ms",
    route(async (req, res) => {
      await new Promise((resolve) => setTimeout(resolve, Number(req.params.ms)));
      res.json({ ok: true });
    }),
  );
  app.get("/me", (req, res) => {
    res.json({ user: user(req) ?? null, sid: req.sessionID });
  });
  app.post(
    "/write",
    route(async (req, res) => {
      if (slow) await slow.wait();
      const s = req.session as { writes?: number };
      s.writes = (s.writes ?? 0) + 1;
      res.json({ writes: s.writes });
    }),
  );
  app.get(
    "/sessions",
    route(async (req, res) => {
      res.json(await store.listUserSessions(user(req)!, { currentSessionId: req.sessionID }));
    }),
  );
  app.post(
    "/revoke-others",
    route(async (req, res) => {
      res.json({ count: await store.revokeUserSessions(user(req)!, { except: req.sessionID }) });
    }),
  );
  app.delete(
    "/sessions/:id",
    route(async (req, res) => {
      res.json({ revoked: await store.revokeSession(user(req)!, String(req.params.id)) });
    }),
  );
  return app;
}
