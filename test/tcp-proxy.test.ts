/**
 * The chaos harness's TCP proxy against a real redis-server, through ioredis: bytes pass
 * unchanged, latency delays both directions and keeps order, stall() holds everything until
 * resume(), resetAll() drops every connection (and the client recovers), a dead target resets
 * the client's connection without anything thrown, and close() frees the port.
 */
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { Redis, type RedisOptions } from "ioredis";
import { freePort, type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import { startTcpProxy, type TcpProxy } from "./harness/tcp-proxy.ts";

const options: RedisOptions = {
  maxRetriesPerRequest: 1,
  autoResendUnfulfilledCommands: false,
  // disconnect() of an already closed client still arms this timer: keep it short.
  disconnectTimeout: 100,
};
let server: RedisServer;
let proxy: TcpProxy;
let direct: Redis; // straight to the server, bypassing the proxy
const clients: Redis[] = [];

/** A client through `url`, disconnected after the test; its connection errors are expected. */
function client(url: string, extra: RedisOptions = {}): Redis {
  const redis = new Redis(url, { ...options, ...extra });
  redis.on("error", () => {});
  clients.push(redis);
  return redis;
}

/** The next `name` event's first argument (unlike events.once, an "error" does not reject it). */
function next<T = unknown>(emitter: Redis | Socket, name: string): Promise<T> {
  return new Promise((resolve) => emitter.once(name, (value: T) => resolve(value)));
}

/** Resolves when `redis` is (again) ready. */
function ready(redis: Redis): Promise<unknown> {
  return redis.status === "ready" ? Promise.resolve() : next(redis, "ready");
}

beforeAll(async () => {
  server = await startRedisServer();
  proxy = await startTcpProxy({ host: "127.0.0.1", port: server.port });
  direct = new Redis(server.url, options);
});
afterEach(() => {
  proxy.setLatency(0);
  proxy.resume();
  for (const redis of clients.splice(0)) redis.disconnect();
});
afterAll(async () => {
  direct.disconnect();
  await proxy.close();
  await server.stop();
});

test("passes bytes through unchanged: a 100 kB value and 1000 pipelined INCRs", async () => {
  const redis = client(proxy.url);
  const value = randomBytes(50_000).toString("hex");
  await redis.set("pass:big", value);
  expect(await redis.get("pass:big")).toBe(value);
  expect(await direct.strlen("pass:big")).toBe(100_000);

  const pipeline = redis.pipeline();
  for (let i = 0; i < 1000; i++) pipeline.incr("pass:n");
  const results = await pipeline.exec();
  expect(results?.map(([err, n]) => (err === null ? n : err))).toEqual(
    Array.from({ length: 1000 }, (_, i) => i + 1),
  );
  expect(await direct.get("pass:n")).toBe("1000");
  expect(proxy.connections).toBeGreaterThanOrEqual(1);
});

test("setLatency delays both directions, keeps order, and 0 turns it off", async () => {
  const redis = client(proxy.url);
  await redis.mset("lat:a", "A", "lat:b", "B");

  proxy.setLatency(100);
  let start = performance.now();
  expect(await redis.ping()).toBe("PONG");
  expect(performance.now() - start).toBeGreaterThanOrEqual(180); // 100 ms each way

  // A command read by the proxy under 100 ms, then one under 0 ms: the second waits its turn.
  const settled: string[] = [];
  const first = redis.get("lat:a").then((v) => settled.push(`a=${v}`));
  await direct.ping(); // a round trip: the proxy has read the first GET by now
  proxy.setLatency(0);
  const second = redis.get("lat:b").then((v) => settled.push(`b=${v}`));
  await Promise.all([first, second]);
  expect(settled).toEqual(["a=A", "b=B"]);

  // Negative control: without latency the same round trips are fast.
  start = performance.now();
  for (let i = 0; i < 20; i++) expect(await redis.ping()).toBe("PONG");
  expect(performance.now() - start).toBeLessThan(20 * 180);
  expect(await redis.incr("lat:n")).toBe(1);
});

test("stall holds both directions and new connections; resume releases them in order", async () => {
  const redis = client(proxy.url, { connectionName: "stall-test" });
  const subscriber = client(proxy.url);
  await redis.set("stall:key", "held");
  await subscriber.subscribe("stall:channel");

  proxy.stall();
  let settled = false;
  const get = redis.get("stall:key").finally(() => {
    settled = true;
  });
  const incrs = [redis.incr("stall:n"), redis.incr("stall:n"), redis.incr("stall:n")];
  let message: string | undefined;
  subscriber.on("message", (_channel: string, text: string) => {
    message = text;
  });
  const late = client(proxy.url);
  await next(late, "connect"); // the TCP connection is accepted...

  // The server is alive and answers directly, but nothing passed the proxy either way.
  expect(await direct.ping()).toBe("PONG");
  expect(await direct.publish("stall:channel", "hello")).toBe(1); // sent to the proxy...
  const list = String(await direct.client("LIST"));
  const line = list.split("\n").find((l) => l.includes("name=stall-test"));
  expect(line).toMatch(/ cmd=set /); // ...and the GET never reached the server
  expect(await direct.ping()).toBe("PONG");
  expect(settled).toBe(false);
  expect(message).toBeUndefined(); // ...but held there
  expect(late.status).toBe("connect"); // ...but its handshake is held

  const received = next(subscriber, "message");
  proxy.resume();
  await expect(get).resolves.toBe("held");
  await expect(Promise.all(incrs)).resolves.toEqual([1, 2, 3]);
  await received;
  expect(message).toBe("hello");
  await ready(late);
  expect(await late.ping()).toBe("PONG");
});

test("resetAll drops every pair; a pending command rejects and the client reconnects", async () => {
  const redis = client(proxy.url, { maxRetriesPerRequest: 0 });
  expect(await redis.ping()).toBe("PONG");
  const closed = next(redis, "close");
  const reconnecting = next(redis, "reconnecting");

  const pending = redis.get("reset:key"); // written now: it cannot be answered before the reset
  expect(proxy.resetAll()).toBeGreaterThanOrEqual(1);
  expect(proxy.connections).toBe(0);
  await closed;
  await reconnecting;
  await expect(pending).rejects.toThrow();

  await ready(redis);
  expect(await redis.set("reset:key", "after")).toBe("OK");
  expect(await redis.get("reset:key")).toBe("after");
  expect(proxy.connections).toBeGreaterThanOrEqual(1);
});

test("a target that refuses: the client's connection errors and nothing throws", async () => {
  const problems: unknown[] = [];
  const record = (reason: unknown) => problems.push(reason);
  process.on("unhandledRejection", record);
  process.on("uncaughtException", record);
  const down = await startTcpProxy({ host: "127.0.0.1", port: await freePort() });
  try {
    // Accepted, then reset once the target refuses.
    const raw = connect(down.port, "127.0.0.1");
    const rawError = next<NodeJS.ErrnoException>(raw, "error");
    await next(raw, "close");
    expect((await rawError).code).toBe("ECONNRESET");
    expect(down.connections).toBe(0);

    const redis = client(down.url);
    // (an Error of Node's realm, not the test's: check its code, not its class)
    expect(await next(redis, "error")).toMatchObject({ code: "ECONNRESET" });
    await expect(redis.ping()).rejects.toThrow();
    redis.disconnect();
  } finally {
    await down.close();
    process.off("unhandledRejection", record);
    process.off("uncaughtException", record);
  }
  expect(problems).toEqual([]);
});

test("close() destroys every connection and frees the port", async () => {
  const own = await startTcpProxy({ host: "127.0.0.1", port: server.port });
  const redis = client(own.url, { retryStrategy: () => null });
  expect(await redis.ping()).toBe("PONG");
  expect(own.connections).toBe(1);
  const closed = next(redis, "close");

  await own.close();
  expect(own.connections).toBe(0);
  await closed;
  const raw = connect(own.port, "127.0.0.1");
  expect((await next<NodeJS.ErrnoException>(raw, "error")).code).toBe("ECONNREFUSED");
});
