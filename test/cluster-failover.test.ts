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
});
