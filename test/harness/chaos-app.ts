/**
 * The chaos suite's application: an Express app using every feature on one Redis client (rate
 * limit, response cache, lock, sessions, pub/sub read as Server-Sent Events, health), driven by
 * the load of chaos-load.ts. The app records what only it can see: lock holders overlapping
 * (double grants), admissions per rate-limit key, messages received by its event stream's
 * client. `chaos.ts` injects the faults and turns these records into figures.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import express from "express";
import session from "express-session";
import {
  cacheResponse,
  createPubSub,
  createSessionStore,
  type RedisClient,
  type ReplicasOptions,
  rateLimit,
  redisHealth,
  requireLock,
  sse,
  unavailableHandler,
} from "../../index.js";
import { createLoad, type Sample, type WrittenSession } from "./chaos-load.ts";
import { readSse } from "./sse-reader.ts";

/** The rate limit each round's key gets (requests per 5 minutes, longer than a round). */
export const RATE_LIMIT = 200;
/**
 * How long a lock holder works by default; the lock's TTL is ten times that, so no extension
 * runs meanwhile. Longer than a failover: a grant lost with the old master is seen as a second
 * holder while the first still works.
 */
const LOCK_HOLD_MS = 3000;
const silent = { info() {}, warn() {}, error() {} };

export interface ChaosApp {
  readonly url: string;
  readonly samples: Sample[];
  /** Times a lock handler started while another holder of its resource was still working. */
  doubleGrants: number;
  grants: number;
  readonly sessions: WrittenSession[];
  /** Cookies whose session read answered 401 since the last `splice` (older sessions to check). */
  readonly refusedSessions: string[];
  /** Sequence numbers whose publish resolved, with when. */
  readonly published: Map<number, number>;
  /** Sequence numbers received by the load's Server-Sent Events client, with when. */
  readonly received: Map<number, number>;
  /** Admitted (200) answers per rate-limit key. */
  readonly admitted: Map<string, number>;
  /** The rate-limit key the load uses now (a new one per round). */
  rateKey: string;
  /** Event streams that ended and were opened again since the app started. */
  readonly streamsReopened: number;
  /** Starts the load (`concurrency` requests in flight). */
  startLoad(concurrency?: number): void;
  stopLoad(): Promise<void>;
  /** Reads `cookie`'s session: true when it is there. */
  readSession(cookie: string): Promise<boolean | "failed">;
  /** Stops the load reading `cookie`'s session (found lost). */
  forgetSession(cookie: string): void;
  /** The Redis key holding `cookie`'s session (for diagnostics). */
  sessionKey(cookie: string): string;
  close(): Promise<void>;
}

