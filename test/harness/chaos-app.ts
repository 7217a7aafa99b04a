/**
 * The chaos suite's application and load: an Express app using every feature on one Redis
 * client (rate limit, response cache, lock, sessions, pub/sub, health), driven by a steady
 * load of keep-alive HTTP requests, each with a deadline. Every answer is recorded as a sample
 * (feature, time, failed or not, normal or not), and the app records what only it can see:
 * lock holders overlapping (double grants), sessions written and messages published and
 * received. `chaos.ts` injects the faults and turns these records into figures.
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
  unavailableHandler,
} from "../../index.js";

/** The features measured, in the table's order. */
export const FEATURES = [
  "rateLimit",
  "cacheResponse",
  "requireLock",
  "sessions",
  "pubsub",
] as const;
export type Feature = (typeof FEATURES)[number] | "health";

/** One answer (or its absence) as the load saw it. */
export interface Sample {
  feature: Feature;
  /** When the request was sent (ms, `performance.now()`). */
  at: number;
  /** A 5xx, a network error or a missed deadline. */
  failed: boolean;
  /** The answer the feature gives when Redis is healthy (Redis-backed, not a fallback). */
  normal: boolean;
  /** No answer within the deadline. */
  hung: boolean;
}

/** The rate limit each round's key gets (requests per 5 minutes, longer than a round). */
export const RATE_LIMIT = 200;
/**
 * How long a lock holder works by default; the lock's TTL is ten times that, so no extension
 * runs meanwhile. Longer than a failover: a grant lost with the old master is seen as a second
 * holder while the first still works.
 */
const LOCK_HOLD_MS = 3000;
/**
 * A request with no answer within this is counted as hung (every feature's deadline is ≤ 1 s);
 * a lock request gets the holder's working time on top.
 */
export const DEADLINE_MS = 3000;

const quiet = { info() {}, warn() {}, error() {} };

/** A session the load created: its cookie, when its write was acknowledged (200). */
export interface WrittenSession {
  cookie: string;
  at: number;
}

export interface ChaosApp {
  readonly url: string;
  readonly samples: Sample[];
  /** Times a lock handler started while another holder of its resource was still working. */
  doubleGrants: number;
  grants: number;
  readonly sessions: WrittenSession[];
  /** Sequence numbers whose publish resolved, with when. */
  readonly published: Map<number, number>;
  /** Sequence numbers received, with when. */
  readonly received: Map<number, number>;
  /** Admitted (200) answers per rate-limit key. */
  readonly admitted: Map<string, number>;
  /** The rate-limit key the load uses now (a new one per round). */
  rateKey: string;
  /** Starts the load (`concurrency` requests in flight). */
  startLoad(concurrency?: number): void;
  stopLoad(): Promise<void>;
  /** Reads `cookie`'s session: true when it is there. */
  readSession(cookie: string): Promise<boolean | "failed">;
  /** The Redis key holding `cookie`'s session (for diagnostics). */
  sessionKey(cookie: string): string;
  close(): Promise<void>;
}

