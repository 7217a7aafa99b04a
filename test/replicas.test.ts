/**
 * `replicas: { count, timeoutMs }` on locks and sessions (Redis WAIT behind the write, on a
 * connection of its own), on Sentinel (1 master, 1 replica) and on a Cluster with one replica
 * per master, through ioredis and node-redis:
 * - an acknowledged grant or session write is on the replica when the call resolves;
 * - with the replica frozen (SIGSTOP), the grant is refused with StoreUnavailableError (cause
 *   ReplicationTimeoutError) and given back; without `replicas` (the negative control) it is
 *   granted;
 * - on a Cluster the WAIT reaches the master of the key: only keys on the frozen replica's
 *   master are refused;
 * - the write and its WAIT are one pipeline: after SCRIPT FLUSH both go again (EVAL, WAIT:
 *   two WAITs counted by the server), and the grant is on the replica when acquire resolves.
 */
import { Cluster, Redis } from "ioredis";
import { createCluster } from "redis";
import {
  closeRedisClient,
  createLockManager,
  createRedisClient,
  createSessionStore,
  type LockManager,
  LockNotAcquiredError,
  type RedisClient,
  ReplicationTimeoutError,
  requireLock,
  StoreUnavailableError,
  UserSessionStore,
} from "../index.js";
import { featureStates } from "../stores/core/fallback.js";
import { taggedKey } from "../stores/core/keys.js";
import { type RedisSentinelGroup, startRedisSentinel } from "./harness/redis-sentinel.ts";
import { type RedisCluster, type RedisServer, startRedisCluster } from "./harness/redis-server.ts";
import {
  collectUnhandledRejections,
  commandCalls,
  eventually,
  quiet,
  testPrefix,
} from "./helpers.js";

const unhandled = collectUnhandledRejections();
const cookie = () => ({ originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) });

/** Runs `work` with `server` frozen (SIGSTOP), thawing it whatever happens. */
async function frozen<T>(server: RedisServer, work: () => Promise<T>): Promise<T> {
  await server.signal("SIGSTOP");
  try {
    return await work();
  } finally {
    await server.signal("SIGCONT");
  }
}

