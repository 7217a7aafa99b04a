/**
 * One response-cache benchmark server:
 * `node --import tsx bench/cache-server.ts <variant> <redisUrl> <port>`.
 *
 * Serves the same ~1 KB JSON body from two handlers, GET /now (at once) and GET /slow (after a
 * 20 ms timer), each behind the variant's cache, and GET /__cpu (no cache, not counted)
 * answering this process's `process.cpuUsage()`, the requests received on the cached paths, how
 * many times each handler ran, the commands its Redis client (ioredis; node-redis for
 * `erk-redis-nr`) sent, and `cacheResponse()` stats.
 * Prints `READY` on stdout once it listens, and exits when its standard input closes (so it
 * never outlives the runner), on SIGTERM or on SIGINT.
 */
import express, { type RequestHandler } from "express";
import type { RedisClient } from "../index.js";
import { BODY } from "./body.js";
import {
  CACHE_HANDLERS,
  type CacheHandler,
  type CacheVariant,
  HANDLER_DELAY_MS,
  HANDLER_PATHS,
  isCacheVariant,
  REDIS_CACHE_VARIANTS,
} from "./cache-variants.js";
import { countingClient, serverArgs, serveUntilStopped } from "./serve.js";

/** What GET /__cpu answers. */
export interface CacheServerSample {
  user: number;
  system: number;
  /** Requests received on the cached paths (hits and misses alike). */
  served: number;
  /** Times each handler ran. */
  handlerRuns: Record<CacheHandler, number>;
  /** Commands this server's Redis client sent (one per round trip; 0 without Redis). */
  redisSent: number;
  /** `cacheResponse().stats()`, for this library's variants. */
  cache?: { hits: number; misses: number; bypasses: number; errors: number; state: string };
}

type Stats = () => NonNullable<CacheServerSample["cache"]>;

/** Builds the variant's cache middleware (undefined for `bare`). */
async function cacheFor(
  variant: CacheVariant,
  redis: RedisClient | undefined,
): Promise<{ middleware?: RequestHandler; stats?: Stats }> {
  switch (variant) {
    case "bare":
      return {};
    case "apicache": {
      const { default: apicache } = await import("apicache");
      return { middleware: apicache.middleware("5 minutes") };
    }
    case "erk-redis":
    case "erk-redis-nr":
    case "erk-2tier":
    case "erk-memory": {
      const { cacheResponse } = await import("../index.js");
      const middleware =
        variant === "erk-memory"
          ? cacheResponse()
          : cacheResponse({
              redis: redis!,
              prefix: "bench:",
              ...(variant === "erk-2tier" ? { memory: { maxEntries: 1000 } } : {}),
            });
      return { middleware, stats: () => middleware.stats() };
    }
  }
}

async function main(): Promise<void> {
  const { variant, url, port } = serverArgs("cache-server.ts", isCacheVariant);
  const client = REDIS_CACHE_VARIANTS.has(variant) ? await countingClient(url, variant) : undefined;
  const redis = client?.redis;
  const { middleware, stats } = await cacheFor(variant, redis);

  let served = 0;
  const handlerRuns: Record<CacheHandler, number> = { "0ms": 0, "20ms": 0 };
  const app = express();
  app.get("/__cpu", (_req, res) => {
    const sample: CacheServerSample = {
      ...process.cpuUsage(),
      served,
      handlerRuns,
      redisSent: client?.sent() ?? 0,
      ...(stats === undefined ? {} : { cache: stats() }),
    };
    res.json(sample);
  });
  app.use((_req, _res, next) => {
    served++;
    next();
  });
  for (const handler of CACHE_HANDLERS) {
    const delay = HANDLER_DELAY_MS[handler];
    const chain: RequestHandler[] = middleware === undefined ? [] : [middleware];
    app.get(HANDLER_PATHS[handler], ...chain, async (_req, res) => {
      handlerRuns[handler]++;
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      res.json(BODY);
    });
  }

  await serveUntilStopped(app, port, client?.close);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench cache server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
