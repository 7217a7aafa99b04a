/**
 * One benchmark server: `node --import tsx bench/server.ts <variant> <redisUrl> <port>`.
 *
 * Serves GET /api (the same ~1 KB JSON body for every variant) behind the variant's limiter
 * on its own client (ioredis; node-redis `createClient()` for `erk-nr`), and GET /__cpu (not
 * limited, no Redis) answering this process's `process.cpuUsage()` and the number of /api
 * responses sent so far. Prints `READY` on stdout once it listens, and exits when
 * its standard input closes (so it never outlives the runner), on SIGTERM or on SIGINT.
 */
import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from "express";
import { Redis } from "ioredis";
import { BODY } from "./body.js";
import {
  ioredisOf,
  type NodeRedis,
  nodeRedisClient,
  serverArgs,
  serveUntilStopped,
  usesNodeRedis,
} from "./serve.js";
import { HUGE_LIMIT, isVariant, type Variant, WINDOW_MS } from "./variants.js";

const FLOOR_LUA = `local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

type FloorClient = { benchFloor(key: string, windowMs: number): Promise<number> };

function clientKey(req: Request): string {
  return req.ip ?? "unknown";
}

/** Builds the variant's limiter middleware (undefined for `bare`) on `client`. */
async function limiterFor(
  variant: Variant,
  client: Redis | NodeRedis,
): Promise<RequestHandler | undefined> {
  // The peers (and the floor) take an ioredis client: only this library's variants take either.
  const redis = () => ioredisOf(client);
  switch (variant) {
    case "bare":
      return undefined;
    case "erl-rlr": {
      const { rateLimit } = await import("express-rate-limit");
      const { RedisStore } = await import("rate-limit-redis");
      type RedisReply = import("rate-limit-redis").RedisReply;
      const io = redis();
      return rateLimit({
        windowMs: WINDOW_MS,
        limit: HUGE_LIMIT,
        standardHeaders: "draft-8",
        legacyHeaders: false,
        store: new RedisStore({
          sendCommand: (command: string, ...args: string[]) =>
            io.call(command, ...args) as Promise<RedisReply>,
        }),
      });
    }
    case "rlf": {
      const { RateLimiterRedis } = await import("rate-limiter-flexible");
      const limiter = new RateLimiterRedis({
        storeClient: redis(),
        useRedisPackage: false,
        keyPrefix: "rlf",
        points: HUGE_LIMIT,
        duration: WINDOW_MS / 1000,
      });
      return (req: Request, res: Response, next: NextFunction) => {
        limiter.consume(clientKey(req)).then(
          () => next(),
          (rejection: unknown) => {
            if (rejection instanceof Error) next(rejection);
            else res.status(429).end();
          },
        );
      };
    }
    case "floor": {
      const io = redis();
      io.defineCommand("benchFloor", { numberOfKeys: 1, lua: FLOOR_LUA });
      const floor = io as unknown as FloorClient;
      return (req: Request, res: Response, next: NextFunction) => {
        floor.benchFloor(`floor:${clientKey(req)}`, WINDOW_MS).then((count) => {
          if (count > HUGE_LIMIT) res.status(429).end();
          else next();
        }, next);
      };
    }
    case "erk":
    case "erk-ap":
    case "erk-nr": {
      const { rateLimit } = await import("../index.js");
      return rateLimit({ redis: client, limit: HUGE_LIMIT, windowMs: WINDOW_MS });
    }
    case "erk-nh": {
      const { rateLimit } = await import("../index.js");
      return rateLimit({ redis: client, limit: HUGE_LIMIT, windowMs: WINDOW_MS, headers: false });
    }
    case "erk-2p": {
      const { rateLimit } = await import("../index.js");
      return rateLimit({
        redis: client,
        policies: [
          { limit: HUGE_LIMIT, windowMs: 1000, name: "burst" },
          { limit: HUGE_LIMIT, windowMs: 86_400_000, name: "daily" },
        ],
      });
    }
  }
}

async function main(): Promise<void> {
  const { variant, url, port } = serverArgs("server.ts", isVariant);

  let client: Redis | NodeRedis;
  if (usesNodeRedis(variant)) {
    client = await nodeRedisClient(url);
  } else {
    const redis = new Redis(url, { enableAutoPipelining: variant === "erk-ap", lazyConnect: true });
    await redis.connect();
    client = redis;
  }
  const limiter = await limiterFor(variant, client);

  let served = 0;
  const app = express();
  app.get("/__cpu", (_req, res) => {
    res.json({ ...process.cpuUsage(), served });
  });
  if (limiter !== undefined) app.use(limiter);
  app.get("/api", (_req, res) => {
    served++;
    res.json(BODY);
  });

  await serveUntilStopped(app, port, () => {
    if (client instanceof Redis) client.disconnect();
    else void client.destroy();
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
