/**
 * `npm start`: the example app on PORT (default 3000), built with REDIS_CLIENT (ioredis, the
 * default, or node-redis).
 *
 * - REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS set: the app uses that Redis, even when
 *   it does not answer at start. Until it does, each feature follows its failure model (rate
 *   limits count in memory, the cache is bypassed, sessions and locks answer 503) and
 *   /health/redis answers 503; the app keeps retrying and says in one line when it answers.
 * - None set: it tries redis://127.0.0.1:6379 once; with no Redis there it runs on the
 *   in-process memory backend and says so (/health/redis: 200, mode memory).
 * - REDIS_URL=memory: the memory backend, without trying any Redis.
 */
import {
  checkRedisHealth,
  closeRedisClient,
  createRedisClient,
  type RedisClient,
} from "../index.js";
import { createExampleApp } from "./app.js";

const say = (line: string) => console.log(`express-redis-kit example: ${line}`);

/** Where the app looks when no Redis is named. */
const LOCAL = "redis://127.0.0.1:6379";
/** REDIS_URL=memory: no Redis at all, not even the local default. */
const memoryOnly = process.env.REDIS_URL === "memory";
/** True when the environment names a Redis (else the local default is only tried). */
const configured = ["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS"].some(
  (name) => (process.env[name] ?? "") !== "",
);

/** Where the app looks for Redis, without credentials, for logs. */
function target(): string {
  if (process.env.REDIS_SENTINELS) {
    return `Sentinel ${process.env.REDIS_SENTINELS} (master ${process.env.REDIS_SENTINEL_NAME || "mymaster"})`;
  }
  if (process.env.REDIS_CLUSTER_NODES) return `Cluster ${process.env.REDIS_CLUSTER_NODES}`;
  const url = process.env.REDIS_URL || LOCAL;
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString();
  } catch {
    return "(unparsable REDIS_URL)";
  }
}

/** The connection's own error (e.g. ECONNREFUSED) says more than a failed PING. */
let cause: string | undefined;
/** The client's log: its connection errors become the cause in this file's lines; the rest as is. */
const clientLogger = {
  info: (line: string) => console.info(line),
  warn(line: string) {
    const error = /connection (?:error|failed): (.*) \(retrying\)$/.exec(line)?.[1];
    if (error === undefined) console.warn(line);
    else cause = error;
  },
  error: (line: string) => console.error(line),
};

/** One PING (and INFO): does Redis answer? Features on their fallback do not matter here. */
async function answers(redis: RedisClient): Promise<{ yes: boolean; why: string }> {
  const health = await checkRedisHealth(redis, { timeoutMs: 2000, degradedLatencyMs: 1000 });
  return { yes: health.status !== "down", why: cause ?? health.error ?? "no answer" };
}

/**
 * Checks Redis every second and says in one line when it stops or starts answering (the client
 * reconnects by itself; this only tells). Returns the function that stops watching.
 */
function watch(redis: RedisClient, answering: boolean): () => void {
  let checking = false;
  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void answers(redis)
      .then(({ yes, why }) => {
        if (yes) cause = undefined; // the next outage brings its own
        if (yes && !answering) say(`Redis at ${target()} answers again`);
        if (!yes && answering) say(`Redis at ${target()} does not answer (${why}); retrying`);
        answering = yes;
      })
      .finally(() => {
        checking = false;
      });
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}

/** The client the app runs on (undefined: memory), and how to stop watching it. */
async function connect(): Promise<{ redis?: RedisClient; stop(): void }> {
  const family = process.env.REDIS_CLIENT || "ioredis";
  if (memoryOnly) {
    say(
      "REDIS_URL=memory: running on the in-process memory backend (limits, cache and sessions per process)",
    );
    return { stop() {} };
  }
  // An empty REDIS_URL counts as not set (createRedisClient would refuse it).
  const redis = createRedisClient({ url: process.env.REDIS_URL || LOCAL, logger: clientLogger });
  const first = await answers(redis);
  if (!first.yes && !configured) {
    closeRedisClient(redis);
    say(
      `REDIS_URL is not set and no Redis answers at ${target()} (${first.why}); running on the in-process memory backend (limits, cache and sessions per process; set REDIS_URL to use a Redis)`,
    );
    return { stop() {} };
  }
  if (first.yes) {
    say(
      `${configured ? "" : "REDIS_URL is not set; "}using Redis at ${target()} through ${family}`,
    );
  } else {
    say(
      `Redis at ${target()} does not answer yet (${first.why}); using it through ${family} anyway and retrying: until it answers, rate limits count in memory, the cache is bypassed, sessions and locks answer 503, and /health/redis answers 503`,
    );
  }
  return { redis, stop: watch(redis, first.yes) };
}

const { redis, stop } = await connect();
const port = Number(process.env.PORT ?? 3000);
const app = createExampleApp(redis);
const server = app.listen(port, () => {
  const address = server.address();
  const actual = typeof address === "object" && address !== null ? address.port : port;
  say(`listening on http://localhost:${actual}`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    stop();
    server.closeAllConnections(); // event streams never end by themselves
    server.close();
    void app.close().finally(() => redis && closeRedisClient(redis));
    // A graceful stop has a deadline: whatever still waits on Redis after 5 s is abandoned.
    setTimeout(() => {
      say("still closing after 5 s; exiting");
      process.exit(1);
    }, 5000).unref();
  });
}
