/**
 * The session benchmark's variants and scenarios, shared by the runner (`session-suite.ts`) and
 * the server (`http-server.ts`): this library's store as bench/peer-scenarios.cjs's `p_session`
 * (what ../shared/peer-bench runs), connect-redis as peer-bench's `h_session_redis`.
 */
import type { RequestHandler } from "express";
import type { UserSessionStore } from "../index.js";
import { bare, connectRedisSession } from "./peers.js";
import {
  kitLib,
  peerScenario,
  requireCjs,
  type Scenario,
  type ScenarioContext,
  type Setup,
} from "./scenario.js";

/** Every session variant, in the order the table lists them. `bare` is the reference of every ratio. */
export const SESSION_VARIANTS = ["bare", "connect-redis", "erk", "erk-nr", "erk-tracked"] as const;

export type SessionVariant = (typeof SESSION_VARIANTS)[number];

/** What each variant measures, for the printed report. */
export const SESSION_DESCRIPTIONS: Record<SessionVariant, string> = {
  bare: "Express 5, no session: the handler answers the same JSON (the cookie header is sent all the same)",
  "connect-redis":
    'express-session 1.19 with connect-redis 8.1 `new RedisStore({ client, prefix: "sess:" })` on ioredis (GET to read, EXPIRE to touch, SET to save)',
  erk: "express-session 1.19 with this library's `new UserSessionStore({ client })` on ioredis (the store alone: the comparison with connect-redis)",
  "erk-nr":
    "as `erk`, with the store on node-redis 6 `createClient({ url })` (default options, RESP3)",
  "erk-tracked":
    "as `erk`, plus `trackSessions(store)` mounted after `session()` (login metadata, activity at most once a minute)",
};

/**
 * The scenarios every variant serves on one logged-in session (`secret: "bench-secret"`,
 * `resave: false`, `saveUninitialized: false`, no cookie maxAge, a user check): `read` (GET /api)
 * leaves the session unmodified (express-session touches it), `write` (POST /api) increments
 * `counter` in it (it saves). Both answer the 1024-byte body.
 */
export const SESSION_SCENARIOS = ["read", "write"] as const;

export type SessionScenario = (typeof SESSION_SCENARIOS)[number];

/** Method and path of each scenario's request. */
export const SCENARIO_REQUESTS: Record<SessionScenario, { method: "GET" | "POST"; path: string }> =
  {
    read: { method: "GET", path: "/api" },
    write: { method: "POST", path: "/api" },
  };

/** The session store methods the server counts (calls, and commands sent while one runs). */
export const STORE_OPS = ["get", "set", "touch", "destroy"] as const;

export type StoreOp = (typeof STORE_OPS)[number];

/** Calls of one store method, and the commands the clients sent between call and callback. */
export interface OpCount {
  calls: number;
  sent: number;
}

type Method = (...args: unknown[]) => unknown;

/**
 * Wraps the store methods of `proto` (a store class's prototype) to count calls and the
 * commands sent until each one's callback (express-session always passes one) or, without one,
 * until its promise settles; exact only while requests come one at a time (the suite's probe).
 */
function countOps(proto: object, sent: () => number): Record<StoreOp, OpCount> {
  const ops = Object.fromEntries(STORE_OPS.map((op) => [op, { calls: 0, sent: 0 }])) as Record<
    StoreOp,
    OpCount
  >;
  const methods = proto as Record<StoreOp, Method | undefined>;
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
  return ops;
}

/** `setup` with the store class `proto()` counted, its counts in the server's samples (`ops`). */
function counted(proto: () => object, setup: Setup): Setup {
  return async (ctx: ScenarioContext) => {
    const ops = countOps(proto(), ctx.sent);
    return { ...(await setup(ctx)), sample: () => ({ ops }) };
  };
}

const userSessionStore = () => kitLib().UserSessionStore.prototype;

/**
 * `trackSessions()` on the store express-session uses (`req.sessionStore`), made on the first
 * request, so `p_session` stays the one definition of the store and its options.
 */
function trackedStore(): RequestHandler {
  let tracker: RequestHandler | undefined;
  return (req, res, next) => {
    const { sessionStore } = req as unknown as { sessionStore: UserSessionStore };
    tracker ??= kitLib().trackSessions(sessionStore);
    tracker(req, res, next);
  };
}

/** Each variant's row: its label, its peer-bench id, its setup. */
export const SESSION_SCENARIO_SETUPS: Record<SessionVariant, Scenario> = {
  bare: { label: "bare Express", peerBench: "a_bare", setup: bare },
  "connect-redis": {
    label: "connect-redis 8.1",
    peerBench: "h_session_redis",
    setup: counted(
      () => (requireCjs("connect-redis") as typeof import("connect-redis")).RedisStore.prototype,
      connectRedisSession,
    ),
  },
  erk: {
    label: "UserSessionStore",
    peerBench: "p_session",
    setup: counted(userSessionStore, peerScenario("p_session")),
  },
  "erk-nr": {
    label: "UserSessionStore, node-redis",
    peerBench: "p_session on node-redis",
    client: "node-redis",
    setup: counted(userSessionStore, peerScenario("p_session")),
  },
  "erk-tracked": {
    label: "UserSessionStore + trackSessions()",
    peerBench: "p_session + trackSessions",
    setup: counted(userSessionStore, async (ctx) => {
      const made = await peerScenario("p_session")(ctx);
      const [session, ...rest] = made.mw;
      return { ...made, mw: [session!, trackedStore(), ...rest] };
    }),
  },
};

export function isSessionVariant(value: string): value is SessionVariant {
  return (SESSION_VARIANTS as readonly string[]).includes(value);
}

export function isSessionScenario(value: string): value is SessionScenario {
  return (SESSION_SCENARIOS as readonly string[]).includes(value);
}

/** The name of one measured unit in the report: `variant/scenario`. */
export function sessionEntry(variant: SessionVariant, scenario: SessionScenario): string {
  return `${variant}/${scenario}`;
}

/** Splits a benchmark entry `variant/scenario`. */
export function parseSessionEntry(entry: string): {
  variant: SessionVariant;
  scenario: SessionScenario;
} {
  const [variant = "", scenario = ""] = entry.split("/");
  if (!isSessionVariant(variant) || !isSessionScenario(scenario))
    throw new Error(`unknown session benchmark entry ${entry}`);
  return { variant, scenario };
}
