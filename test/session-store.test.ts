/**
 * The session store's index API through express-session and supertest, on the memory store,
 * a standalone Redis and a Cluster: one suite, the same expectations.
 */
import request from "supertest";
import { createSessionStore, sessionHandle, trackSessions } from "../index.js";
import { closeClients, collectUnhandledRejections, newRedis, wait } from "./helpers.js";
import { BACKENDS, gate, makeStore, type StoreUnderTest, sessionApp } from "./session-helpers.js";

const rejections = collectUnhandledRejections();
afterAll(closeClients);
afterEach(() => expect(rejections).toEqual([]));

/** The raw session keys of the store in Redis (none for memory). */
async function sessionKeys(t: StoreUnderTest): Promise<string[]> {
  return ((await t.store.ids()) as string[]).sort();
}

describe.each(BACKENDS)("user sessions on %s", (backend) => {
  let t: StoreUnderTest;
  beforeEach(() => {
    t = makeStore(backend, __filename);
  });
  afterEach(async () => {
    await t.store.clear();
    await t.store.close();
  });

  async function login(user: string, agent = "test") {
    const jar = request.agent(sessionApp(t.store));
    const res = await jar.post(`/login/${user}`).set("User-Agent", agent).expect(200);
    return { jar, sid: res.body.sid as string };
  }

  test("three jars: listed with metadata, current marked; revoke others logs them out", async () => {
    const before = Date.now();
    const a = await login("alice", "phone");
    const b = await login("alice", "laptop");
    const c = await login("alice", "tablet");
    const bob = await login("bob"); // another user: never listed or revoked for alice

    const list = (await a.jar.get("/sessions").expect(200)).body as Record<string, unknown>[];
    expect(list).toHaveLength(3);
    expect(list.map((s) => s.userAgent).sort()).toEqual(["laptop", "phone", "tablet"]);
    expect(list.filter((s) => s.current).map((s) => s.userAgent)).toEqual(["phone"]);
    for (const s of list) {
      expect(s.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect([a.sid, b.sid, c.sid]).not.toContain(s.id); // a handle, not the session id
      expect(s.createdAt).toBeGreaterThanOrEqual(before);
      expect(s.lastActiveAt).toBe(s.createdAt);
      expect(s.expiresAt).toBeGreaterThan(Date.now() + 3_500_000);
      expect(s.ip).toBe("127.0.0.1"); // IPv4-mapped IPv6 normalised
    }

    expect((await a.jar.post("/revoke-others").expect(200)).body).toEqual({ count: 2 });
    expect((await b.jar.get("/me")).body.user).toBeNull();
    expect((await c.jar.get("/me")).body.user).toBeNull();
    expect((await a.jar.get("/me")).body.user).toBe("alice");
    const after = (await a.jar.get("/sessions")).body as Record<string, unknown>[];
    expect(after.map((s) => s.id)).toEqual([sessionHandle(a.sid)]);
    expect((await t.store.listUserSessions("bob")).length).toBe(1);
    expect(await sessionKeys(t)).toEqual([a.sid, bob.sid].sort());
    expect(t.store.stats()).toMatchObject({ created: 4, revoked: 2 });
  });

  test("regenerate and logout drop the old id from the index", async () => {
    const a = await login("alice");
    const second = (await a.jar.post("/login/alice").expect(200)).body.sid as string;
    expect(second).not.toBe(a.sid);
    let list = await t.store.listUserSessions("alice");
    expect(list.map((s) => s.id)).toEqual([sessionHandle(second)]);
    expect(await sessionKeys(t)).toEqual([second]);

    await a.jar.post("/logout").expect(200);
    list = await t.store.listUserSessions("alice");
    expect(list).toEqual([]);
    expect(await sessionKeys(t)).toEqual([]);
    expect((await a.jar.get("/me")).body.user).toBeNull();
  });

  test("an id that changes owner: the old owner's revokes do not touch the new owner", async () => {
    const jar = request.agent(sessionApp(t.store));
    const sid = (await jar.post("/login-same-id/alice").expect(200)).body.sid as string;
    expect((await jar.post("/login-same-id/bob").expect(200)).body.sid).toBe(sid);

    expect(await t.store.listUserSessions("alice")).toEqual([]);
    expect((await t.store.listUserSessions("bob")).map((s) => s.id)).toEqual([sessionHandle(sid)]);
    expect(await t.store.revokeSession("alice", sessionHandle(sid))).toBe(false);
    expect(await t.store.revokeUserSessions("alice")).toBe(0);
    expect((await jar.get("/me")).body.user).toBe("bob");
    // Negative control: the owner's revoke does work.
    expect(await t.store.revokeSession("bob", sessionHandle(sid))).toBe(true);
    expect((await jar.get("/me")).body.user).toBeNull();
  });

  test("a request in flight during a revoke does not bring the session back", async () => {
    const slow = gate();
    const jar = request.agent(sessionApp(t.store, undefined, slow));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    const inFlight = jar.post("/write").then((r) => r);
    await slow.reached;
    expect(await t.store.revokeUserSessions("alice")).toBe(1);
    slow.open();
    expect((await inFlight).body).toEqual({ writes: 1 }); // the handler ran; its save was refused
    expect(await sessionKeys(t)).toEqual([]);
    expect(await t.store.listUserSessions("alice")).toEqual([]);
    expect((await jar.get("/me")).body.user).toBeNull();
    expect(t.store.stats().refusedWrites).toBe(1);
    expect((await jar.get("/me")).body.sid).not.toBe(sid);
  });

  test("negative control: without the revoke the slow write is saved", async () => {
    const slow = gate();
    const jar = request.agent(sessionApp(t.store, undefined, slow));
    await jar.post("/login/alice").expect(200);
    const inFlight = jar.post("/write").then((r) => r);
    await slow.reached;
    slow.open();
    await inFlight;
    expect((await jar.post("/write").expect(200)).body).toEqual({ writes: 2 });
    expect(t.store.stats().refusedWrites).toBe(0);
  });

  test("revoking one session by its handle; a wrong or malformed handle revokes nothing", async () => {
    const a = await login("alice");
    const b = await login("alice");
    expect((await a.jar.delete("/sessions/not-a-handle").expect(200)).body.revoked).toBe(false);
    expect((await a.jar.delete(`/sessions/${sessionHandle("x")}`).expect(200)).body.revoked).toBe(
      false,
    );
    const res = await a.jar.delete(`/sessions/${sessionHandle(b.sid)}`).expect(200);
    expect(res.body.revoked).toBe(true);
    expect((await b.jar.get("/me")).body.user).toBeNull();
    expect((await a.jar.get("/me")).body.user).toBe("alice");
  });

  test("revocations are published as session.revoked with user and handle", async () => {
    const events: unknown[] = [];
    let got!: () => void;
    const arrived = new Promise<void>((r) => {
      got = r;
    });
    const unsubscribe = await t.store.onRevoked((message) => {
      events.push({ type: message.type, ...message.data });
      if (events.length === 2) got();
    });
    const a = await login("alice");
    const b = await login("alice");
    await t.store.revokeUserSessions("alice");
    await arrived;
    await unsubscribe();
    expect(events).toEqual(
      expect.arrayContaining([
        {
          type: "session.revoked",
          userId: "alice",
          sessionId: sessionHandle(a.sid),
          reason: "revoked",
        },
        {
          type: "session.revoked",
          userId: "alice",
          sessionId: sessionHandle(b.sid),
          reason: "revoked",
        },
      ]),
    );
  });

  test("maxSessionsPerUser revokes the oldest sessions past the limit", async () => {
    await t.store.close();
    t = makeStore(backend, __filename, { maxSessionsPerUser: 2 });
    const app = sessionApp(t.store);
    const jars = [request.agent(app), request.agent(app), request.agent(app)];
    const sids: string[] = [];
    for (const jar of jars) sids.push((await jar.post("/login/alice").expect(200)).body.sid);
    const listed = (await t.store.listUserSessions("alice")).map((s) => s.id).sort();
    expect(listed).toEqual([sessionHandle(sids[1]!), sessionHandle(sids[2]!)].sort());
    expect((await jars[0]!.get("/me")).body.user).toBeNull();
    expect((await jars[2]!.get("/me")).body.user).toBe("alice");
    expect(t.store.stats().revoked).toBe(1);
  });

  test("with maxAge 1 s, sessions leave the listing by themselves", async () => {
    const app = sessionApp(t.store, { maxAge: 1000 });
    const jar = request.agent(app);
    await jar.post("/login/alice").expect(200);
    await request.agent(app).post("/login/alice").expect(200);
    expect(await t.store.listUserSessions("alice")).toHaveLength(2);
    await wait(1_100); // the expiry itself is what is tested
    expect(await t.store.listUserSessions("alice")).toEqual([]);
    expect(await t.store.length()).toBe(0);
    expect((await jar.get("/me")).body.user).toBeNull();
  });

  test("bad input: clear errors or a miss, never a Redis error", async () => {
    await expect(t.store.get("bad id{}")).resolves.toBeNull();
    await expect(t.store.get("x".repeat(300))).resolves.toBeNull();
    await expect(t.store.set("bad id{}", { cookie: {} } as never)).rejects.toThrow(
      /set: session id must be/,
    );
    await expect(t.store.destroy("bad\r\nid")).resolves.toBeNull();
    await expect(t.store.listUserSessions("")).rejects.toThrow(/user id must be/);
    await expect(t.store.listUserSessions("u".repeat(513))).rejects.toThrow(/user id must be/);
    await expect(t.store.revokeUserSessions("alice", { except: "{evil}*" })).rejects.toMatchObject({
      name: "InvalidOptionError",
      option: "sessionId",
    });
    await expect(
      t.store.set("ok-id", { cookie: {}, userId: { id: 1 } } as never),
    ).rejects.toMatchObject({ name: "InvalidOptionError", option: "userId" });
    // An object with its own toString (a MongoDB ObjectId) is its string.
    const objectId = { toString: () => "65a1f0c2e4b0a1b2c3d4e5f6" };
    await t.store.set("oid-owner", { cookie: {}, user: { id: objectId } } as never);
    expect((await t.store.listUserSessions("65a1f0c2e4b0a1b2c3d4e5f6")).length).toBe(1);
    // The error never echoes a session id (a credential).
    const error = await t.store.set("secret{id}", { cookie: {} } as never).catch((e: Error) => e);
    expect(String((error as Error).message)).not.toContain("secret");
    // A user id full of key syntax is just a user.
    const weird = "a{b}*?[c]\r\n user";
    await t.store.set("weird-owner", { cookie: {}, userId: weird } as never);
    expect((await t.store.listUserSessions(weird)).map((s) => s.id)).toEqual([
      sessionHandle("weird-owner"),
    ]);
    expect(await t.store.listUserSessions("a{b}*")).toEqual([]);
  });

  test("trackSessions: login metadata once, lastActiveAt at most once per interval", async () => {
    const slowTick = request.agent(
      sessionApp(t.store, undefined, undefined, { activityIntervalMs: 60_000 }),
    );
    await slowTick.post("/login/alice").set("User-Agent", "x".repeat(300)).expect(200);
    const [first] = await t.store.listUserSessions("alice");
    expect(first!.userAgent).toBe("x".repeat(256));
    await wait(5);
    await slowTick.get("/me").expect(200);
    const [again] = await t.store.listUserSessions("alice");
    expect(again!.lastActiveAt).toBe(first!.lastActiveAt); // within the interval: not written

    const fastTick = request.agent(
      sessionApp(t.store, undefined, undefined, { activityIntervalMs: 1 }),
    );
    await fastTick.post("/login/bob").expect(200);
    const [b1] = await t.store.listUserSessions("bob");
    await wait(5);
    await fastTick.get("/me").expect(200);
    const [b2] = await t.store.listUserSessions("bob");
    expect(b2!.lastActiveAt).toBeGreaterThan(b1!.lastActiveAt!);
    expect(b2!.createdAt).toBe(b1!.createdAt);
  });
});

describe("trackSessions() options", () => {
  test("rejects a store without the index API and bad options", () => {
    const { store } = makeStore("memory", __filename);
    expect(() => trackSessions({} as never)).toThrow(/trackSessions: store must be/);
    expect(() => createSessionStore({ redis: newRedis(), maxSessions: 5 })).toThrow(
      /createSessionStore: maxSessions must be left out with redis/,
    );
    expect(() => trackSessions(store, { activityIntervalMs: 0 })).toThrow(
      /activityIntervalMs must be a positive integer/,
    );
    expect(() => trackSessions(store, { activityInterval: 5 } as never)).toThrow(
      /did you mean "activityIntervalMs"/,
    );
  });
});