/** The rejection of `promise`, or a failure when it resolved. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

describe("replicas option validation", () => {
  const redis = new Redis({ lazyConnect: true });
  afterAll(() => redis.disconnect());

  it.each([
    ["no redis", { replicas: { count: 1 } }, "replicas needs a Redis client"],
    ["count 0", { redis, replicas: { count: 0 } }, "replicas.count must be"],
    ["no count", { redis, replicas: {} }, "replicas.count is required"],
    ["a number", { redis, replicas: 1 }, "replicas must be an object"],
    [
      "a wait as long as the call",
      { redis, replicas: { count: 1, timeoutMs: 1000 } },
      "replicas.timeoutMs (1000) must be below",
    ],
    ["an unknown key", { redis, replicas: { count: 1, timeout: 5 } }, 'unknown option "timeout"'],
  ])("createLockManager with replicas: %s is refused", (_label, options, message) => {
    expect(() => createLockManager(options as never)).toThrow(message);
  });

  it("requireLock takes replicas, but not beside a shared manager", () => {
    const locks = createLockManager();
    expect(() => requireLock({ key: () => "k", locks, replicas: { count: 1 } })).toThrow(
      "replicas cannot be given with locks",
    );
    expect(() => requireLock({ key: () => "k", replicas: { count: 1 } })).toThrow(
      "replicas needs a Redis client",
    );
    expect(() => createSessionStore({ redis, replicas: { count: 1, timeoutMs: 5000 } })).toThrow(
      "replicas.timeoutMs (5000) must be below timeoutMs (1000)",
    );
  });
});

describe.each(["ioredis", "node-redis"] as const)("replicas on Sentinel through %s", (family) => {
  let group: RedisSentinelGroup;
  let redis: RedisClient;
  let master: Redis;
  let replica: Redis;
  const prefix = testPrefix(`${__filename}-${family}`);
  const made: { close(): Promise<void> }[] = [];

  function locks(replicas?: { count: number; timeoutMs?: number }) {
    // A TTL far past every wait below: a lock that goes did not expire, it was released.
    const manager = createLockManager({
      redis,
      prefix: `${prefix}l:`,
      ttlMs: 600_000,
      logger: quiet,
      replicas,
    });
    made.push(manager);
    return manager;
  }

  beforeAll(async () => {
    group = await startRedisSentinel();
    redis = createRedisClient({
      client: family,
      sentinel: { name: group.name, nodes: group.sentinels },
      timeoutMs: 1000,
      logger: quiet,
    });
    master = new Redis(group.servers[0]!.port, { maxRetriesPerRequest: 1 });
    replica = new Redis(group.servers[1]!.port, { maxRetriesPerRequest: 1 });
  }, 60_000);

  afterAll(async () => {
    for (const m of made) await m.close();
    master?.disconnect();
    replica?.disconnect();
    if (redis !== undefined) closeRedisClient(redis);
    await group?.stop();
  });

  it("an acknowledged grant is on the replica when acquire resolves; one WAIT per grant", async () => {
    const manager = locks({ count: 1, timeoutMs: 500 });
    await manager.acquire("warm").then((l) => l.release());
    const waits = await commandCalls(master, "wait");
    const lock = await manager.acquire("r1");
    expect(await replica.get(taggedKey(`${prefix}l:`, "r1"))).toBe(lock.token);
    expect(await commandCalls(master, "wait")).toBe(waits + 1);
    expect(await lock.extend(10_000)).toBe(true);
    expect(await replica.pttl(taggedKey(`${prefix}l:`, "r1"))).toBeGreaterThan(5000);
    expect(await lock.release()).toBe(true);
  });

  it("the replica frozen: a grant is refused with ReplicationTimeoutError and given back, a busy lock still answers busy; without replicas, granted", async () => {
    const acked = locks({ count: 1, timeoutMs: 100 });
    const plain = locks();
    const key = taggedKey(`${prefix}l:`, "r2");
    await acked.acquire("warm2").then((l) => l.release());
    const held = await acked.acquire("held");
    const [err, busy, control] = await frozen(group.servers[1]!, async () => {
      const err = await rejection(acked.acquire("r2"));
      const busy = await rejection(acked.acquire("held")); // refused: nothing to acknowledge
      const control = await plain.acquire("r3");
      return [err, busy, control] as const;
    });
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).cause).toBeInstanceOf(ReplicationTimeoutError);
    expect((err as Error).cause).toMatchObject({ acknowledged: 0, required: 1, timeoutMs: 100 });
    expect(busy).toBeInstanceOf(LockNotAcquiredError);
    // Not degraded (what redisHealth() reports): only the unacknowledged call was refused.
    expect(featureStates().filter((f) => f.scope === "createLockManager")).not.toContainEqual(
      expect.objectContaining({ state: "degraded" }),
    );
    expect(control.fence).toBeGreaterThan(0);
    await control.release();
    await held.release();
    // The grant the master made is given back (a release behind it on its connection).
    await eventually(
      "the refused lock released",
      async () => expect(await master.exists(key)).toBe(0),
      5000,
    );
    // The refusal did not turn the manager degraded: the next grant goes straight to Redis.
    await (await acked.acquire("r2")).release();
  });

  it("a session write waits for the replica, and says so when it does not come", async () => {
    const store = createSessionStore({
      redis,
      prefix: `${prefix}s:`,
      indexPrefix: `${prefix}u:`,
      replicas: { count: 1, timeoutMs: 100 },
      userId: (s: Record<string, unknown>) => s.userId,
      logger: quiet,
    }) as UserSessionStore;
    made.push(store);
    expect(store).toBeInstanceOf(UserSessionStore);
    await store.set("sid1", { cookie: cookie(), userId: "alice" } as never);
    expect(await replica.exists(`${prefix}s:sid1`)).toBe(1);
    const err = await frozen(group.servers[1]!, () =>
      rejection(store.set("sid2", { cookie: cookie(), userId: "alice" } as never)),
    );
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).cause).toBeInstanceOf(ReplicationTimeoutError);
    await eventually("writes again", async () => {
      await store.destroy("sid1");
    });
    expect(await replica.exists(`${prefix}s:sid1`)).toBe(0);
  });

  it("after SCRIPT FLUSH the grant and a WAIT go again, and the grant is on the replica when acquire resolves", async () => {
    const manager = locks({ count: 1, timeoutMs: 500 });
    await manager.acquire("warm3").then((l) => l.release());
    await master.script("FLUSH");
    const waits = await commandCalls(master, "wait");
    const lock = await manager.acquire("r4");
    // The first pipeline's EVALSHA found no script (its WAIT ran for nothing); the EVAL's
    // pipeline brought its own WAIT.
    expect(await commandCalls(master, "wait")).toBe(waits + 2);
    expect(await replica.get(taggedKey(`${prefix}l:`, "r4"))).toBe(lock.token);
    await lock.release();
    expect(unhandled).toEqual([]);
  });
});

describe.each(["ioredis", "node-redis"] as const)(
  "replicas on a Cluster with replicas through %s",
  (family) => {
    let cluster: RedisCluster;
    let redis: RedisClient;
    let inspector: Cluster;
    let manager: LockManager;
    const prefix = testPrefix(`${__filename}-cluster-${family}`);

    beforeAll(async () => {
      cluster = await startRedisCluster(3, 1);
      if (family === "ioredis") {
        redis = new Cluster(cluster.nodes, {
          redisOptions: { maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false },
        });
      } else {
        const client = createCluster({ rootNodes: cluster.nodes.map((socket) => ({ socket })) });
        client.on("error", () => {});
        await client.connect();
        redis = client;
      }
      inspector = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
      await inspector.ping();
    }, 60_000);

    afterAll(async () => {
      await manager?.close();
      inspector?.disconnect();
      if (redis !== undefined) closeRedisClient(redis);
      await cluster?.stop();
    });

    it("the WAIT reaches the key's master: only keys whose master's replica is frozen are refused", async () => {
      // The master of each resource's slot, and the replica of one master.
      const resources = Array.from({ length: 12 }, (_, i) => `res-${i}`);
      // The server says which slot a key hashes to (CLUSTER KEYSLOT).
      const slotOf = new Map<string, number>();
      for (const r of resources) {
        const key = taggedKey(`${prefix}l:`, r);
        slotOf.set(r, Number(await inspector.call("CLUSTER", "KEYSLOT", key)));
      }
      const masterOf = (resource: string) => inspector.slots[slotOf.get(resource)!]![0]!;
      const victimMaster = masterOf(resources[0]!);
      const ports = await Promise.all(
        cluster.servers.map(async (server) => {
          const probe = new Redis(server.port, { lazyConnect: true });
          await probe.connect();
          const info = await probe.info("replication");
          probe.disconnect();
          return /master_port:(\d+)/.exec(info)?.[1];
        }),
      );
      const victim = cluster.servers[ports.indexOf(victimMaster.split(":")[1])]!;
      expect(victim).toBeDefined();
      const elsewhere = resources.filter((r) => masterOf(r) !== victimMaster);
      expect(elsewhere.length).toBeGreaterThan(0);

      manager = createLockManager({
        redis,
        prefix: `${prefix}l:`,
        ttlMs: 600_000, // a lock that goes was released, not expired
        logger: quiet,
        // A second for a replica's acknowledgement: 150 ms was once too short for a healthy
        // replica on the loaded 2-core machine running the whole suite.
        timeoutMs: 5000,
        replicas: { count: 1, timeoutMs: 1000 },
      });
      for (const r of resources) await (await manager.acquire(r)).release(); // scripts loaded
      const err = await frozen(victim, async () => {
        // Other masters' replicas answer: granted (a WAIT sent to the wrong master would say 1
        // for the frozen one's keys too: the refusal below is the control).
        for (const r of elsewhere) await (await manager.acquire(r)).release();
        return rejection(manager.acquire(resources[0]!));
      });
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).cause).toBeInstanceOf(ReplicationTimeoutError);
      await eventually(
        "the refused lock released",
        async () => expect(await inspector.exists(taggedKey(`${prefix}l:`, resources[0]!))).toBe(0),
        5000,
      );
      expect(unhandled).toEqual([]);
    }, 60_000);
  },
);
