/**
 * A Redis Cluster with replicas (3 masters, 3 replicas, node timeout 1 s), through ioredis and
 * node-redis: SIGKILL of the node the pub/sub subscriber is connected to (a master, whose
 * replica takes over, or a replica: whichever the client picked). The subscriber
 * reconnects elsewhere, subscribes again, `onResubscribed` runs and delivery resumes; the rate
 * limiter answers from Redis again once the replica took over.
 */
import { Cluster, Redis } from "ioredis";
import { createCluster } from "redis";
import {
  closeRedisClient,
  createPubSub,
  createRateLimiter,
  type PubSub,
  type RedisClient,
} from "../index.js";
import { type RedisCluster, startRedisCluster } from "./harness/redis-server.ts";
import { collectUnhandledRejections, eventually, quiet, testPrefix } from "./helpers.js";

const unhandled = collectUnhandledRejections();

describe.each(["ioredis", "node-redis"] as const)("Cluster failover through %s", (family) => {
  let cluster: RedisCluster;
  let redis: RedisClient;
  const name = `erk-failover-${family}-${process.pid}`;
  const prefix = testPrefix(`${__filename}-${family}`);

  beforeAll(async () => {
    cluster = await startRedisCluster(3, 1);
    if (family === "ioredis") {
      redis = new Cluster(cluster.nodes, {
        redisOptions: {
          connectionName: name, // its subscriber duplicate keeps the name
          maxRetriesPerRequest: 1,
          autoResendUnfulfilledCommands: false,
        },
      });
    } else {
      const client = createCluster({
        rootNodes: cluster.nodes.map((socket) => ({ socket })),
        defaults: { name },
      });
      client.on("error", () => {});
      await client.connect();
      redis = client;
    }
  }, 60_000);

  afterAll(async () => {
    if (redis !== undefined) closeRedisClient(redis);
    await cluster?.stop();
  });

  it("SIGKILL of the subscriber's node: it resubscribes, onResubscribed runs, delivery and limits resume", async () => {
    let resubscribed = 0;
    const subscriber: PubSub = createPubSub({
      redis,
      logger: quiet,
      onResubscribed: () => resubscribed++,
    });
    const publisher = createPubSub({ redis, logger: quiet });
    const limiter = createRateLimiter({
      redis,
      prefix: `${prefix}rl:`,
      limit: 1_000_000,
      windowMs: 60_000,
      onRedisError: "closed",
      timeoutMs: 2000,
      logger: quiet,
    });
    const channel = `${prefix}events`;
    const got: string[] = [];
    await subscriber.subscribe(channel, (m) => {
      got.push(m.data as string);
    });
    const delivered = (message: string) =>
      eventually(`delivery of ${message}`, async () => {
        await publisher.publish(channel, message);
        const deadline = Date.now() + 1000;
        while (!got.includes(message) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        if (!got.includes(message)) throw new Error(`${message} not received`);
      });
    await delivered("before");
    expect(await limiter.consume("k")).toMatchObject({ allowed: true, backend: "redis" });

    // The node holding this test's subscriber connection (by its connection name).
    const owners = await Promise.all(
      cluster.servers.map(async (server) => {
        const probe = new Redis(server.port, { lazyConnect: true });
        try {
          await probe.connect();
          const list = String(await probe.call("CLIENT", "LIST", "TYPE", "pubsub"));
          // ioredis names its Cluster subscriber `ioredis-cluster(subscriber):<name>`.
          return list.includes(`${name} `) ? server : undefined;
        } finally {
          probe.disconnect();
        }
      }),
    );
    const victim = owners.find((s) => s !== undefined);
    expect(victim).toBeDefined();
    const before = resubscribed;
    await victim!.signal("SIGKILL");

    await eventually("the limiter on Redis after the failover", async () => {
      expect(await limiter.consume("k")).toMatchObject({ allowed: true, backend: "redis" });
    });
    await delivered("after");
    expect(resubscribed).toBeGreaterThan(before);
    expect(unhandled).toEqual([]);
    await subscriber.close();
    await publisher.close();
  }, 90_000);

  it("SIGKILL of a master: its PINGs keep a feature off Redis until the replica took over, then bring it back with no traffic", async () => {
    const changes: { at: number; line: string }[] = [];
    const record = (line: string) => void changes.push({ at: Date.now(), line });
    const limiter = createRateLimiter({
      redis,
      prefix: `${prefix}ping:`,
      limit: 1_000_000,
      windowMs: 60_000,
      timeoutMs: 1000,
      recheckMs: 60_000, // no request probes within the test: only the switch's own PINGs
      logger: { info: record, warn: record, error: record },
    });
    // A master whose replica is in sync, asked of the replica (the test before may have killed
    // a replica its master still lists as online).
    const info = (port: number) => {
      const probe = new Redis(port, { lazyConnect: true, maxRetriesPerRequest: 0 });
      return probe
        .connect()
        .then(() => probe.info("replication"))
        .finally(() => probe.disconnect());
    };
    // The failover the test before caused is over: 3 masters answer (two dead at once would
    // leave no majority to promote anyone).
    await eventually("3 masters up", async () => {
      const roles = await Promise.all(cluster.servers.map((s) => info(s.port).catch(() => "")));
      expect(roles.filter((r) => r.includes("role:master"))).toHaveLength(3);
    });
    let pair: { master: (typeof cluster.servers)[number]; replica: number } | undefined;
    for (const server of cluster.servers) {
      const replication = await info(server.port).catch(() => "");
      const of = Number(/master_port:(\d+)/.exec(replication)?.[1]);
      const master = cluster.servers.find((s) => s.port === of);
      if (replication.includes("master_link_status:up") && master !== undefined) {
        pair = { master, replica: server.port };
        break;
      }
    }
    expect(pair).toBeDefined();
    const { master, replica } = pair!;
    await master.signal("SIGKILL");
    // Requests spread over every shard: those on the dead one turn the limiter degraded.
    await eventually("the limiter degraded", async () => {
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) => limiter.consume(`k${i}`)),
      );
      expect(answers.map((a) => a.backend)).toContain("memory");
    });
    // No traffic from here. `lastSlave`: when a look that still found the replica a replica
    // was sent; the promotion came after it, so no switch back may come before it.
    let lastSlave = Date.now();
    for (const giveUp = Date.now() + 30_000; ; ) {
      if (Date.now() > giveUp) throw new Error(`the replica ${replica} was not promoted`);
      const sent = Date.now();
      if ((await info(replica).catch(() => "")).includes("role:master")) break;
      lastSlave = sent;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const back = () => changes.filter((c) => c.line.includes("back on Redis"));
    await eventually("the limiter back on Redis", async () => {
      if (back().length === 0) throw new Error(`not yet: ${JSON.stringify(changes)}`);
    });
    expect(back().every((c) => c.at >= lastSlave)).toBe(true);
    expect(back()).toHaveLength(1); // and it stayed there: no flapping on the way
    expect(await limiter.consume("k0")).toMatchObject({ backend: "redis" });
    expect(unhandled).toEqual([]);
  }, 90_000);
});
