/**
 * The session store's failure model, on a redis-server of this file's own: only `onRedisError:
 * "closed"`; Redis stopped mid-traffic → every call rejects with StoreUnavailableError (promises,
 * callbacks, express-session's next(err) → 503 with Retry-After); a frozen Redis → the first
 * call rejects after timeoutMs, the next ones at once without sending anything; and the same
 * store is back on Redis by itself once the server answers again.
 */
import type express from "express";
import type { Redis } from "ioredis";
import request from "supertest";
import {
  createSessionStore,
  MemorySessionStore,
  metrics,
  RedisTimeoutError,
  StoreUnavailableError,
  UserSessionStore,
} from "../index.js";
import { featureStates } from "../stores/core/fallback.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  deferred,
  eventually,
  newRedis,
  quiet,
  ready,
  testPrefix,
} from "./helpers.js";
import { sessionApp } from "./session-helpers.js";

const unhandled = collectUnhandledRejections();
const prefix = testPrefix(__filename);
const cookie = () => ({ originalMaxAge: 600_000, expires: new Date(Date.now() + 600_000) });
let server: RedisServer;
let stores: UserSessionStore[] = [];

beforeAll(async () => {
  server = await startRedisServer();
});
afterEach(async () => {
  await server.start(); // a no-op when it runs
  for (const store of stores) await store.close();
  stores = [];
  expect(unhandled).toEqual([]);
});
afterAll(async () => {
  await closeClients();
  await server.stop();
});

function store(redis: Redis, options: { timeoutMs?: number; recheckMs?: number } = {}) {
  const s = new UserSessionStore({ redis, prefix, logger: quiet, ...options });
  stores.push(s);
  return s;
}

