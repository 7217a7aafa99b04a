/**
 * What only the Redis store has: round trips per request, the keys it leaves behind, TTLs as
 * connect-redis sets them, Cluster's two-step order, keyPrefix, interop with plain connect-redis.
 */
import { RedisStore } from "connect-redis";
import express from "express";
import session from "express-session";
import { Cluster, type Redis } from "ioredis";
import { createCluster } from "redis";
import request from "supertest";
import { type RedisClient, sessionHandle, UserSessionStore } from "../index.js";
import {
  closeClients,
  clusterNodes,
  collectUnhandledRejections,
  newCluster,
  newNodeRedis,
  newRedis,
  testPrefix,
} from "./helpers.js";
import { makeStore, type StoreUnderTest, sessionApp } from "./session-helpers.js";

const rejections = collectUnhandledRejections();
const extra: { disconnect(): unknown }[] = [];
afterAll(async () => {
  for (const c of extra) c.disconnect();
  await closeClients();
});
afterEach(() => expect(rejections).toEqual([]));

/** Records the name of every command `client` sends. */
function countCommands(client: Redis | Cluster): string[] {
  const sent: string[] = [];
  const original = client.sendCommand.bind(client);
  client.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    sent.push(command.name);
    return (original as (...a: unknown[]) => unknown)(command, ...rest);
  }) as typeof client.sendCommand;
  return sent;
}

/** The companion hash name of `sid` (no keyPrefix in these tests). */
const meta = (t: StoreUnderTest, sid: string) => `{${t.prefix}${sid}}:m`;

