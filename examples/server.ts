/**
 * `npm start`: the example app on PORT (default 3000) against REDIS_URL (default
 * redis://127.0.0.1:6379), or on the in-process memory backend, said in one line, when no
 * Redis answers.
 */
import { createRedisClient, type RedisClient } from "../index.js";
import { createExampleApp } from "./app.js";

/** The URL without credentials, for logs. */
function safeUrl(url: string): string {
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
  const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const quiet = { info() {}, warn() {}, error() {} };
  const probe = createRedisClient({
    url,
    logger: quiet,
    redisOptions: { retryStrategy: () => null, lazyConnect: true },
  });
  let cause: Error | undefined;
  probe.once("error", (err: Error) => {
    cause = err;
  });
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    probe.disconnect();
    const reason = (cause ?? (err as Error)).message;
    console.log(
      `express-redis-kit example: no Redis at ${safeUrl(url)} (${reason}); running on the in-process memory backend`,
    );
    return undefined;
  }
  probe.disconnect();
  console.log(`express-redis-kit example: using Redis at ${safeUrl(url)}`);
  return createRedisClient({ url });
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
    void app.close().finally(() => redis?.disconnect());
  });
}
