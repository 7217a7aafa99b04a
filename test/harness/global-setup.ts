/**
 * Jest global setup: one standalone `redis-server` and one 3-master Cluster for the whole run,
 * on free ports, unless `REDIS_URL` / `REDIS_CLUSTER_NODES` point at existing servers. Test
 * files find them through `ERK_TEST_REDIS_URL` and `ERK_TEST_CLUSTER_NODES`.
 */
import {
  MissingBinaryError,
  type RedisCluster,
  type RedisServer,
  startRedisCluster,
  startRedisServer,
} from "./redis-server.ts";

declare global {
  var __erkServers: { standalone?: RedisServer; cluster?: RedisCluster } | undefined;
}

export default async function globalSetup(): Promise<void> {
  try {
    await startServers();
  } catch (err) {
    if (!(err instanceof MissingBinaryError)) throw err;
    console.error(`\n${err.message}`); // one clear line, no stack trace
    process.exit(1);
  }
}

async function startServers(): Promise<void> {
  const owned: { standalone?: RedisServer; cluster?: RedisCluster } = {};
  globalThis.__erkServers = owned;
  if (process.env.REDIS_URL) {
    process.env.ERK_TEST_REDIS_URL = process.env.REDIS_URL;
  } else {
    owned.standalone = await startRedisServer();
    process.env.ERK_TEST_REDIS_URL = owned.standalone.url;
  }
  if (process.env.REDIS_CLUSTER_NODES) {
    process.env.ERK_TEST_CLUSTER_NODES = process.env.REDIS_CLUSTER_NODES;
  } else {
    owned.cluster = await startRedisCluster(3);
    process.env.ERK_TEST_CLUSTER_NODES = owned.cluster.nodes
      .map((n) => `${n.host}:${n.port}`)
      .join(",");
  }
}
