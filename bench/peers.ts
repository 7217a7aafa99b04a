/**
 * The peers and floors every suite measures this library against, each shaped as
 * ../shared/peer-bench's scenario of the same name (`peerBench`) so both harnesses measure the
 * same thing: the libraries' defaults, one hot key (all load comes from 127.0.0.1), limits of
 * 1e9 except in the floods. Loaded with `require`, as that harness (CommonJS) loads them.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import {
  HUGE,
  requireCjs,
  type ScenarioContext,
  type ScenarioSetup,
  type Setup,
} from "./scenario.js";

const WINDOW_MS = 60_000;

/**
 * The one-round-trip floor: one script call per request, INCR and PEXPIRE on the first hit.
 * KEYS[1]: the counter; ARGV[1]: its window, ms. Returns the count.
 */
export const FLOOR_LUA = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

/** Answers 429 when `limiter.consume()` rejects with its result, passes errors on. */
function consumeMiddleware(limiter: { consume(key: string): Promise<unknown> }): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    limiter.consume(req.ip ?? "").then(
      () => next(),
      (rejection: unknown) =>
        rejection instanceof Error ? next(rejection) : res.status(429).end(),
    );
  };
}

/** Express 5, no middleware: the reference row of every HTTP suite. */
export const bare: Setup = async () => ({ mw: [] });

/** express-rate-limit with its MemoryStore (flood: limit 1). */
export function erlMemory(limit: number): Setup {
  return async () => {
    const { rateLimit } = requireCjs("express-rate-limit") as typeof import("express-rate-limit");
    return { mw: [rateLimit({ windowMs: WINDOW_MS, limit })] };
  };
}

/** express-rate-limit + rate-limit-redis on ioredis `call()`, defaults otherwise. */
export function erlRedis(limit: number, prefix: string): Setup {
  return async (ctx: ScenarioContext) => {
    const { rateLimit } = requireCjs("express-rate-limit") as typeof import("express-rate-limit");
    const { RedisStore } = requireCjs("rate-limit-redis") as typeof import("rate-limit-redis");
    type Reply = import("rate-limit-redis").RedisReply;
    const client = ctx.newRedis();
    const store = new RedisStore({
      sendCommand: (command: string, ...args: string[]) =>
        client.call(command, ...args) as Promise<Reply>,
      prefix,
    });
    return { mw: [rateLimit({ windowMs: WINDOW_MS, limit, store })] };
  };
}

/**
 * rate-limiter-flexible `RateLimiterRedis` on ioredis, `consume(req.ip)` as middleware; with
 * `blockInMemory`, a key over its points is rejected in process for the window
 * (`inMemoryBlockOnConsumed`).
 */
export function rlfRedis(points: number, keyPrefix: string, blockInMemory = false): Setup {
  return async (ctx: ScenarioContext) => {
    const { RateLimiterRedis } = requireCjs(
      "rate-limiter-flexible",
    ) as typeof import("rate-limiter-flexible");
    const limiter = new RateLimiterRedis({
      storeClient: ctx.newRedis(),
      keyPrefix,
      points,
      duration: WINDOW_MS / 1000,
      ...(blockInMemory ? { inMemoryBlockOnConsumed: points, inMemoryBlockDuration: 60 } : {}),
    });
    return { mw: [consumeMiddleware(limiter)] };
  };
}

/** The floor: one EVALSHA of `FLOOR_LUA` per request (optionally auto-pipelined). */
export function evalshaFloor(autoPipelining: boolean): Setup {
  return async (ctx: ScenarioContext) => {
    const client = ctx.newRedis({ enableAutoPipelining: autoPipelining });
    const sha = (await client.script("LOAD", FLOOR_LUA)) as string;
    const floor: RequestHandler = (req, res, next) => {
      client.evalsha(sha, 1, `floor:${req.ip}`, WINDOW_MS).then((count) => {
        if ((count as number) > HUGE) res.status(429).end();
        else next();
      }, next);
    };
    return { mw: [floor] };
  };
}

/**
 * The two-round-trip floor (a lock's acquire before the handler, its release when the response
 * is sent): one EVALSHA before `next()`, another on `finish`.
 */
export const twoEvalshaFloor: Setup = async (ctx: ScenarioContext) => {
  const client = ctx.newRedis();
  const sha = (await client.script("LOAD", FLOOR_LUA)) as string;
  const floor: RequestHandler = (req, res, next) => {
    client.evalsha(sha, 1, `floor2:${req.ip}`, WINDOW_MS).then(() => {
      res.once("finish", () => {
        client.evalsha(sha, 1, `floor2b:${req.ip}`, WINDOW_MS).catch(() => {});
      });
      next();
    }, next);
  };
  return { mw: [floor] };
};

type Apicache = {
  newInstance(options: object): { middleware(duration: string): RequestHandler };
};

/** apicache 1.6 in memory, `middleware("10 minutes")`, measured on hits. */
export const apicacheMemory: Setup = async () => {
  const apicache = (requireCjs("apicache") as Apicache).newInstance({});
  return { mw: [apicache.middleware("10 minutes")] };
};

/**
 * apicache on Redis through ioredis. apicache reads Redis only while `redisClient.connected`
 * (a node_redis 3 field) is true; ioredis has none, so without this getter apicache never
 * caches. Measured on hits (HGETALL per request).
 */
export const apicacheRedis: Setup = async (ctx: ScenarioContext) => {
  const client = ctx.newRedis();
  Object.defineProperty(client, "connected", { get: () => client.status === "ready" });
  const apicache = (requireCjs("apicache") as Apicache).newInstance({ redisClient: client });
  return { mw: [apicache.middleware("10 minutes")] };
};

/** The session shape of every session scenario: a login route, the cookie reused by the load. */
export interface SessionShape {
  /** express-session with the scenario's store. */
  session: RequestHandler;
  /** Mounted after `session` (e.g. `trackSessions`). */
  after?: RequestHandler[];
}

/** 401 unless the session has a user: proves the load's cookie finds the session. */
const requireUser: RequestHandler = (req, res, next) => {
  const user = (req.session as { user?: unknown } | undefined)?.user;
  if (user) next();
  else res.status(401).end();
};

/**
 * The session scenarios' routes, as peer-bench's: `mw` is the session and a user check; GET
 * /login stores `{ id: 1, name: "bench" }` as the user; prime logs in and returns the cookie.
 */
export function sessionSetup({ session, after = [] }: SessionShape): ScenarioSetup {
  return {
    mw: [session, ...after, requireUser],
    routes: (app) =>
      app.get("/login", session, (req, res) => {
        (req.session as unknown as { user: unknown }).user = { id: 1, name: "bench" };
        res.json({ ok: true });
      }),
    prime: async (base) => {
      const response = await fetch(`${base}/login`);
      const cookie = response.headers.get("set-cookie");
      if (cookie === null) throw new Error("no session cookie from /login");
      return [`Cookie: ${cookie.split(";")[0]}`];
    },
  };
}

/** express-session on connect-redis 8.1 (ioredis), the options of peer-bench's h_session_redis. */
export const connectRedisSession: Setup = async (ctx: ScenarioContext) => {
  const session = requireCjs("express-session") as typeof import("express-session");
  const { RedisStore } = requireCjs("connect-redis") as typeof import("connect-redis");
  const store = new RedisStore({ client: ctx.newRedis(), prefix: "sess:" });
  return sessionSetup({
    session: session({ store, secret: "bench-secret", resave: false, saveUninitialized: false }),
  });
};