/** Settles like `promise`, or rejects naming `what` if it has not within `ms`: no hang. */
function noHang<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} hangs (> ${ms} ms)`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** What a call rejected with (or `undefined` when it resolved). */
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => err,
  );

/** Records the name of every command `client` sends (a wrapper, not a fake). */
function countCommands(client: Redis): string[] {
  const sent: string[] = [];
  const original = client.sendCommand.bind(client);
  client.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    sent.push(command.name);
    return (original as (...a: unknown[]) => unknown)(command, ...rest);
  }) as typeof client.sendCommand;
  return sent;
}

/** The sessions switch's state, as redisHealth() reads it. */
const sessionStates = () =>
  featureStates()
    .filter((s) => s.scope === "UserSessionStore")
    .map((s) => s.state);

test("options: only closed is offered; redis or client (connect-redis's name), not both", async () => {
  const redis = newRedis(server.url);
  const base = { prefix, logger: quiet };
  const refused = {
    memory:
      /onRedisError "memory" is not offered here: a session kept in one process logs the user out/,
    open: /onRedisError "open" is not offered here: a session store cannot answer without its sessions/,
  };
  for (const [mode, reason] of Object.entries(refused)) {
    const onRedisError = mode as never;
    expect(() => new UserSessionStore({ ...base, redis, onRedisError })).toThrow(reason);
    expect(() => createSessionStore({ ...base, client: redis, onRedisError })).toThrow(reason);
    // Without a client (the memory store) the failure options are checked all the same.
    expect(() => createSessionStore({ onRedisError })).toThrow(reason);
  }
  const bad = [
    [{ onRedisError: "nope" }, "onRedisError", /onRedisError must be one of "closed"/],
    [{ timeoutMs: 0 }, "timeoutMs", /timeoutMs must be a positive integer \(got 0\)/],
    [{ recheckMs: 1.5 }, "recheckMs", /recheckMs must be a positive integer/],
    [{ client: redis }, "client", /give the Redis client as redis or as client .* not both/],
  ] as const;
  for (const [extra, option, message] of bad) {
    for (const make of [
      () => new UserSessionStore({ ...base, redis, ...(extra as object) }),
      () => createSessionStore({ ...base, redis, ...(extra as object) }),
    ]) {
      expect(make).toThrow(message);
      expect(make).toThrow(expect.objectContaining({ name: "InvalidOptionError", option }));
    }
  }
  expect(() => new UserSessionStore(base as never)).toThrow(/UserSessionStore: redis must be/);

  // Either name works, and "closed" may be said explicitly.
  const viaRedis = store(redis);
  const named = [
    new UserSessionStore({ ...base, client: redis, onRedisError: "closed", timeoutMs: 50 }),
    createSessionStore({ ...base, client: redis }),
    createSessionStore({ ...base, redis }),
  ];
  for (const s of named) {
    expect(s).toBeInstanceOf(UserSessionStore);
    stores.push(s as UserSessionStore);
  }
  await viaRedis.set("either", { cookie: cookie(), userId: "u" } as never);
  expect(await named[0]!.get("either")).toMatchObject({ userId: "u" });
  const memory = createSessionStore({ prefix: "ignored:", timeoutMs: 50 });
  expect(memory).toBeInstanceOf(MemorySessionStore);
  await memory.close();
});

test("Redis stopped mid-traffic: StoreUnavailableError everywhere, 503s, back by itself", async () => {
  const redis = newRedis(server.url);
  const s = store(redis, { timeoutMs: 300 });
  const app = sessionApp(s);
  app.use(
    (err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      if (!(err instanceof StoreUnavailableError)) {
        res.status(500).json({ name: err.name });
        return;
      }
      res.set("Retry-After", String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
      res.status(503).json({ code: err.code });
    },
  );
  const jar = request.agent(app);
  const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;

  const statuses = new Map<number, number>();
  const served = deferred();
  const refused = deferred();
  let running = true;
  const traffic = (async () => {
    while (running) {
      const res = await noHang(jar.get("/me"), "a request");
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status === 200) served.resolve();
      if (res.status === 503) {
        expect(res.headers["retry-after"]).toMatch(/^[1-9]\d*$/);
        expect(res.body).toEqual({ code: "ERK_STORE_UNAVAILABLE" });
        refused.resolve();
      }
    }
  })();
  await served.promise;
  await server.stop();
  await refused.promise;
  running = false;
  await traffic;
  expect([...statuses.keys()].sort()).toEqual([200, 503]); // never a 500, never a hang

  // Every primitive rejects with StoreUnavailableError (its cause: what Redis did).
  const calls = [
    s.get(sid),
    s.set("new-id", { cookie: cookie() } as never),
    s.touch(sid, { cookie: cookie() } as never),
    s.destroy(sid),
    s.length(),
    s.listUserSessions("alice"),
    s.revokeUserSessions("alice"),
  ];
  for (const err of await Promise.all(calls.map((c) => noHang(errorOf(c), "a call")))) {
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as StoreUnavailableError).cause).toBeInstanceOf(Error);
  }
  // express-session's callbacks get the error (and no value).
  const viaCallback = await noHang(
    new Promise<unknown[]>((resolve) => s.get(sid, (...args: unknown[]) => resolve(args))),
    "a callback",
  );
  expect(viaCallback[0]).toBeInstanceOf(StoreUnavailableError);
  expect(viaCallback[1]).toBeNull();
  expect(sessionStates()).toContain("degraded");
  // The metrics scrape still answers, with the connection down.
  const scrape = await metrics({ sessionCountIntervalMs: 1 }).text();
  expect(scrape).toMatch(/erk_redis_connected\{client="127\.0\.0\.1:\d+"\} 0/);

  await server.start();
  await ready(redis);
  // One try per recheckMs (a call's, or the store's own PING) brings it back.
  await eventually("the store is back on Redis", async () => {
    expect(await s.get(sid)).toBeNull(); // Redis kept nothing: no persistence
  });
  expect(sessionStates()).not.toContain("degraded");
  expect((await jar.get("/me").expect(200)).body.user).toBeNull();
  await jar.post("/login/alice").expect(200);
  expect(await s.listUserSessions("alice")).toHaveLength(1);
});

test("a frozen Redis: the first call rejects after timeoutMs, the next ones at once, unsent", async () => {
  const redis = newRedis(server.url);
  const s = store(redis, { timeoutMs: 200, recheckMs: 2_000 });
  await s.set("frozen", { cookie: cookie(), userId: "bob" } as never);
  await server.signal("SIGSTOP");
  let retryAfterMs = 0;
  try {
    const first = await noHang(errorOf(s.get("frozen")), "the first call");
    expect(first).toBeInstanceOf(StoreUnavailableError);
    expect((first as Error).cause).toBeInstanceOf(RedisTimeoutError);

    const sent = countCommands(redis);
    const burst = [
      ...Array.from({ length: 10 }, () => s.get("frozen")),
      s.set("frozen", { cookie: cookie(), userId: "bob" } as never),
      s.touch("frozen", { cookie: cookie() } as never),
      s.listUserSessions("bob"),
      s.destroy("frozen"),
    ];
    for (const err of await Promise.all(burst.map(errorOf))) {
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as StoreUnavailableError).retryAfterMs).toBeGreaterThan(0);
      retryAfterMs = Math.max(retryAfterMs, (err as StoreUnavailableError).retryAfterMs);
    }
    expect(sent).toEqual([]); // while degraded no call waits on Redis: nothing was sent
  } finally {
    await server.signal("SIGCONT");
  }
  expect(retryAfterMs).toBeLessThanOrEqual(2_000);
  // The next try (a call's, or the store's own PING) is due within recheckMs.
  await eventually("the same store, its data", async () => {
    expect(await s.get("frozen")).toMatchObject({ userId: "bob" });
  });
  expect((await s.listUserSessions("bob")).length).toBe(1);
});