describe.each(["standalone", "cluster"] as const)("UserSessionStore on %s", (backend) => {
  let t: StoreUnderTest;
  let redis: Redis | Cluster;
  beforeEach(() => {
    t = makeStore(backend, __filename);
    redis = t.redis!;
  });
  afterEach(async () => {
    await t.store.clear();
    await t.store.close();
  });

  test("an unmodified request is one command; a write is one on standalone, two on Cluster", async () => {
    const jar = request.agent(sessionApp(t.store));
    await jar.post("/login/alice").expect(200);
    await jar.get("/me").expect(200); // scripts loaded
    await jar.post("/write").expect(200);
    const sent = countCommands(t.client as Redis | Cluster);
    await jar.get("/me").expect(200);
    expect(sent).toEqual(["evalsha"]);
    sent.length = 0;
    await jar.post("/write").expect(200);
    expect(sent).toEqual(
      backend === "standalone" ? ["evalsha", "evalsha"] : ["evalsha", "evalsha", "evalsha"],
    );
  });

  test("negative control: plain connect-redis sends two commands per unmodified request", async () => {
    const plain = new RedisStore({ client: redis, prefix: t.prefix });
    const app = express();
    app.use(session({ store: plain, secret: "s", resave: false, saveUninitialized: false }));
    app.post("/in", (req, res) => {
      (req.session as { userId?: string }).userId = "alice";
      res.end();
    });
    app.get("/me", (_req, res) => {
      res.end();
    });
    const jar = request.agent(app);
    await jar.post("/in").expect(200);
    const sent = countCommands(redis);
    await jar.get("/me").expect(200);
    expect(sent).toEqual(["get", "expire"]);
  });

  test("TTLs as connect-redis sets them: from cookie.expires, refreshed by reads, ttl without maxAge", async () => {
    const jar = request.agent(sessionApp(t.store, { maxAge: 600_000 }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    const key = `${t.prefix}${sid}`;
    expect(await redis.pttl(key)).toBeGreaterThan(590_000);
    expect(await redis.pttl(key)).toBeLessThanOrEqual(600_000);
    await redis.pexpire(key, 5_000);
    await redis.pexpire(meta(t, sid), 5_000);
    await jar.get("/me").expect(200); // unmodified: the read refreshed what touch would have
    expect(await redis.pttl(key)).toBeGreaterThan(590_000);
    expect(await redis.pttl(meta(t, sid))).toBeGreaterThan(590_000);

    const noMaxAge = makeStore(backend, __filename, { ttl: 120 });
    const jar2 = request.agent(sessionApp(noMaxAge.store, {}));
    const sid2 = (await jar2.post("/login/bob").expect(200)).body.sid as string;
    const ttl2 = await redis.pttl(`${noMaxAge.prefix}${sid2}`);
    expect(ttl2).toBeGreaterThan(115_000);
    expect(ttl2).toBeLessThanOrEqual(120_000);
    await noMaxAge.store.clear();
    await noMaxAge.store.close();
  });

  test("disableTouch: an unmodified request leaves the TTL alone", async () => {
    const still = makeStore(backend, __filename, { disableTouch: true });
    const jar = request.agent(sessionApp(still.store, { maxAge: 600_000 }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    await redis.pexpire(`${still.prefix}${sid}`, 5_000);
    const sent = countCommands(still.client as Redis | Cluster);
    await jar.get("/me").expect(200);
    expect(sent).toEqual(["evalsha"]); // the read, no expire
    expect(await redis.pttl(`${still.prefix}${sid}`)).toBeLessThanOrEqual(5_000);
    await still.store.clear();
    await still.store.close();
  });

  test("a custom serializer: touch does the refresh (one more command), as connect-redis", async () => {
    const custom = makeStore(backend, __filename, {
      serializer: { parse: (s) => JSON.parse(s), stringify: (s) => JSON.stringify(s) },
    });
    const jar = request.agent(sessionApp(custom.store, { maxAge: 600_000 }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    await jar.get("/me").expect(200);
    await redis.pexpire(`${custom.prefix}${sid}`, 5_000);
    const sent = countCommands(custom.client as Redis | Cluster);
    await jar.get("/me").expect(200);
    expect(sent).toEqual(["evalsha", "evalsha"]);
    expect(await redis.pttl(`${custom.prefix}${sid}`)).toBeGreaterThan(590_000);
    await custom.store.clear();
    await custom.store.close();
  });

  test("keys after login and revoke: companion, tombstone, index expiring with its last session", async () => {
    const jar = request.agent(sessionApp(t.store, { maxAge: 600_000 }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    const index = `${t.indexPrefix}{alice}`;
    expect(await redis.hgetall(meta(t, sid))).toEqual({ i: index, e: expect.any(String) });
    const score = Number(await redis.zscore(index, sid));
    expect(score).toBeGreaterThan(Date.now() + 590_000);
    const indexTtl = await redis.pttl(index);
    expect(indexTtl).toBeGreaterThan(650_000); // last expiry + 60 s grace
    expect(indexTtl).toBeLessThanOrEqual(660_000);

    expect(await t.store.revokeUserSessions("alice")).toBe(1);
    expect(await redis.exists(`${t.prefix}${sid}`)).toBe(0);
    expect(await redis.exists(index)).toBe(0);
    expect(await redis.hgetall(meta(t, sid))).toEqual({ x: "1" });
    expect(await redis.pttl(meta(t, sid))).toBeGreaterThan(590_000);
    await t.store.destroy(sid); // a late logout of the revoked id does not shorten it
    expect(await redis.pttl(meta(t, sid))).toBeGreaterThan(590_000);
  });

  test("disableTTL: no TTL on the session, its companion or the index; still listed and revoked", async () => {
    const forever = makeStore(backend, __filename, { disableTTL: true });
    const jar = request.agent(sessionApp(forever.store));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    const index = `${forever.indexPrefix}{alice}`;
    expect(await redis.pttl(`${forever.prefix}${sid}`)).toBe(-1);
    expect(await redis.pttl(`{${forever.prefix}${sid}}:m`)).toBe(-1);
    expect(await redis.pttl(index)).toBe(-1);
    const [listed] = await forever.store.listUserSessions("alice");
    expect(listed).toMatchObject({ id: sessionHandle(sid), expiresAt: null, current: false });
    await request.agent(sessionApp(forever.store)).post("/login/alice").expect(200);
    expect(await forever.store.revokeUserSessions("alice")).toBe(2);
    expect((await jar.get("/me")).body.user).toBeNull();
    expect(await redis.exists(index)).toBe(0);
    await forever.store.clear();
    await forever.store.close();
  });

  test("a stale index entry (a move whose second step never ran) cannot revoke the new owner", async () => {
    const jar = request.agent(sessionApp(t.store));
    const sid = (await jar.post("/login-same-id/alice").expect(200)).body.sid as string;
    await jar.post("/login-same-id/bob").expect(200);
    await redis.zadd(`${t.indexPrefix}{alice}`, Date.now() + 3_600_000, sid); // as if step 2 died
    expect(await t.store.listUserSessions("alice")).toEqual([]);
    expect(await t.store.revokeSession("alice", sessionHandle(sid))).toBe(false);
    expect(await t.store.revokeUserSessions("alice")).toBe(0);
    expect((await jar.get("/me")).body.user).toBe("bob");
  });

  test("Cluster order: an entry written ahead of its session survives a revoke in between", async () => {
    const cookie = {
      originalMaxAge: 600_000,
      expires: new Date(Date.now() + 600_000).toISOString(),
    };
    await t.store.set("moving", { cookie, userId: "bob" } as never);
    // Step 1 of a write that makes "moving" alice's (index first), its step 2 still to come:
    await redis.zadd(`${t.indexPrefix}{alice}`, Date.now() + 600_000, "moving");
    expect(await t.store.revokeUserSessions("alice")).toBe(0); // bob's, untouched
    expect(await t.store.revokeSession("alice", sessionHandle("moving"))).toBe(false);
    expect(await t.store.listUserSessions("alice")).toEqual([]);
    const left = await redis.zscore(`${t.indexPrefix}{alice}`, "moving");
    // On Cluster the entry must stay for the write's step 2; a standalone write is atomic.
    if (backend === "cluster") expect(left).not.toBeNull();
    await t.store.set("moving", { cookie, userId: "alice" } as never); // step 2 (and 1 again)
    expect(await t.store.revokeUserSessions("alice")).toBe(1);
    expect(await t.store.get("moving")).toBeNull();
  });

  test("writes by the same owner leave a fresh index entry alone; a lagging one is moved", async () => {
    const jar = request.agent(sessionApp(t.store, { maxAge: 600_000 }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    const index = `${t.indexPrefix}{alice}`;
    const first = Number(await redis.zscore(index, sid));
    for (let i = 0; i < 3; i++) await jar.post("/write").expect(200);
    if (backend === "standalone") {
      expect(Number(await redis.zscore(index, sid))).toBe(first); // within the lag
      expect(Number(await redis.hget(meta(t, sid), "e"))).toBe(first);
    }
    await redis.zadd(index, Date.now() + 100_000, sid);
    await redis.hset(meta(t, sid), "e", Date.now() + 100_000);
    await jar.post("/write").expect(200);
    expect(Number(await redis.zscore(index, sid))).toBeGreaterThan(Date.now() + 590_000);
    expect(t.store.stats().created).toBe(1); // one login, however many writes
  });

  test("a read moves a lagging index entry forward; dead entries are pruned by score", async () => {
    const jar = request.agent(sessionApp(t.store, { maxAge: 600_000 }));
    const sid = (await jar.post("/login/alice").expect(200)).body.sid as string;
    const index = `${t.indexPrefix}{alice}`;
    const old = Date.now() + 100_000;
    await redis.zadd(index, old, sid);
    await redis.hset(meta(t, sid), "e", old);
    await redis.zadd(index, Date.now() - 120_000, "dead-session");
    await jar.get("/me").expect(200);
    expect(Number(await redis.zscore(index, sid))).toBeGreaterThan(Date.now() + 590_000);
    expect(Number(await redis.hget(meta(t, sid), "e"))).toBeGreaterThan(Date.now() + 590_000);
    expect(await redis.zscore(index, "dead-session")).not.toBeNull(); // reads never prune
    await request.agent(sessionApp(t.store)).post("/login/alice").expect(200);
    expect(await redis.zscore(index, "dead-session")).toBeNull(); // a write does
  });

  test("sessions of plain connect-redis are read, and ours are readable by it", async () => {
    const plain = new RedisStore({ client: redis, prefix: t.prefix });
    const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString() };
    await plain.set("from-plain", { cookie, userId: "alice" } as never);
    expect(await t.store.get("from-plain")).toMatchObject({ userId: "alice" });
    await t.store.set("from-ours", { cookie, userId: "bob" } as never);
    expect(await plain.get("from-ours")).toMatchObject({ userId: "bob" });
    expect((await t.store.listUserSessions("bob")).map((s) => s.id)).toEqual([
      sessionHandle("from-ours"),
    ]);
  });
});

describe.each(["standalone", "cluster", "node-redis", "node-redis-cluster"] as const)(
  "all/ids/length/clear on %s with keyPrefix",
  (backend) => {
    test("scan every master, strip keyPrefix, leave other keys alone", async () => {
      const base = testPrefix(__filename);
      const keyPrefix = `${base}kp:`;
      let client: {
        set(key: string, value: string): Promise<unknown>;
        del(key: string): Promise<unknown>;
      };
      if (backend === "cluster") {
        client = new Cluster(clusterNodes(), { keyPrefix });
        extra.push(client as Cluster);
      } else if (backend === "standalone") {
        client = newRedis(undefined, { keyPrefix });
      } else if (backend === "node-redis") {
        client = newNodeRedis(undefined, { keyPrefix });
      } else {
        const cluster = createCluster({
          rootNodes: clusterNodes().map((socket) => ({ socket })),
          keyPrefix,
        });
        await cluster.connect();
        extra.push({ disconnect: () => cluster.destroy() });
        client = cluster;
      }
      const store = new UserSessionStore({
        client: client as unknown as RedisClient,
        prefix: "s:",
        indexPrefix: "u:",
      });
      const cookie = {
        originalMaxAge: 60_000,
        expires: new Date(Date.now() + 60_000).toISOString(),
      };
      const sids = Array.from({ length: 12 }, (_, i) => `sid-${i}`);
      for (const [i, sid] of sids.entries()) {
        await store.set(sid, { cookie, userId: `user-${i % 3}` } as never);
      }
      await client.set("other", "kept");
      expect(((await store.ids()) as string[]).sort()).toEqual([...sids].sort());
      expect(await store.length()).toBe(12);
      const all = (await store.all()) as { id: string; userId: string }[];
      expect(all.map((s) => s.id).sort()).toEqual([...sids].sort());
      expect(all.find((s) => s.id === "sid-4")?.userId).toBe("user-1");
      expect(await store.listUserSessions("user-1")).toHaveLength(4);
      // Reads, revokes and "log out everywhere" find the companions under the keyPrefix too.
      expect(await store.get("sid-4")).toMatchObject({ userId: "user-1" });
      expect(await store.revokeSession("user-2", sessionHandle("sid-2"))).toBe(true);
      expect(await store.revokeUserSessions("user-1", { except: "sid-1" })).toBe(3);
      expect(await store.get("sid-4")).toBeNull();
      expect(await store.get("sid-2")).toBeNull();
      expect((await store.listUserSessions("user-1")).map((x) => x.id)).toEqual([
        sessionHandle("sid-1"),
      ]);
      expect(await store.length()).toBe(8);

      await store.clear();
      const left: string[] = [];
      const inspector = backend.includes("cluster") ? newCluster() : newRedis();
      await inspector.ping(); // connected: a Cluster client knows its masters
      const nodes = inspector instanceof Cluster ? inspector.nodes("master") : [inspector];
      for (const node of nodes) left.push(...(await node.keys(`${base}*`)));
      expect(left).toEqual([`${base}kp:other`]);
      await client.del("other");
      await store.close();
    });
  },
);
