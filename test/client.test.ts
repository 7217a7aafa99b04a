/** createRedisClient(): URL and Cluster from options or environment, timeouts, failing fast. */
import type { Redis } from "ioredis";
import { createRedisClient, isCluster, type RedisClientOptions } from "../index.js";
import { freePort } from "./harness/redis-server.ts";
import { clusterNodes, quiet, redisUrl, testPrefix } from "./helpers.js";

const made: Redis[] = [];
const make = (options?: RedisClientOptions) => {
  const client = createRedisClient<Redis>(options);
  made.push(client);
  return client;
};
const saved = { ...process.env };
const key = `${testPrefix(__filename)}{a}`;

afterEach(() => {
  for (const key of ["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_TIMEOUT"]) {
    if (saved[key] === undefined) delete process.env[key];
    else process.env[key] = saved[key];
  }
});
afterAll(() => {
  for (const client of made) client.disconnect();
});

it("connects to REDIS_URL, with the fail-fast defaults", async () => {
  process.env.REDIS_URL = redisUrl();
  delete process.env.REDIS_CLUSTER_NODES;
  const redis = make({ logger: quiet });
  expect(isCluster(redis)).toBe(false);
  expect(await redis.ping()).toBe("PONG");
  expect(redis.options).toMatchObject({
    connectTimeout: 500,
    commandTimeout: 500,
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
  });
});

it("REDIS_TIMEOUT (seconds) sets both timeouts; a bad value is named", () => {
  process.env.REDIS_TIMEOUT = "0.25";
  const redis = make({ url: redisUrl(), logger: quiet });
  expect(redis.options).toMatchObject({ connectTimeout: 250, commandTimeout: 250 });
  process.env.REDIS_TIMEOUT = "soon";
  expect(() => createRedisClient({ url: redisUrl() })).toThrow(
    /REDIS_TIMEOUT must be a positive number of seconds \(got "soon"\)/,
  );
});

it("builds a Cluster client from REDIS_CLUSTER_NODES, and from cluster.nodes", async () => {
  process.env.REDIS_CLUSTER_NODES = clusterNodes()
    .map((n) => `${n.host}:${n.port}`)
    .join(",");
  const fromEnv = make({ logger: quiet });
  expect(isCluster(fromEnv)).toBe(true);
  await fromEnv.set(key, "1", "PX", 60_000);
  expect(await fromEnv.get(key)).toBe("1");
  delete process.env.REDIS_CLUSTER_NODES;
  const fromOption = make({ cluster: { nodes: clusterNodes() }, logger: quiet });
  expect(isCluster(fromOption)).toBe(true);
  expect(await fromOption.get(key)).toBe("1");
  expect(() => createRedisClient({ cluster: { nodes: ["nope"] } })).toThrow(
    /each of cluster.nodes must be "host:port" or \{ host, port \} \(got "nope"\)/,
  );
});

it("a dead Redis fails a command well under a second, logging one line", async () => {
  const lines: string[] = [];
  const logger = { ...quiet, warn: (m: string) => lines.push(m) };
  const redis = make({ url: `redis://127.0.0.1:${await freePort()}`, logger });
  const started = performance.now();
  await expect(redis.ping()).rejects.toThrow();
  expect(performance.now() - started).toBeLessThan(900);
  expect(lines.length).toBeGreaterThanOrEqual(1);
  const before = lines.length;
  await expect(redis.ping()).rejects.toThrow();
  expect(lines.length).toBe(before); // reconnect attempts do not log again
});
