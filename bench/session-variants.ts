/**
 * The session benchmark's variants and scenarios, shared by the runner (`session-suite.ts`) and
 * the server (`session-server.ts`).
 */

/** Every session variant, in the order the table lists them. `bare` is the baseline of every ratio. */
export const SESSION_VARIANTS = ["bare", "connect-redis", "erk", "erk-nr", "erk-tracked"] as const;

export type SessionVariant = (typeof SESSION_VARIANTS)[number];

/** What each variant measures, for the printed report. */
export const SESSION_DESCRIPTIONS: Record<SessionVariant, string> = {
  bare: "Express 5, no session: the handler answers the same JSON (the cookie header is sent all the same)",
  "connect-redis":
    "express-session 1.19 with connect-redis 8.1 `new RedisStore({ client })` on ioredis (GET to read, EXPIRE to touch, SET to save)",
  erk: "express-session 1.19 with express-redis-kit `new UserSessionStore({ client })` on ioredis (the store alone: the comparison with connect-redis)",
  "erk-nr":
    "as `erk`, with the store on node-redis 6 `createClient({ url })` (RESP3, same-tick pipelining)",
  "erk-tracked":
    "as `erk`, plus `trackSessions(store)` mounted after `session()` (login metadata, activity at most once a minute)",
};

/** The session variants' express-session settings (the cookie lives an hour). */
export const SESSION_SECRET = "bench-session-secret";
export const COOKIE_MAX_AGE_MS = 3_600_000;
/** Who the benchmark's one session belongs to. */
export const BENCH_USER = "bench-user";

/**
 * The scenarios every variant serves on one logged-in session: `read` leaves the session
 * unmodified (express-session touches it), `write` increments a counter in it (it saves).
 */
export const SESSION_SCENARIOS = ["read", "write"] as const;

export type SessionScenario = (typeof SESSION_SCENARIOS)[number];

/** Method and path of each scenario's request on the session server. */
export const SCENARIO_REQUESTS: Record<SessionScenario, { method: "GET" | "POST"; path: string }> =
  {
    read: { method: "GET", path: "/read" },
    write: { method: "POST", path: "/write" },
  };

/** The session store methods the server counts (calls, and commands sent while one runs). */
export const STORE_OPS = ["get", "set", "touch", "destroy"] as const;

export type StoreOp = (typeof STORE_OPS)[number];

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
