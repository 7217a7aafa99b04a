/**
 * What the benchmark server processes share: their command line,
 * `<variant> redis://127.0.0.1:<port> <port>`; a Redis client that counts the commands it sends
 * (the lock workers use it too); and, once the app is built, listening on 127.0.0.1, printing
 * READY for the driver, and shutting down (closing `redis`) on SIGTERM, SIGINT or when the
 * driver's stdin closes, so no server outlives a run.
 */
import type { Server } from "node:http";
import type { Express } from "express";
import { Redis } from "ioredis";

/**
 * The server's command line, `<variant> redis://127.0.0.1:<port> <port>`; throws a usage error
 * naming `script` unless `isVariant` knows the variant, the URL is a local redis-server's and
 * the port a whole number.
 */
export function serverArgs<V extends string>(
  script: string,
  isVariant: (value: string) => value is V,
): { variant: V; url: string; port: number } {
  const [variant = "", url = "", portText = ""] = process.argv.slice(2);
  const port = Number(portText);
  if (!isVariant(variant) || !url.startsWith("redis://127.0.0.1:") || !Number.isInteger(port)) {
    throw new Error(
      `usage: ${script} <variant> redis://127.0.0.1:<port> <port> (got ${process.argv.slice(2).join(" ")})`,
    );
  }
  return { variant, url, port };
}

/**
 * A client on `url`, connected, with `sent()`: the commands it has sent, one per round trip
 * (INFO commandstats also counts the commands a script runs). A pub/sub subscriber duplicated
 * from it is another connection, not counted.
 */
export async function countingRedis(url: string): Promise<{ redis: Redis; sent: () => number }> {
  const redis = new Redis(url, { lazyConnect: true });
  let sent = 0;
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (...args: Parameters<Redis["sendCommand"]>) => {
    sent++;
    return send(...args);
  };
  await redis.connect();
  return { redis, sent: () => sent };
}

/** Serves `app` on `port` until told to stop; see the module comment. */
export async function serveUntilStopped(app: Express, port: number, redis?: Redis): Promise<void> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  let closing = false;
  const shutdown = (code: number) => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(code), 1000).unref();
    server.closeAllConnections();
    server.close(() => {
      redis?.disconnect();
      process.exit(code);
    });
  };
  process.once("SIGTERM", () => shutdown(0));
  process.once("SIGINT", () => shutdown(0));
  process.stdin.on("end", () => shutdown(0));
  process.stdin.on("error", () => shutdown(0));
  process.stdin.resume();
  process.stdout.write("READY\n");
}
