/**
 * `createPubSub()` in process, on a standalone Redis and on a Cluster (through ioredis and
 * node-redis): envelopes, order (1000
 * in order), glob patterns, isolation of failing (and rejecting) handlers, dropped payloads,
 * unsubscribe (PUBSUB NUMSUB back to 0), resubscribe after CLIENT KILL TYPE pubsub.
 */
import { StoreUnavailableError } from "../stores/core/errors.js";
import { globToRegExp } from "../stores/pubsub/local.js";
import { createPubSub, type Envelope, type PubSub } from "../stores/pubsub/pubsub.js";
import { type RedisServer, startRedisServer } from "./harness/redis-server.ts";
import {
  ALL_BACKENDS,
  clientFor,
  closeClients,
  deferred,
  eventually,
  newNodeRedis,
  newRedis,
  quiet,
  ready,
  testPrefix,
} from "./helpers.js";

const prefix = testPrefix(__filename);
const opened: PubSub[] = [];
afterAll(async () => {
  for (const p of opened) await p.close();
  await closeClients();
});

/** Resolves with the first `count` messages `pubsub` receives on `channel`. */
async function collect(pubsub: PubSub, channel: string, count: number) {
  const got: Envelope[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const unsubscribe = await pubsub.subscribe(channel, (message) => {
    got.push(message);
    if (got.length === count) done();
  });
  return { got, all, unsubscribe };
}

describe.each(ALL_BACKENDS)("pub/sub on %s", (backend) => {
  const client = () => clientFor(backend);
  const make = () => {
    const p = createPubSub({ redis: client(), logger: quiet });
    opened.push(p);
    return p;
  };
  const channel = (name: string) => `${prefix}${backend}:${name}`;

  it("delivers 1000 messages in order, in envelopes with id, type, timestamp and origin", async () => {
    const a = make();
    const b = make();
    const { got, all } = await collect(b, channel("order"), 1000);
    for (let i = 0; i < 1000; i++) void a.publish(channel("order"), { i }, "test.n");
    await all;
    expect(got.map((m) => (m.data as { i: number }).i)).toEqual(
      Array.from({ length: 1000 }, (_, i) => i),
    );
    expect(got[0]).toMatchObject({ type: "test.n", origin: a.origin });
    expect(typeof got[0]!.id).toBe("string");
    expect(new Set(got.map((m) => m.id)).size).toBe(1000);
  });

  it("a throwing handler does not stop the others; it is counted", async () => {
    const a = make();
    const b = make();
    await b.subscribe(channel("throw"), () => {
      throw new Error("boom");
    });
    const { got, all } = await collect(b, channel("throw"), 2);
    await a.publish(channel("throw"), 1);
    await a.publish(channel("throw"), 2);
    await all;
    expect(got.map((m) => m.data)).toEqual([1, 2]);
    expect(b.stats().handlerErrors).toBe(2);
  });

  it("oversized messages are refused at publish; unsubscribe stops delivery", async () => {
    const a = createPubSub({
      redis: client(),
      maxMessageBytes: 200,
      logger: quiet,
    });
    opened.push(a);
    await expect(a.publish(channel("big"), "x".repeat(500))).rejects.toThrow(/maxMessageBytes/);
    const b = make();
    const fence = await collect(make(), channel("unsub"), 2); // still subscribed: sees both
    const { got, all, unsubscribe } = await collect(b, channel("unsub"), 1);
    await a.publish(channel("unsub"), "one");
    await all;
    await unsubscribe();
    await a.publish(channel("unsub"), "two");
    await fence.all; // "two" was delivered to subscribers by now
    expect(got.map((m) => m.data)).toEqual(["one"]);
  });
  it("concurrent subscribes share one subscription and all wait for it; none after close()", async () => {
    const a = make();
    const b = make();
    const got: string[] = [];
    const four = deferred();
    const push = (tag: string) => (m: Envelope) => {
      got.push(`${tag}:${m.data}`);
      if (got.length === 4) four.resolve();
    };
    const offs = await Promise.all([
      b.subscribe(channel("both"), push("1")),
      b.subscribe(channel("both"), push("2")),
    ]);
    // Both resolved only once subscribed: what is published now reaches them (a Cluster
    // counts receivers on the publishing node only).
    const receivers = await a.publish(channel("both"), "x");
    if (!backend.includes("cluster")) expect(receivers).toBe(1);
    await a.publish(channel("both"), "y");
    await four.promise;
    expect(got.sort()).toEqual(["1:x", "1:y", "2:x", "2:y"]);
    for (const off of offs) await off();
    await b.close();
    await expect(b.subscribe(channel("both"), () => {})).rejects.toThrow(/after close/);
  });

  it("psubscribe: a glob pattern gets every matching channel, with the actual channel name", async () => {
    const a = make();
    const b = make();
    const got: string[] = [];
    const two = deferred();
    const off = await b.psubscribe(`${channel("user")}:*:events`, (message, name) => {
      got.push(`${name} ${message.data}`);
      if (got.length === 2) two.resolve();
    });
    await a.publish(`${channel("user")}:1:events`, "one");
    await a.publish(`${channel("user")}:1:other`, "not matched");
    await a.publish(`${channel("user")}:2:events`, "two");
    await two.promise;
    expect(got).toEqual([`${channel("user")}:1:events one`, `${channel("user")}:2:events two`]);
    await off();
    // A fence still subscribed to the pattern: once it has the message, b would have too.
    const fence = deferred();
    await make().psubscribe(`${channel("user")}:*:events`, () => fence.resolve());
    await a.publish(`${channel("user")}:3:events`, "after unsubscribe");
    await fence.promise;
    expect(got).toHaveLength(2);
  });

  it("an async handler that rejects is counted, one that never settles is not waited for", async () => {
    const a = make();
    const b = make();
    await b.subscribe(channel("async"), async () => {
      throw new Error("boom");
    });
    await b.subscribe(channel("async"), () => new Promise<void>(() => {})); // slow: never settles
    const { got, all } = await collect(b, channel("async"), 3);
    for (const n of [1, 2, 3]) await a.publish(channel("async"), n);
    await all;
    await new Promise((resolve) => setImmediate(resolve)); // the rejections' catch handlers
    expect(got.map((m) => m.data)).toEqual([1, 2, 3]);
    expect(b.stats().handlerErrors).toBe(3);
  });
});

describe("pub/sub on Redis", () => {
  it("drops non-JSON and oversized payloads published by others, counting them", async () => {
    const raw = newRedis();
    const b = createPubSub({ redis: newRedis(), maxMessageBytes: 100, logger: quiet });
    opened.push(b);
    const channel = `${prefix}raw`;
    const { got, all } = await collect(b, channel, 1);
    await raw.publish(channel, "not json");
    await raw.publish(
      channel,
      JSON.stringify({ id: "1", type: "t", origin: "o", timestamp: 0, data: "x".repeat(200) }),
    );
    await raw.publish(
      channel,
      JSON.stringify({ id: "2", type: "t", origin: "o", timestamp: 0, data: "ok" }),
    );
    await all;
    expect(got.map((m) => m.data)).toEqual(["ok"]);
    expect(b.stats()).toMatchObject({ dropped: 2, received: 1 });
  });

  it("unsubscribing the last handler unsubscribes the connection (PUBSUB NUMSUB back to 0)", async () => {
    const admin = newRedis();
    const b = createPubSub({ redis: newRedis(), logger: quiet });
    opened.push(b);
    const channel = `${prefix}numsub`;
    const off1 = await b.subscribe(channel, () => {});
    const off2 = await b.subscribe(channel, () => {});
    expect(await admin.pubsub("NUMSUB", channel)).toEqual([channel, 1]);
    await off1();
    expect(await admin.pubsub("NUMSUB", channel)).toEqual([channel, 1]);
    await off2();
    expect(await admin.pubsub("NUMSUB", channel)).toEqual([channel, 0]);
  });
});

it.each(["ioredis", "node-redis"] as const)(
  "%s: CLIENT KILL of the subscriber: it resubscribes, onResubscribed runs, delivery resumes",
  async (family) => {
    const admin = newRedis();
    let resubscribed!: () => void;
    const hook = new Promise<void>((resolve) => {
      resubscribed = resolve;
    });
    const name = `erk-kill-${family}-${process.pid}-${Date.now()}`;
    // Its subscriber duplicate keeps the connection name.
    const subscriberClient =
      family === "ioredis"
        ? newRedis(undefined, { connectionName: name })
        : newNodeRedis(undefined, { name });
    const b = createPubSub({
      redis: subscriberClient,
      logger: quiet,
      onResubscribed: () => resubscribed(),
    });
    opened.push(b);
    const a = createPubSub({ redis: newRedis(), logger: quiet });
    opened.push(a);
    const channel = `${prefix}killed-${family}`;
    const { got, all } = await collect(b, channel, 2);
    await a.publish(channel, "before");
    // Only this test's subscriber (the other jest worker has its own on this server).
    const list = (await admin.call("CLIENT", "LIST", "TYPE", "pubsub")) as string;
    const ours = list
      .split("\n")
      .filter((line) => line.includes(`name=${name} `))
      .map((line) => /\bid=(\d+)/.exec(line)?.[1]);
    expect(ours).toHaveLength(1);
    expect(await admin.call("CLIENT", "KILL", "ID", ours[0]!)).toBe(1);
    await hook;
    // Subscribed again: the SUBSCRIBE was sent before "ready", so this publish finds it.
    expect(await a.publish(channel, "after")).toBeGreaterThanOrEqual(1);
    await all;
    expect(got.map((m) => m.data)).toEqual(["before", "after"]);
  },
);

it("Redis glob patterns match as Redis matches them", () => {
  const cases: [string, string, boolean][] = [
    ["a*", "abc", true],
    ["a*", "ba", false],
    ["a?c", "abc", true],
    ["a?c", "ac", false],
    ["h[ae]llo", "hallo", true],
    ["h[^e]llo", "hello", false],
    ["h[a-b]llo", "hbllo", true],
    ["a\\*b", "a*b", true],
    ["a\\*b", "axb", false],
    ["x.y", "xzy", false],
    ["[", "[", true],
  ];
  for (const [glob, text, expected] of cases) {
    expect([glob, text, globToRegExp(glob).test(text)]).toEqual([glob, text, expected]);
  }
});

describe("pub/sub when Redis fails (its own redis-server)", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("closed (default) rejects StoreUnavailableError, open resolves 0 and counts a drop; both publish on Redis again after a restart", async () => {
    const closedClient = newRedis(server.url, { enableOfflineQueue: false });
    const openClient = newRedis(server.url, { enableOfflineQueue: false });
    const options = { timeoutMs: 200, recheckMs: 100, logger: quiet };
    const closed = createPubSub({ redis: closedClient, ...options });
    const open = createPubSub({ redis: openClient, onRedisError: "open", ...options });
    opened.push(closed, open);
    await Promise.all([ready(closedClient), ready(openClient)]);
    const listener = createPubSub({ redis: newRedis(server.url), logger: quiet });
    opened.push(listener);
    await listener.subscribe(`${prefix}down`, () => {});
    expect(await closed.publish(`${prefix}down`, "up")).toBe(1);
    await server.stop();
    const failure = await closed.publish(`${prefix}down`, "down").catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(StoreUnavailableError);
    expect(await open.publish(`${prefix}down`, "down")).toBe(0);
    expect(open.stats()).toMatchObject({ dropped: 1, published: 0 });
    await server.start();
    await Promise.all([ready(closedClient), ready(openClient)]);
    // One publish per recheckMs probes Redis; the subscriber reconnects on its own back-off.
    // An open publish made while the switch's own probe is still in flight is dropped too.
    let openCalls = 0;
    await eventually("both publish on Redis again", async () => {
      expect(await closed.publish(`${prefix}down`, "back")).toBe(1);
      openCalls++;
      expect(await open.publish(`${prefix}down`, "back")).toBe(1);
    });
    // Each open publish counted once, as published or dropped, the last one published.
    const after = open.stats();
    expect(after.dropped + after.published).toBe(1 + openCalls);
    expect(after.published).toBeGreaterThanOrEqual(1);
  });

  it("memory is refused: in-process delivery would reach only this process", () => {
    expect(() => createPubSub({ onRedisError: "memory" as never })).toThrow(
      /createPubSub: onRedisError "memory" is not offered here: in-process delivery reaches only/,
    );
  });
});
