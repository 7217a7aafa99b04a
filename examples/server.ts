/**
 * `npm start`: the example app on PORT (default 3000) against the Redis that REDIS_URL,
 * REDIS_CLUSTER_NODES or REDIS_SENTINELS names (default redis://127.0.0.1:6379), built with
 * REDIS_CLIENT (ioredis, the default, or node-redis); or on the in-process memory backend,
 * said in one line, when no Redis answers.
 */
import {
  checkRedisHealth,
  closeRedisClient,
  createRedisClient,
  type RedisClient,
} from "../index.js";
import { createExampleApp } from "./app.js";

/** Where the app looks for Redis, without credentials, for logs. */
function target(): string {
  if (process.env.REDIS_SENTINELS) {
    return `Sentinel ${process.env.REDIS_SENTINELS} (master ${process.env.REDIS_SENTINEL_NAME || "mymaster"})`;
  }
  if (process.env.REDIS_CLUSTER_NODES) return `Cluster ${process.env.REDIS_CLUSTER_NODES}`;
  const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "(unparsable REDIS_URL)";
  }
}

async function connect(): Promise<RedisClient | undefined> {
  let cause: string | undefined; // the connection's own error says more than a failed PING
  const logger = {
    info() {},
    warn(line: string) {
      cause ??= /(?:error|failed): (.*) \(retrying\)$/.exec(line)?.[1];
    },
    error() {},
  };
  const redis = createRedisClient({ logger, timeoutMs: 1000 });
  const health = await checkRedisHealth(redis, {
    timeoutMs: 2000,
    degradedLatencyMs: 1000,
  });
  const family = process.env.REDIS_CLIENT || "ioredis";
  if (health.status === "down") {
    closeRedisClient(redis);
    console.log(
      `express-redis-kit example: no Redis at ${target()} (${cause ?? health.error}); running on the in-process memory backend`,
    );
    return undefined;
  }
  closeRedisClient(redis);
  console.log(`express-redis-kit example: using Redis at ${target()} through ${family}`);
  return createRedisClient();
}

const redis = await connect();
const port = Number(process.env.PORT ?? 3000);
const app = createExampleApp(redis);
const server = app.listen(port, () => {
  const address = server.address();
  const actual = typeof address === "object" && address !== null ? address.port : port;
  console.log(`express-redis-kit example: listening on http://localhost:${actual}`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    server.closeAllConnections(); // event streams never end by themselves
    server.close();
    void app.close().finally(() => redis && closeRedisClient(redis));
  });
}
