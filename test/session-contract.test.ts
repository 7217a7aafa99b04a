/**
 * express-session's store contract, on `MemorySessionStore` and on `UserSessionStore` over every
 * client and topology: connect-redis's lifecycle (set, ttl, touch extends the TTL, length, ids,
 * all, destroy, clear, a past expiry deletes), "remember me" through express-session (the TTL
 * follows a cookie whose maxAge changed without the session changing), and the free touch
 * sending nothing when nothing changed (counted by the server: INFO commandstats).
 */
import type { Redis } from "ioredis";
import request from "supertest";
import { UserSessionStore } from "../index.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  closeClients,
  collectUnhandledRejections,
  commandCalls,
  newRedis,
  quiet,
  testPrefix,
} from "./helpers.js";
import {
  BACKENDS,
  makeStore,
  REMEMBER_MS,
  type StoreUnderTest,
  sessionApp,
} from "./session-helpers.js";

const rejections = collectUnhandledRejections();
afterAll(closeClients);
afterEach(() => expect(rejections).toEqual([]));

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * The TTL of session `sid` in ms: PTTL in Redis; for the memory store, from its listing (the
 * sessions of these tests have an owner for that), the only view it gives of a TTL.
 */
async function ttlOf(t: StoreUnderTest, sid: string, owner: string): Promise<number> {
  if (t.redis !== undefined) return t.redis.pttl(`${t.prefix}${sid}`);
  const found = (await t.store.listUserSessions(owner)).filter((s) => s.expiresAt !== null);
  expect(found).toHaveLength(1);
  return found[0]!.expiresAt! - Date.now();
}

/**
 * `ms` within two seconds below `expected` (TTLs are set in whole seconds and then run down;
 * the memory store's clock, lru-cache's, runs a few ms behind `Date.now()`).
 */
function expectAbout(ms: number, expected: number): void {
  expect(ms).toBeLessThanOrEqual(expected + 100);
  expect(ms).toBeGreaterThan(expected - 2_000);
}

