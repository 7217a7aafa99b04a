/**
 * `sse()` over real HTTP connections, in process and on Redis: headers, events in order,
 * heartbeats, one Redis subscription per channel for all clients (PUBSUB NUMSUB 1, then 0 when
 * the last client leaves), clients that stop reading are dropped, filters, bad options.
 */
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import {
  createPubSub,
  type PubSub,
  type SseConnection,
  type SseOptions,
  sse,
  sseStats,
} from "../index.js";
import {
  closeClients,
  collectUnhandledRejections,
  deferred,
  newRedis,
  quiet,
  testPrefix,
} from "./helpers.js";
import { openStream as open } from "./sse-client.js";

const prefix = testPrefix(__filename);
const rejections = collectUnhandledRejections();
const servers: http.Server[] = [];
const pubsubs: PubSub[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  for (const p of pubsubs) await p.close();
  await closeClients();
});
afterEach(() => expect(rejections).toEqual([]));

/** A server with `GET /events` streaming `channels`; resolves with its URL and open streams. */
async function serve(pubsub: PubSub, options: Partial<SseOptions> & { channels: string[] }) {
  const streams: SseConnection[] = [];
  const opened: (() => void)[] = [];
  const app = express();
  app.get("/events", async (req, res, next) => {
    try {
      streams.push(await sse(req, res, { pubsub, ...options }));
      opened.shift()?.();
    } catch (err) {
      next(err);
    }
  });
  const server = app.listen(0, "127.0.0.1");
  servers.push(server);
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  /** Opens a client; resolves once the server subscribed it. */
  const connect = async () => {
    const subscribed = new Promise<void>((resolve) => opened.push(resolve));
    const client = await open(url);
    await subscribed;
    return client;
  };
  return { streams, connect };
}

