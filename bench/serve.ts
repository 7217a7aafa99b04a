/**
 * What the benchmark's processes share: Redis clients, ioredis or node-redis (the variants
 * named `*-nr`), that count the commands they send (the HTTP server and the lock workers use
 * them); and, once an app is built, listening on 127.0.0.1, printing READY for the driver, and
 * shutting down on SIGTERM, SIGINT or when the driver's stdin closes, so no server outlives a
 * run.
 */
import type { IncomingMessage, Server } from "node:http";
import type { Express } from "express";
import { Redis } from "ioredis";
import type { RedisClientType } from "redis";

/** A node-redis (`redis` 6) client as `createClient({ url })` makes it: its defaults, RESP3. */
export type NodeRedis = RedisClientType;

/** Whether a variant runs on node-redis: the `-nr` variants (`erk-nr`, `erk-lock-nr`, ...). */
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
 * Calls `onSend` for every command `client` sends. ioredis sends every command (those of
 * `defineCommand` scripts too) through `sendCommand`; so does this library's node-redis driver.
 * A pub/sub subscriber duplicated from the client is another connection, not counted.
 */
export function countCommands(client: Redis | NodeRedis, onSend: () => void): void {
  const target = client as unknown as { sendCommand(...args: unknown[]): unknown };
  const send = target.sendCommand.bind(client);
  target.sendCommand = (...args: unknown[]) => {
    onSend();
    return send(...args);
  };
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

/** An ioredis client on `url`, connected, counting what it sends (see `countCommands`). */
export async function countingRedis(url: string): Promise<CountingClient<Redis>> {
  const redis = new Redis(url, { lazyConnect: true });
  let sent = 0;
  countCommands(redis, () => sent++);
  await redis.connect();
  return { redis, sent: () => sent, close: () => redis.disconnect() };
}

/** The same on node-redis (`nodeRedisClient()`). */
export async function countingNodeRedis(url: string): Promise<CountingClient<NodeRedis>> {
  const redis = await nodeRedisClient(url);
  let sent = 0;
  countCommands(redis, () => sent++);
  return { redis, sent: () => sent, close: () => void redis.destroy() };
}

/** `countingNodeRedis()` for the `-nr` variants, else `countingRedis()`. */
export function countingClient(
  url: string,
  variant: string,
): Promise<CountingClient<Redis | NodeRedis>> {
  return usesNodeRedis(variant) ? countingNodeRedis(url) : countingRedis(url);
}

/**
 * Serves `app` on `port` until told to stop, then runs `close`; `onRequest` sees every request
 * before the app does (a plain `request` listener: no Express layer). See the module comment.
 */
export async function serveUntilStopped(
  app: Express,
  port: number,
  close?: () => void,
  onRequest?: (req: IncomingMessage) => void,
): Promise<void> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  if (onRequest !== undefined) server.on("request", onRequest);
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