/** Starts the app on a free port. */
export async function startChaosApp(options: {
  redis: RedisClient;
  replicas?: ReplicasOptions;
  /** How long a lock holder works. @default 100 */
  lockHoldMs?: number;
}): Promise<ChaosApp> {
  const { redis, replicas } = options;
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
    published: new Map<number, number>(),
    received: new Map<number, number>(),
    admitted: new Map<string, number>(),
    rateKey: "r0",
    sessions: [] as WrittenSession[],
  };
  const channel = `${prefix}events`;
  let logins = 0;
  await pubsub.subscribe(channel, (message) => {
    state.received.set(message.data as number, performance.now());
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

  const samples: Sample[] = [];
  let running = false;
  const workers: Promise<void>[] = [];
  let seq = 0;
  let publisher: NodeJS.Timeout | undefined;

  /** One request; its sample is recorded. Resolves with the response, or undefined. */
  async function hit(feature: Feature, path: string, init: RequestInit = {}, normal?: string) {
    const at = performance.now();
    // A lock holder works `hold` ms before it answers: its deadline counts from then.
    const deadline = DEADLINE_MS + (feature === "requireLock" ? hold : 0);
    try {
      const res = await fetch(url + path, { ...init, signal: AbortSignal.timeout(deadline) });
      await res.arrayBuffer();
      const failed = res.status >= 500;
      const ok =
        !failed &&
        (normal === undefined ||
          res.headers.get("x-backend") === normal ||
          res.headers.get("x-cache") === normal ||
          normal.split("|").includes(res.headers.get("x-cache") ?? ""));
      samples.push({ feature, at, failed, normal: ok, hung: false });
      return res;
    } catch (err) {
      const hung = (err as Error).name === "TimeoutError";
      samples.push({ feature, at, failed: true, normal: false, hung });
      return undefined;
    }
  }

  const cookies: string[] = [];
  let turn = 0;
  async function worker() {
    while (running) {
      const n = turn++;
      switch (n % 8) {
        case 0:
        case 1: {
          const key = state.rateKey;
          await hit("rateLimit", `/rl/${key}`, {}, "redis");
          break;
        }
        case 2:
        case 3:
          await hit("cacheResponse", `/cache/${n % 20}`, {}, "HIT|MISS");
          break;
        case 4:
          await hit("requireLock", `/lock/${(n >> 3) % 4}`, { method: "POST" });
          break;
        case 5: {
          const res = await hit("sessions", "/login", { method: "POST" });
          const cookie = res?.status === 200 ? res.headers.get("set-cookie") : null;
          if (cookie) {
            const pair = cookie.split(";")[0]!;
            cookies.push(pair);
            state.sessions.push({ cookie: pair, at: performance.now() });
          }
          break;
        }
        case 6: {
          const cookie = cookies[n % Math.max(1, cookies.length)];
          if (cookie === undefined) break;
          const res = await hit("sessions", "/me", { headers: { cookie } });
          if (res?.status === 401) {
            samples[samples.length - 1]!.normal = false;
            // Lost for good (the round's check counts it): asking again would keep the feature
            // abnormal in every later round, though it answers normally.
            const at = cookies.indexOf(cookie);
            if (at >= 0) cookies.splice(at, 1);
          }
          break;
        }
        default:
          await hit("health", "/health");
      }
    }
  }

  return {
    url,
    samples,
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
    sessions: state.sessions,
    published: state.published,
    received: state.received,
    admitted: state.admitted,
    get rateKey() {
      return state.rateKey;
    },
    set rateKey(v) {
      state.rateKey = v;
    },
    startLoad(concurrency = 8) {
      running = true;
      for (let i = 0; i < concurrency; i++) workers.push(worker());
      publisher = setInterval(() => {
        const n = seq++;
        const at = performance.now();
        pubsub.publish(channel, n).then(
          () => {
            state.published.set(n, at);
            samples.push({ feature: "pubsub", at, failed: false, normal: true, hung: false });
          },
          () => samples.push({ feature: "pubsub", at, failed: true, normal: false, hung: false }),
        );
      }, 20);
    },
    async stopLoad() {
      running = false;
      clearInterval(publisher);
      await Promise.all(workers.splice(0));
    },
    async readSession(cookie) {
      try {
        const res = await fetch(`${url}/me`, {
          headers: { cookie },
          signal: AbortSignal.timeout(DEADLINE_MS),
        });
        await res.arrayBuffer();
        if (res.status >= 500) return "failed";
        return res.status === 200;
      } catch {
        return "failed";
      }
    },
    sessionKey(cookie) {
      const signed = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1));
      return `${prefix}s:${signed.slice(2, signed.lastIndexOf("."))}`;
    },
    async close() {
      running = false;
      clearInterval(publisher);
      await Promise.all(workers.splice(0));
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await cache.close();
      await lock.locks.close();
      await pubsub.close();
      await (store as { close(): Promise<void> }).close();
    },
  };
}
