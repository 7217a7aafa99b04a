/**
 * The server every HTTP suite measures:
 * `node --import tsx bench/http-server.ts <suite> <variant> redis://127.0.0.1:<port> <port>`.
 *
 * It serves what ../shared/peer-bench's server serves, with the variant's middleware (its
 * `Scenario`) in front of each handler:
 *
 * - GET /api: the 1024-byte JSON body via `res.json()` (every suite's request);
 * - GET /slow: the same body after a 20 ms timer (the cache suite's slow handler);
 * - POST /api: the same body, after incrementing `req.session.counter` when there is a session
 *   (the session write; the count goes back in `X-Counter`);
 * - the scenario's own routes (GET /login);
 * - GET /__prime: runs the scenario's prime step, answers `{ headers }` for the load;
 * - GET /__cpu: this process's `process.cpuUsage()`, the /api and /slow requests received
 *   (counted by a plain `request` listener, before any middleware), the handler calls, the
 *   commands the scenario's Redis clients sent, and the scenario's own sample.
 *
 * Prints READY once every Redis client is ready and it listens; exits when its standard input
 * closes (so it never outlives the runner), on SIGTERM or on SIGINT.
 */
import { setTimeout as sleep } from "node:timers/promises";
import express from "express";
import { Redis, type RedisOptions } from "ioredis";
import { BODY } from "./body.js";
import { CACHE_SCENARIOS } from "./cache-variants.js";
import { LOCK_HTTP_SCENARIOS } from "./lock-variants.js";
import {
  type Handler,
  kitDir,
  type Scenario,
  type ScenarioContext,
  type ServerSample,
  SLOW_MS,
} from "./scenario.js";
import { countCommands, type NodeRedis, nodeRedisClient, serveUntilStopped } from "./serve.js";
import { SESSION_SCENARIO_SETUPS } from "./session-variants.js";
import { RATE_LIMIT_SCENARIOS } from "./variants.js";

/** Each HTTP suite's scenarios, by variant. */
const SUITES: Record<string, Record<string, Scenario>> = {
  "rate-limit": RATE_LIMIT_SCENARIOS,
  cache: CACHE_SCENARIOS,
  session: SESSION_SCENARIO_SETUPS,
  "lock-http": LOCK_HTTP_SCENARIOS,
};

function parseArgs(): { scenario: Scenario; url: string; port: number } {
  const [suite = "", variant = "", url = "", portText = ""] = process.argv.slice(2);
  const scenario = SUITES[suite]?.[variant];
  const port = Number(portText);
  if (scenario === undefined || !url.startsWith("redis://127.0.0.1:") || !Number.isInteger(port))
    throw new Error(
      `usage: http-server.ts <suite> <variant> redis://127.0.0.1:<port> <port> (got ${process.argv.slice(2).join(" ")}; suites: ${Object.keys(SUITES).join(", ")})`,
    );
  return { scenario, url, port };
}

async function main(): Promise<void> {
  const { scenario, url, port } = parseArgs();
  const redisPort = Number(new URL(url).port);
  let sent = 0;
  const ioredisClients: Redis[] = [];
  let nodeRedis: NodeRedis | undefined;
  let spareNodeRedis: NodeRedis | undefined;
  if (scenario.client === "node-redis") {
    nodeRedis = await nodeRedisClient(url);
    countCommands(nodeRedis, () => sent++);
    spareNodeRedis = nodeRedis;
  }
  const ctx: ScenarioContext = {
    projectDir: kitDir(),
    sent: () => sent,
    newRedis(options?: RedisOptions): Redis {
      if (scenario.client === "node-redis") {
        // autoResendUnfulfilledCommands: false is what node-redis always does (it never
        // resends); any other ioredis option has no node-redis meaning here.
        const { autoResendUnfulfilledCommands: _resend, ...others } = options ?? {};
        if (Object.keys(others).length > 0)
          throw new Error(`node-redis scenario: ioredis options ${JSON.stringify(others)}`);
        const client = spareNodeRedis;
        if (client === undefined) throw new Error("node-redis scenario: one client only");
        spareNodeRedis = undefined;
        return client as unknown as Redis;
      }
      const client = new Redis({ host: "127.0.0.1", port: redisPort, ...options });
      countCommands(client, () => sent++);
      ioredisClients.push(client);
      return client;
    },
  };
  const made = await scenario.setup(ctx);
  await Promise.all(
    ioredisClients.map((c) =>
      c.status === "ready"
        ? undefined
        : new Promise((resolve, reject) => {
            c.once("ready", resolve);
            c.once("error", reject);
          }),
    ),
  );

  let received = 0;
  const handlerCalls: Record<Handler, number> = { "GET /api": 0, "GET /slow": 0, "POST /api": 0 };
  const app = express();
  app.get("/__cpu", (_req, res) => {
    const sample: ServerSample = {
      ...process.cpuUsage(),
      received,
      handlerCalls,
      redisSent: sent,
    };
    res.json({ ...sample, ...made.sample?.() });
  });
  app.get("/__prime", (_req, res, next) => {
    const primed = made.prime?.(`http://127.0.0.1:${port}`) ?? Promise.resolve([]);
    primed.then((headers) => res.json({ headers }), next);
  });
  made.routes?.(app);
  app.get("/api", ...made.mw, (_req, res) => {
    handlerCalls["GET /api"]++;
    res.json(BODY);
  });
  app.get("/slow", ...made.mw, async (_req, res) => {
    handlerCalls["GET /slow"]++;
    await sleep(SLOW_MS);
    res.json(BODY);
  });
  app.post("/api", ...made.mw, (req, res) => {
    handlerCalls["POST /api"]++;
    const session = req.session as { counter?: number } | undefined;
    if (session !== undefined) {
      session.counter = (session.counter ?? 0) + 1;
      res.set("X-Counter", String(session.counter));
    }
    res.json(BODY);
  });

  await serveUntilStopped(
    app,
    port,
    () => {
      void Promise.resolve(made.close?.()).catch(() => {});
      for (const c of ioredisClients) c.disconnect();
      void nodeRedis?.destroy();
    },
    (req) => {
      if (req.url === "/api" || req.url === "/slow") received++;
    },
  );
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
