/**
 * Shared test helpers: clients on the servers that global setup started, a key prefix per
 * test file, and `createApp()` for supertest.
 */
import { randomBytes } from "node:crypto";
import { basename } from "node:path";
import express, { type RequestHandler } from "express";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { Redis as Iovalkey } from "iovalkey";
import { createClient, createCluster } from "redis";
import type { RedisClient } from "../index.js";

const clients: { disconnect(): unknown }[] = [];

/** A logger that says nothing (features log transitions the tests cause on purpose). */
export const quiet = { info() {}, warn() {}, error() {} };

/** A promise with its resolve function, for waiting on an event a handler reports. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Calls of `commands` counted by the server's INFO commandstats so far. */
export async function commandCalls(redis: Redis, ...commands: string[]): Promise<number> {
  const info = await redis.info("commandstats");
  let total = 0;
  for (const command of commands) {
    const match = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(info);
    total += match ? Number(match[1]) : 0;
  }
  return total;
}

/** URL of the standalone test server. */
export function redisUrl(): string {
  const url = process.env.ERK_TEST_REDIS_URL;
  if (!url) throw new Error("ERK_TEST_REDIS_URL is not set: run the tests with `npm test`");
  return url;
}

/** Seed nodes of the test Cluster. */
export function clusterNodes(): { host: string; port: number }[] {
  const nodes = process.env.ERK_TEST_CLUSTER_NODES;
  if (!nodes) throw new Error("ERK_TEST_CLUSTER_NODES is not set: run the tests with `npm test`");
  return nodes.split(",").map((n) => {
    const [host, port] = n.split(":");
    return { host: host!, port: Number(port) };
  });
}

/** A new standalone client (closed by `closeClients()`). */
export function newRedis(url = redisUrl(), options: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    maxRetriesPerRequest: 1,
    disconnectTimeout: 100,
    autoResendUnfulfilledCommands: false,
    ...options,
  });
  clients.push(client);
  return client;
}

/** A new Cluster client (closed by `closeClients()`). */
export function newCluster(): Cluster {
  const client = new Cluster(clusterNodes(), {
    redisOptions: { maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false },
  });
  clients.push(client);
  return client;
}

/** A new node-redis client on the standalone test server, connecting (closed by `closeClients()`). */
export function newNodeRedis(
  url = redisUrl(),
  options: { name?: string; keyPrefix?: string } = {},
) {
  const client = createClient({ url, ...options });
  client.on("error", () => {}); // failures reach the features as rejected commands
  client.connect().catch(() => {});
  clients.push({ disconnect: () => client.isOpen && client.destroy() });
  return client;
}

/** A new node-redis Cluster client on the test Cluster, connecting (closed by `closeClients()`). */
export function newNodeRedisCluster() {
  const client = createCluster({ rootNodes: clusterNodes().map((socket) => ({ socket })) });
  client.on("error", () => {});
  client.connect().catch(() => {});
  clients.push({ disconnect: () => client.isOpen && client.destroy() });
  return client;
}

/** A new iovalkey client (the ioredis fork for Valkey) on the standalone test server. */
export function newIovalkey(url = redisUrl()): RedisClient {
  const client = new Iovalkey(url, {
    maxRetriesPerRequest: 1,
    autoResendUnfulfilledCommands: false,
  });
  clients.push(client);
  return client;
}

/** A node-redis standalone client, as the tests make them. */
export type NodeRedisClient = ReturnType<typeof newNodeRedis>;
/** A node-redis Cluster client, as the tests make them. */
export type NodeRedisCluster = ReturnType<typeof newNodeRedisCluster>;

/**
 * Where a test runs: in process, or on the standalone test server or the test Cluster through
 * ioredis (`standalone`, `cluster`) or node-redis (`node-redis`, `node-redis-cluster`).
 */
export type Backend =
  | "memory"
  | "standalone"
  | "cluster"
  | "node-redis"
  | "node-redis-cluster"
  | "iovalkey";

/**
 * Every backend, for the conformance suites. The Express 4 project of jest.config.mjs narrows
 * it (global `ERK_BACKENDS`): that run checks the HTTP glue, which no backend changes.
 */
export const ALL_BACKENDS: Backend[] = (globalThis as { ERK_BACKENDS?: Backend[] })
  .ERK_BACKENDS ?? ["memory", "standalone", "cluster", "node-redis", "node-redis-cluster"];

/** A new client for `backend` (undefined for memory; closed by `closeClients()`). */
export function clientFor(backend: Backend): RedisClient | undefined {
  switch (backend) {
    case "memory":
      return undefined;
    case "standalone":
      return newRedis();
    case "cluster":
      return newCluster();
    case "node-redis":
      return newNodeRedis();
    case "node-redis-cluster":
      return newNodeRedisCluster();
    case "iovalkey":
      return newIovalkey();
  }
}

/**
 * An ioredis client on the servers of `backend`, for checking Redis state after the fact
 * (undefined for memory), whichever client the features under test use.
 */
export function inspectorFor(backend: Backend): Redis | Cluster | undefined {
  if (backend === "memory") return undefined;
  return backend === "cluster" || backend === "node-redis-cluster" ? newCluster() : newRedis();
}

/** Disconnects every client made by the helpers (no QUIT: some servers are stopped by then). */
export async function closeClients(): Promise<void> {
  for (const client of clients.splice(0)) client.disconnect();
}

/** A key prefix unique to this test file and run, e.g. `t:rate-limit:ab12cd:`. */
export function testPrefix(file: string): string {
  return `t:${basename(file).replace(/\..*$/, "")}:${randomBytes(3).toString("hex")}:`;
}

/** An Express app with `middleware` in front of `GET|POST /` (and `/fail` answering 500). */
export function createApp(...middleware: RequestHandler[]): express.Express {
  const app = express();
  if (middleware.length > 0) app.use(...middleware);
  app.get("/", (_req, res) => {
    res.json({ ok: true });
  });
  app.post("/", (_req, res) => {
    res.json({ ok: true });
  });
  app.get("/fail", (_req, res) => {
    res.status(500).json({ ok: false });
  });
  return app;
}

/** Resolves after `ms`. Used only to wait for time itself to pass (a window to roll). */
export function wait(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Records every unhandled rejection while this test file runs (hooks registered here), so a
 * file can assert after each test that there were none.
 */
export function collectUnhandledRejections(): unknown[] {
  const seen: unknown[] = [];
  const record = (reason: unknown) => seen.push(reason);
  beforeAll(() => process.on("unhandledRejection", record));
  afterAll(() => process.off("unhandledRejection", record));
  return seen;
}

/**
 * Resolves when `client` is (again) ready. Unlike `events.once(client, "ready")` it does not
 * reject on the `error` events of failed reconnect attempts on the way.
 */
export function ready(client: { status: string; once(event: "ready", fn: () => void): unknown }) {
  if (client.status === "ready") return Promise.resolve();
  return new Promise<void>((resolve) => client.once("ready", resolve));
}

/**
 * Retries `check` until it passes or `timeoutMs` is over. Only for waiting on a failover, which
 * takes the time the Cluster or Sentinel needs and tells no event when it is done.
 */
export async function eventually(what: string, check: () => Promise<void>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`${what}: still failing: ${(err as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** A logger that records `"<level> <message>"` lines, for asserting what was logged (and how often). */
export function recordingLogger() {
  const lines: string[] = [];
  const record = (level: string) => (m: string) => void lines.push(`${level} ${m}`);
  return { lines, info: record("info"), warn: record("warn"), error: record("error") };
}