/** Starts the app on a free port. */
export async function startChaosApp(options: {
  redis: RedisClient;
  replicas?: ReplicasOptions;
  /** How long a lock holder works. @default 3000 */
  lockHoldMs?: number;
  /** Where the features' log lines go (state changes: Redis lost, back). @default nowhere */
  log?: (line: string) => void;
}): Promise<ChaosApp> {
  const { redis, replicas, log } = options;
  const logged = (line: string) => log?.(`app: ${line}`);
  const quiet = log === undefined ? silent : { info: logged, warn: logged, error: logged };
  const hold = options.lockHoldMs ?? LOCK_HOLD_MS;
  const prefix = `chaos:${randomBytes(3).toString("hex")}:`;
  const app = express();
  const store = createSessionStore({
    redis,
    prefix: `${prefix}s:`,
    indexPrefix: `${prefix}u:`,
    userId: (s: Record<string, unknown>) => s.userId,
    replicas,
    logger: quiet,
  });
  const pubsub = createPubSub({ redis, logger: quiet });
  const state = {
    doubleGrants: 0,
    grants: 0,
    received: new Map<number, number>(),
    admitted: new Map<string, number>(),
    rateKey: "r0",
  };
  const channel = `${prefix}events`;
  let logins = 0;
  // The subscriber is an HTTP client of this stream (see sse-reader.ts), not a handler in the
  // process: what it misses is what a browser would miss.
  app.get("/events", async (req, res) => {
    await sse(req, res, { pubsub, channels: [channel], heartbeatMs: 1000, retryMs: 100 });
  });

  const limiter = rateLimit({
    redis,
    prefix: `${prefix}rl:`,
    limit: RATE_LIMIT,
    windowMs: 300_000,
    key: (req) => String(req.params.key),
    // A 429 says which backend counted too, so a fallback shows whether it admits or refuses.
    handler: (req, res) => {
      res
        .status(429)
        .set("x-backend", req.rateLimit?.backend ?? "none")
        .json({ limited: true });
    },
    logger: quiet,
  });
  app.get("/rl/:key", limiter, (req, res) => {
    const key = String(req.params.key);
    state.admitted.set(key, (state.admitted.get(key) ?? 0) + 1);
    res.set("x-backend", req.rateLimit?.backend ?? "none").json({ ok: true });
  });
  // The limited key is spent within a second or two of a round, and its rejections are then
  // answered in the process (local rejections) without Redis: this key, never spent, keeps the
  // limiter asking Redis through the fault, so its fallback and its return are measured.
  const counting = rateLimit({
    redis,
    prefix: `${prefix}rlc:`,
    limit: 1_000_000_000,
    windowMs: 300_000,
    key: (req) => String(req.params.key),
    logger: quiet,
  });
  app.get("/rlc/:key", counting, (req, res) => {
    res.set("x-backend", req.rateLimit?.backend ?? "none").json({ ok: true });
  });

  const cache = cacheResponse({ redis, prefix: `${prefix}c:`, ttlMs: 60_000, logger: quiet });
  app.get("/cache/:n", cache, (req, res) => {
    res.json({ n: req.params.n, at: Date.now() });
  });

  const working = new Map<string, AbortSignal>();
  const lock = requireLock({
    redis,
    prefix: `${prefix}l:`,
    key: (req) => String(req.params.r),
    ttlMs: hold * 10,
    replicas,
    logger: quiet,
  });
  app.post("/lock/:r", lock, async (req, res) => {
    const r = String(req.params.r);
    const other = working.get(r);
    // Another handler holds this resource and has not been told its lock is lost.
    if (other !== undefined && !other.aborted) state.doubleGrants++;
    state.grants++;
    const signal = req.lock!.signal;
    working.set(r, signal);
    await new Promise((resolve) => setTimeout(resolve, hold));
    if (working.get(r) === signal) working.delete(r);
    res.json({ fence: req.lock!.fence });
  });

  app.use(
    session({
      store,
      secret: "chaos",
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 600_000 },
    }),
  );
  app.post("/login", (req, res, next) => {
    // One user per session: no session is evicted by maxSessionsPerUser.
    (req.session as unknown as Record<string, unknown>).userId = `u${logins++}`;
    // Saved before answering: express-session's own save, at the end of the response, cannot
    // change a status already decided, so a failed write would still answer 200.
    req.session.save((err) => (err ? next(err) : res.json({ ok: true })));
  });
  app.get("/me", (req, res) => {
    const userId = (req.session as unknown as Record<string, unknown>).userId;
    res.status(userId === undefined ? 401 : 200).json({ userId });
  });
  app.get("/health", redisHealth({ redis, timeoutMs: 500 }));
  app.use(unavailableHandler());

  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const events = readSse(`${url}/events`, (envelope) => {
    state.received.set((envelope as { data: number }).data, performance.now());
  });
  const opened = await Promise.race([
    events.ready.then(() => true),
    new Promise<false>((resolve) => setTimeout(resolve, 10_000, false).unref()),
  ]);
  if (!opened) {
    events.close();
    server.close();
    throw new Error("chaos app: its event stream (/events) did not open within 10 s");
  }

  const load = createLoad({
    url,
    holdMs: hold,
    rateKey: () => state.rateKey,
    publish: (n) => pubsub.publish(channel, n),
  });

  return {
    url,
    samples: load.samples,
    get doubleGrants() {
      return state.doubleGrants;
    },
    set doubleGrants(v) {
      state.doubleGrants = v;
    },
    get grants() {
      return state.grants;
    },
    set grants(v) {
      state.grants = v;
    },
    sessions: load.sessions,
    refusedSessions: load.refused,
    published: load.published,
    received: state.received,
    admitted: state.admitted,
    get rateKey() {
      return state.rateKey;
    },
    set rateKey(v) {
      state.rateKey = v;
    },
    get streamsReopened() {
      return events.reconnects;
    },
    startLoad: (concurrency = 8) => load.start(concurrency),
    stopLoad: () => load.stop(),
    readSession: (cookie) => load.readSession(cookie),
    forgetSession: (cookie) => load.forget(cookie),
    sessionKey(cookie) {
      const signed = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1));
      return `${prefix}s:${signed.slice(2, signed.lastIndexOf("."))}`;
    },
    async close() {
      await load.stop();
      events.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await cache.close();
      await limiter.limiter.close();
      await counting.limiter.close();
      await lock.locks.close();
      await pubsub.close();
      await (store as { close(): Promise<void> }).close();
    },
  };
}
