/**
 * One session benchmark server:
 * `node --import tsx bench/session-server.ts <variant> <redisUrl> <port>`.
 *
 * Behind express-session on the variant's store (none for `bare`) it serves POST /login (sets
 * `req.session.userId`: the session is created and saved), GET /read (answers a small JSON built
 * from the session, leaving it unmodified) and POST /write (increments `req.session.counter`, so
 * the session is saved), and GET /__cpu (no session, not counted) answering this process's
 * `process.cpuUsage()`, the /read and /write requests received, the commands its Redis client
 * (ioredis; node-redis for `erk-nr`) sent, and per store method the calls and the commands sent
 * between each call and its callback (exact only while requests come one at a time: the
 * suite's sequential probe). Prints `READY`
 * on stdout once it listens, and exits when its standard input closes (so it never outlives the
 * runner), on SIGTERM or on SIGINT.
 */
import express, { type RequestHandler } from "express";
import session, { type Store } from "express-session";
import type { RedisClient } from "../index.js";
import { countingClient, serverArgs, serveUntilStopped } from "./serve.js";
import {
  BENCH_USER,
  COOKIE_MAX_AGE_MS,
  isSessionVariant,
  SCENARIO_REQUESTS,
  SESSION_SECRET,
  type SessionVariant,
  STORE_OPS,
  type StoreOp,
} from "./session-variants.js";

/** Calls of one store method, and the commands the client sent between call and callback. */
export interface OpCount {
  calls: number;
  sent: number;
}

/** What GET /__cpu answers. */
export interface SessionServerSample {
  user: number;
  system: number;
  /** /read and /write requests received. */
  served: number;
  /** Commands this server's Redis client sent (one per round trip; 0 without Redis). */
  redisSent: number;
  /** Per store method (all 0 for `bare`). */
  ops: Record<StoreOp, OpCount>;
}

/** The fields the benchmark keeps in a session. */
interface BenchSession {
  userId?: string;
  counter?: number;
}

type Method = (...args: unknown[]) => unknown;

/**
 * Wraps `store`'s methods to count calls and the commands sent until each one's callback
 * (express-session always passes one) or, without one, until its promise settles.
 */
function countOps(store: Store, ops: Record<StoreOp, OpCount>, sent: () => number): void {
  const methods = store as unknown as Record<StoreOp, Method | undefined>;
  for (const op of STORE_OPS) {
    const original = methods[op];
    if (original === undefined) continue;
    methods[op] = function counted(this: unknown, ...args: unknown[]) {
      const count = ops[op];
      count.calls++;
      const before = sent();
      const done = () => {
        count.sent += sent() - before;
      };
      const callback = args.at(-1);
      if (typeof callback === "function") {
        args[args.length - 1] = (...results: unknown[]) => {
          done();
          return (callback as Method)(...results);
        };
        return original.apply(this, args);
      }
      const result = original.apply(this, args);
      void Promise.resolve(result).then(done, done);
      return result;
    };
  }
}

/** The variant's session middleware chain (empty for `bare`) on `redis`. */
async function sessionFor(variant: SessionVariant, redis: RedisClient | undefined) {
  const chain: RequestHandler[] = [];
  let store: Store | undefined;
  switch (variant) {
    case "bare":
      return { chain, store };
    case "connect-redis": {
      const { RedisStore } = await import("connect-redis");
      store = new RedisStore({ client: redis! });
      break;
    }
    case "erk":
    case "erk-nr":
    case "erk-tracked": {
      const { UserSessionStore } = await import("../index.js");
      store = new UserSessionStore({ client: redis! });
      break;
    }
  }
  chain.push(
    session({
      store,
      secret: SESSION_SECRET,
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: COOKIE_MAX_AGE_MS },
    }),
  );
  if (variant === "erk-tracked") {
    const { trackSessions, UserSessionStore } = await import("../index.js");
    if (store instanceof UserSessionStore) chain.push(trackSessions(store));
  }
  return { chain, store };
}

async function main(): Promise<void> {
  const { variant, url, port } = serverArgs("session-server.ts", isSessionVariant);
  const client = variant === "bare" ? undefined : await countingClient(url, variant);
  const redis = client?.redis;
  const redisSent = () => client?.sent() ?? 0;
  const { chain, store } = await sessionFor(variant, redis);
  const ops = Object.fromEntries(STORE_OPS.map((op) => [op, { calls: 0, sent: 0 }])) as Record<
    StoreOp,
    OpCount
  >;
  if (store !== undefined) countOps(store, ops, redisSent);

  let served = 0;
  let bareCounter = 0;
  const app = express();
  app.get("/__cpu", (_req, res) => {
    const sample: SessionServerSample = {
      ...process.cpuUsage(),
      served,
      redisSent: redisSent(),
      ops,
    };
    res.json(sample);
  });
  const counted: RequestHandler = (_req, _res, next) => {
    served++;
    next();
  };
  app.post("/login", ...chain, (req, res) => {
    if (req.session !== undefined) (req.session as BenchSession).userId = BENCH_USER;
    res.json({ userId: BENCH_USER });
  });
  app.get(SCENARIO_REQUESTS.read.path, counted, ...chain, (req, res) => {
    const userId = req.session === undefined ? BENCH_USER : (req.session as BenchSession).userId;
    res.json({ userId: userId ?? null, ok: true });
  });
  app.post(SCENARIO_REQUESTS.write.path, counted, ...chain, (req, res) => {
    if (req.session === undefined) {
      res.json({ userId: BENCH_USER, counter: ++bareCounter });
      return;
    }
    const s = req.session as BenchSession;
    s.counter = (s.counter ?? 0) + 1;
    res.json({ userId: s.userId ?? null, counter: s.counter });
  });

  await serveUntilStopped(app, port, client?.close);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench session server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