describe.each(["memory", "standalone"] as const)("sse() on %s", (backend) => {
  const make = () => {
    const p = createPubSub({ redis: backend === "memory" ? undefined : newRedis(), logger: quiet });
    pubsubs.push(p);
    return p;
  };
  const channel = (name: string) => `${prefix}${backend}:${name}`;

  test("headers, events in order with id and type, heartbeats, your own events", async () => {
    const pubsub = make();
    const { streams, connect } = await serve(pubsub, { channels: [channel("a")], heartbeatMs: 30 });
    const client = await connect();
    expect(client.res.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(client.res.headers["cache-control"]).toBe("no-cache, no-transform");
    expect(client.res.headers["x-accel-buffering"]).toBe("no");
    for (const n of [1, 2, 3]) await pubsub.publish(channel("a"), { n }, "trade");
    await client.until('"n":3');
    const events = client
      .text()
      .split("\n\n")
      .filter((block) => block.includes("event: trade"));
    expect(events.map((block) => JSON.parse(block.split("data: ")[1]!).data.n)).toEqual([1, 2, 3]);
    expect(events[0]).toMatch(/^id: [0-9a-f-]{36}\nevent: trade\ndata: \{/);
    await client.until(": ping");
    expect(streams[0]!.send("hello", { ok: true })).toBe(true);
    await client.until('event: hello\ndata: {"ok":true}');
    await streams[0]!.close();
    await client.ended;
  });

  test("a filter forwards only what it accepts", async () => {
    const pubsub = make();
    const { connect } = await serve(pubsub, {
      channels: [channel("f")],
      filter: (message) => (message.data as { user: string }).user === "alice",
    });
    const client = await connect();
    await pubsub.publish(channel("f"), { user: "bob" });
    await pubsub.publish(channel("f"), { user: "alice" });
    await client.until("alice");
    expect(client.text()).not.toContain("bob");
    client.req.destroy();
  });

  test("a client that stops reading is dropped; the others get everything", async () => {
    const pubsub = make();
    const { streams, connect } = await serve(pubsub, {
      channels: [channel("slow")],
      maxBufferedBytes: 64 * 1024,
    });
    const reader = await connect();
    const stalled = await connect();
    stalled.res.pause(); // reads nothing more: kernel buffers fill, then the server's
    const big = "x".repeat(30_000);
    // At the reader's pace (each message once the reader has the previous one), until the
    // stalled client's unsent output passes the cap.
    let dropped = false;
    void streams[1]!.closed.then(() => {
      dropped = true;
    });
    let sent = 0;
    while (!dropped && sent < 1000) {
      await pubsub.publish(channel("slow"), { i: sent, big });
      await reader.until(`"i":${sent},`);
      sent++;
    }
    expect(await streams[1]!.closed).toBe("slow");
    expect(sent).toBeLessThan(1000);
    await pubsub.publish(channel("slow"), { i: sent, big }); // the reader still gets more
    await reader.until(`"i":${sent},`);
    expect(reader.text().match(/event: message/g)).toHaveLength(sent + 1);
    reader.req.destroy();
    expect(await streams[0]!.closed).toBe("client");
  });
});

test("one Redis subscription per channel for every client; none once the last one leaves", async () => {
  const admin = newRedis();
  const pubsub = createPubSub({ redis: newRedis(), logger: quiet });
  pubsubs.push(pubsub);
  const a = `${prefix}numsub:a`;
  const b = `${prefix}numsub:b`;
  const { streams, connect } = await serve(pubsub, { channels: [a, b] });
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await connect());
  expect(await admin.pubsub("NUMSUB", a, b)).toEqual([a, 1, b, 1]);
  for (const client of clients) client.req.destroy();
  expect(await Promise.all(streams.map((s) => s.closed))).toEqual(Array(5).fill("client"));
  expect(await admin.pubsub("NUMSUB", a, b)).toEqual([a, 0, b, 0]);
});

test("a client that left before sse() was called leaves nothing open", async () => {
  const admin = newRedis();
  const pubsub = createPubSub({ redis: newRedis(), logger: quiet });
  pubsubs.push(pubsub);
  const channel = `${prefix}early`;
  const reached = deferred();
  const gate = deferred();
  const closed = deferred();
  let stream!: Promise<SseConnection>;
  const app = express();
  app.get("/events", async (req, res) => {
    res.once("close", () => closed.resolve());
    reached.resolve();
    await gate.promise; // e.g. a session lookup, during which the client leaves
    stream = sse(req, res, { pubsub, channels: [channel] });
  });
  const server = app.listen(0, "127.0.0.1");
  servers.push(server);
  await once(server, "listening");
  const client = await new Promise<http.ClientRequest>((resolve) => {
    const req = http.get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/events`);
    req.on("error", () => {});
    resolve(req);
  });
  await reached.promise;
  client.destroy();
  await closed.promise; // the server has seen the client leave, before sse() runs
  const openBefore = sseStats().open;
  gate.resolve();
  await gate.promise;
  expect(await (await stream).closed).toBe("client");
  expect(sseStats().open).toBe(openBefore);
  expect(await admin.pubsub("NUMSUB", channel)).toEqual([channel, 0]);
});

test("an envelope id with a line break cannot forge an event", async () => {
  const raw = newRedis();
  const pubsub = createPubSub({ redis: newRedis(), logger: quiet });
  pubsubs.push(pubsub);
  const channel = `${prefix}forged`;
  const { connect } = await serve(pubsub, { channels: [channel] });
  const client = await connect();
  const id = "x\nevent: session.revoked\ndata: {}\n\nid: y";
  await raw.publish(
    channel,
    JSON.stringify({ id, type: "trade", timestamp: 0, origin: "o", data: 1 }),
  );
  await pubsub.publish(channel, "next");
  await client.until('"data":"next"');
  expect(client.text()).not.toMatch(/^event: session\.revoked$/m);
  expect(client.text()).toMatch(/^event: trade$/m);
  client.req.destroy();
});

test("bad options are named", async () => {
  const pubsub = createPubSub({ logger: quiet });
  pubsubs.push(pubsub);
  const req = {} as never;
  const res = {} as never;
  await expect(sse(req, res, { pubsub, channels: [] })).rejects.toThrow(/sse: channels must be/);
  await expect(sse(req, res, { pubsub: {} as never, channels: ["a"] })).rejects.toThrow(
    /sse: pubsub must be/,
  );
  await expect(sse(req, res, { pubsub, channels: ["a"], heartbeat: 5 } as never)).rejects.toThrow(
    /did you mean "heartbeatMs"/,
  );
});
