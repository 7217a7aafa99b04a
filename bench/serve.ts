/**
 * What the benchmark server processes share: their command line,
 * `<variant> redis://127.0.0.1:<port> <port>`; Redis clients, ioredis or node-redis (the
 * variants named `*-nr`), that count the commands they send (the lock workers use them too);
 * and, once the app is built, listening on 127.0.0.1, printing READY for the driver, and
 * shutting down (closing the client) on SIGTERM, SIGINT or when the driver's stdin closes, so no
 * server outlives a run.
 */
import type { Server } from "node:http";
import type { Express } from "express";
import { Redis } from "ioredis";
import type { RedisClientType } from "redis";

/** A node-redis (`redis` 6) client as `createClient({ url })` makes it: its defaults, RESP3. */
export type NodeRedis = RedisClientType;

/** Whether a variant runs on node-redis: the `-nr` variants (`erk-nr`, `erk-redis-nr`, ...). */
export function usesNodeRedis(variant: string): boolean {
  return variant.endsWith("-nr");
}

/** A connected client, the commands it has sent so far, and how to close it. */
export interface CountingClient<C> {
  redis: C;
  /** Commands sent: one per round trip (INFO commandstats also counts what scripts run). */
  sent(): number;
  /** Closes the connection without waiting for pending replies. */
  close(): void;
}

/** `redis` as an ioredis client, for the peers that only take one; throws for node-redis. */
export function ioredisOf(redis: Redis | NodeRedis): Redis {
  if (redis instanceof Redis) return redis;
  throw new Error("this variant needs an ioredis client");
}

/**
 * node-redis `createClient({ url })`, default options (RESP3, same-tick pipelining), connected;
 * its errors are written to stderr (where the suites look for server problems).
 */
export async function nodeRedisClient(url: string): Promise<NodeRedis> {
  const { createClient } = await import("redis");
  const redis: NodeRedis = createClient({ url });
  redis.on("error", (err: Error) => {
    process.stderr.write(`node-redis client error: ${err.message}\n`);
  });
  await redis.connect();
  return redis;
}

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
 * An ioredis client on `url`, connected, with `sent()`: the commands it has sent, one per round
 * trip (INFO commandstats also counts the commands a script runs). A pub/sub subscriber
 * duplicated from it is another connection, not counted.
 */
export async function countingRedis(url: string): Promise<CountingClient<Redis>> {
  const redis = new Redis(url, { lazyConnect: true });
  let sent = 0;
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (...args: Parameters<Redis["sendCommand"]>) => {
    sent++;
    return send(...args);
  };
  await redis.connect();
  return { redis, sent: () => sent, close: () => redis.disconnect() };
}

/**
 * The same on node-redis (`nodeRedisClient()`): the kit's driver sends every command through
 * the client's `sendCommand`, so wrapping it counts them all.
 */
export async function countingNodeRedis(url: string): Promise<CountingClient<NodeRedis>> {
  const redis = await nodeRedisClient(url);
  let sent = 0;
  const target = redis as unknown as { sendCommand(...args: unknown[]): Promise<unknown> };
  const send = target.sendCommand.bind(redis);
  target.sendCommand = (...args: unknown[]) => {
    sent++;
    return send(...args);
  };
  return { redis, sent: () => sent, close: () => void redis.destroy() };
}

/** `countingNodeRedis()` for the `-nr` variants, else `countingRedis()`. */
export function countingClient(
  url: string,
  variant: string,
): Promise<CountingClient<Redis | NodeRedis>> {
  return usesNodeRedis(variant) ? countingNodeRedis(url) : countingRedis(url);
}

/** Serves `app` on `port` until told to stop, then runs `close`; see the module comment. */
export async function serveUntilStopped(
  app: Express,
  port: number,
  close?: () => void,
): Promise<void> {
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
      close?.();
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
