/**
 * A small TCP proxy for chaos tests: sits between an app's Redis client and a real
 * `redis-server` and can add latency, stall all traffic, or reset every connection.
 */
import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { performance } from "node:perf_hooks";

/** A running proxy on 127.0.0.1 that forwards every connection to one target. */
export interface TcpProxy {
  /** The port it listens on (127.0.0.1, chosen by the OS). */
  readonly port: number;
  /** `redis://127.0.0.1:${port}`. */
  readonly url: string;
  /** Adds `ms` of latency to every chunk in both directions (0 = none); keeps chunk order. */
  setLatency(ms: number): void;
  /** Holds every byte in both directions (connections stay open, nothing flows) until resume(). New connections are accepted but also held. */
  stall(): void;
  /** Releases what stall() held, in order, and lets traffic flow again. */
  resume(): void;
  /** Destroys every open connection pair at once (both sockets reset with resetAndDestroy where available); new connections still work. Returns how many pairs were reset. */
  resetAll(): number;
  /** Number of open connection pairs. */
  readonly connections: number;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** One direction of a pair: chunks read from `from`, queued if need be, written to `to` in order. */
interface Lane {
  from: Socket;
  to: Socket;
  queue: { chunk: Buffer; due: number }[];
  timer?: NodeJS.Timeout;
  ended: boolean;
}

/** A connection pair as its two lanes: client → target (from the client) and target → client. */
type Pair = [Lane, Lane];

const newLane = (from: Socket, to: Socket): Lane => ({ from, to, queue: [], ended: false });

/** Starts a proxy listening on a free port of 127.0.0.1 that forwards to `target`. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let latency = 0;
  let stalled = false;

  const reset = (socket: Socket) => {
    if (socket.destroyed) return;
    if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
    else socket.destroy();
  };
  const halt = (lane: Lane) => {
    clearTimeout(lane.timer);
    lane.timer = undefined;
  };
  const kill = (pair: Pair) => {
    if (!pairs.delete(pair)) return;
    for (const each of pair) {
      halt(each);
      each.queue.length = 0;
      reset(each.from);
    }
  };
  const write = (lane: Lane, chunk: Buffer) => {
    if (lane.to.destroyed) return;
    if (!lane.to.write(chunk) && !lane.from.isPaused()) {
      lane.from.pause(); // backpressure: read no more until the other side drains
      lane.to.once("drain", () => lane.from.resume());
    }
  };
  /** Writes every queued chunk that is due, in order; schedules a timer for the next one. */
  const pump = (lane: Lane) => {
    if (stalled || lane.timer !== undefined) return;
    for (let head = lane.queue[0]; head !== undefined; head = lane.queue[0]) {
      const wait = head.due - performance.now();
      if (wait > 0) {
        lane.timer = setTimeout(() => {
          lane.timer = undefined;
          pump(lane);
        }, wait);
        return;
      }
      lane.queue.shift();
      write(lane, head.chunk);
    }
    if (lane.ended && !lane.to.writableEnded) lane.to.end(); // pass a half-close on, after the data
  };
  const wire = (pair: Pair, lane: Lane) => {
    lane.from.setNoDelay(true);
    lane.from.on("data", (chunk: Buffer) => {
      if (latency === 0 && !stalled && lane.queue.length === 0) write(lane, chunk);
      else {
        lane.queue.push({ chunk, due: performance.now() + latency });
        pump(lane);
      }
    });
    lane.from.on("end", () => {
      lane.ended = true;
      pump(lane);
    });
    lane.from.on("error", () => kill(pair));
    lane.from.on("close", () => {
      // Closed without a clean end (destroyed, reset): take the other side down too.
      if (!lane.ended) kill(pair);
      else if (pair.every((each) => each.from.destroyed)) pairs.delete(pair);
    });
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = tcpConnect({ host: target.host, port: target.port, allowHalfOpen: true });
    const pair: Pair = [newLane(client, upstream), newLane(upstream, client)];
    pairs.add(pair);
    // A refused or failed upstream errors in its lane: the pair goes, the client is reset.
    for (const each of pair) wire(pair, each);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject).listen(0, "127.0.0.1", resolve);
  });
  server.on("error", () => {}); // once listening, a server error has nothing to tell the tests
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("proxy has no TCP port");
  const port = address.port;

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get connections() {
      return pairs.size;
    },
    setLatency(ms) {
      latency = Math.max(0, ms);
    },
    stall() {
      stalled = true;
      for (const pair of pairs) for (const each of pair) halt(each);
    },
    resume() {
      stalled = false;
      for (const pair of pairs) for (const each of pair) pump(each);
    },
    resetAll() {
      const open = [...pairs];
      for (const pair of open) kill(pair);
      return open.length;
    },
    close() {
      for (const pair of [...pairs]) kill(pair);
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