describe.each(BACKENDS)("express-session contract on %s", (backend) => {
  let t: StoreUnderTest;
  beforeEach(() => {
    t = makeStore(backend, __filename);
  });
  afterEach(async () => {
    await t.store.clear();
    await t.store.close();
  });

  test("connect-redis's lifecycle: set, ttl, touch, length, ids, all, destroy, clear, past expiry", async () => {
    const { store } = t;
    await store.clear();

    const sess = { foo: "bar", userId: "u123", cookie: { originalMaxAge: null } };
    await store.set("123", sess as never);
    expect(await store.get("123")).toEqual(sess);
    expectAbout(await ttlOf(t, "123", "u123"), DAY); // no cookie expiry: the ttl option

    const expires = new Date(Date.now() + 60_000);
    await store.set("456", { userId: "u456", cookie: { originalMaxAge: null, expires } } as never);
    expectAbout(await ttlOf(t, "456", "u456"), 60_000);

    // touch sets the TTL from the session it is given: longer, then shorter.
    const later = { originalMaxAge: null, expires: new Date(Date.now() + 90_000) };
    await store.touch("456", { userId: "u456", cookie: later } as never);
    expectAbout(await ttlOf(t, "456", "u456"), 90_000);
    const sooner = { originalMaxAge: null, expires: new Date(Date.now() + 30_000) };
    await store.touch("456", { userId: "u456", cookie: sooner } as never);
    expectAbout(await ttlOf(t, "456", "u456"), 30_000);
    if (t.redis !== undefined) {
      // The companion hash follows the session (a listing must not outlive it).
      expectAbout(await t.redis.pttl(`{${t.prefix}456}:m`), 30_000);
    }

    expect(await store.length()).toBe(2);
    expect(((await store.ids()) as string[]).sort()).toEqual(["123", "456"]);
    const all = (await store.all()) as { id: string }[];
    expect(all.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: "123", ...sess },
      {
        id: "456",
        userId: "u456",
        cookie: { originalMaxAge: null, expires: expires.toISOString() },
      },
    ]);

    await store.destroy("456");
    expect(await store.length()).toBe(1);
    expect(await store.get("456")).toBeNull();
    await store.clear();
    expect(await store.length()).toBe(0);

    const count = 150;
    for (let i = 0; i < count; i++) {
      const cookie = { originalMaxAge: null, expires: new Date(Date.now() + 60_000) };
      await store.set(`s${i}`, { cookie } as never);
    }
    expect(await store.length()).toBe(count);
    await store.clear();
    expect(await store.length()).toBe(0);

    const future = { originalMaxAge: null, expires: new Date(Date.now() + 90_000) };
    await store.set("789", { cookie: future } as never);
    expect(await store.length()).toBe(1);
    const past = { originalMaxAge: null, expires: new Date(Date.now() - 90_000) };
    await store.set("789", { cookie: past } as never);
    expect(await store.length()).toBe(0);
    expect(await store.get("789")).toBeNull();
    if (t.redis !== undefined) expect(await t.redis.exists(`${t.prefix}789`)).toBe(0);
  });

  test("a touch with a past expiry deletes the session; a touch of a missing one creates nothing", async () => {
    const cookie = { originalMaxAge: null, expires: new Date(Date.now() + 60_000) };
    await t.store.set("old", { userId: "u", cookie } as never);
    const past = { originalMaxAge: null, expires: new Date(Date.now() - 1_000) };
    await t.store.touch("old", { userId: "u", cookie: past } as never);
    expect(await t.store.get("old")).toBeNull();
    expect(await t.store.listUserSessions("u")).toEqual([]);
    await t.store.touch("never-set", { cookie } as never);
    expect(await t.store.length()).toBe(0);
  });

  test("remember me: maxAge changed without changing the session, the TTL follows (via touch)", async () => {
    const jar = request.agent(sessionApp(t.store, { maxAge: HOUR }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    expectAbout(await ttlOf(t, sid, "alice"), HOUR);
    await jar.get("/me").expect(200);
    expectAbout(await ttlOf(t, sid, "alice"), HOUR); // negative control: a plain request

    await jar.post("/remember-me").expect(200);
    expectAbout(await ttlOf(t, sid, "alice"), REMEMBER_MS);
    const [listed] = await t.store.listUserSessions("alice");
    expect(listed!.expiresAt! - Date.now()).toBeGreaterThan(REMEMBER_MS - 2_000);
    if (t.redis !== undefined) {
      expectAbout(await t.redis.pttl(`{${t.prefix}${sid}}:m`), REMEMBER_MS);
      const score = Number(await t.redis.zscore(`${t.indexPrefix}{alice}`, sid));
      expect(score - Date.now()).toBeGreaterThan(REMEMBER_MS - 2_000);
      // It was touch, not set: the stored session (and its cookie) was not rewritten.
      const stored = JSON.parse((await t.redis.get(`${t.prefix}${sid}`))!);
      // (express-session derives originalMaxAge from expires at save: within a ms of an hour)
      expect(stored.cookie.originalMaxAge).toBeGreaterThan(HOUR - 1000);
      expect(stored.cookie.originalMaxAge).toBeLessThanOrEqual(HOUR); // not the 30 days
    }
  });

  test("negative control: with disableTouch the same request leaves the TTL at the hour", async () => {
    await t.store.close();
    t = makeStore(backend, __filename, { disableTouch: true });
    const jar = request.agent(sessionApp(t.store, { maxAge: HOUR }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    await jar.post("/remember-me").expect(200);
    expectAbout(await ttlOf(t, sid, "alice"), HOUR);
  });

  test("an unmodified request that outlasts a second: its touch moves the TTL to its end", async () => {
    const jar = request.agent(sessionApp(t.store, { maxAge: HOUR }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    const started = Date.now();
    await jar.get("/idle/2000").expect(200); // the time passing is what is tested
    const ttl = await ttlOf(t, sid, "alice");
    // The read set an hour from its start; the touch an hour from the end, 2 s later.
    expect(Date.now() + ttl).toBeGreaterThan(started + 2_000 + HOUR - 1_000);
  });
});

describe("the free touch, counted by the server (INFO commandstats on a server of this file)", () => {
  let server: RedisServer;
  let admin: Redis;
  let store: UserSessionStore;
  beforeAll(async () => {
    server = await startRedisServer();
    admin = newRedis(server.url);
  });
  beforeEach(() => {
    store = new UserSessionStore({
      redis: newRedis(server.url),
      prefix: testPrefix(__filename),
      logger: quiet,
    });
  });
  afterEach(() => store.close());
  afterAll(() => server.stop());

  /** Commands the store's client sent: script calls, and a plain EXPIRE (scripts use PEXPIRE). */
  const sent = () => commandCalls(admin, "evalsha", "eval", "expire");

  test("an unmodified request: one command (the read); remember me: two (read, touch)", async () => {
    const jar = request.agent(sessionApp(store, { maxAge: HOUR }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    await jar.get("/me").expect(200); // scripts loaded
    let before = await sent();
    await jar.get("/me").expect(200);
    expect((await sent()) - before).toBe(1);
    before = await sent();
    await jar.post("/remember-me").expect(200);
    expect((await sent()) - before).toBe(2);
    expectAbout(await admin.pttl(`${store.prefix}${sid}`), REMEMBER_MS);
  });

  test("the store API: touch with the session get returned is free unless its expiry moved", async () => {
    const cookie = { originalMaxAge: HOUR, expires: new Date(Date.now() + HOUR) };
    await store.set("api", { cookie } as never);
    await store.get("api"); // scripts loaded
    const read = (await store.get("api")) as { cookie: { expires: unknown } };
    let before = await sent();
    read.cookie.expires = new Date(Date.now() + HOUR); // what express-session's touch() does
    await store.touch("api", read as never);
    expect((await sent()) - before).toBe(0);

    read.cookie.expires = new Date(Date.now() + 2 * HOUR);
    before = await sent();
    await store.touch("api", read as never);
    expect((await sent()) - before).toBe(1);
    expectAbout(await admin.pttl(`${store.prefix}api`), 2 * HOUR);
    before = await sent();
    await store.touch("api", read as never); // the same expiry again: already set
    expect((await sent()) - before).toBe(0);

    // A session object no read returned: touch cannot know, so it sets the TTL.
    before = await sent();
    await store.touch("api", { cookie: { ...read.cookie } } as never);
    expect((await sent()) - before).toBe(1);
  });
});
